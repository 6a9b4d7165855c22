from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "batches"

    def ready(self) -> None:
        from batches.models import BatchRow, BatchRowError
        from people.erasure import erasure_fields_register

        # Erasing a person: the rows of the files that named them (bulk sends and people imports), and row errors
        # that quote a cell.
        erasure_fields_register(BatchRow, ("data", "external_id", "failure_reason"))
        erasure_fields_register(BatchRowError, ("message", "cells"))  # cells: a refused row as uploaded
