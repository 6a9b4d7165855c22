"""Each tenant schema's share of the business gauges, as the metrics snapshot last computed it there
(observability.snapshot): the snapshot recomputes only the schemas written since, and adds these rows up."""

from __future__ import annotations

from django.db import models


class SchemaGauges(models.Model):
    """One schema's open rewards by status, oldest unfinished times (not ages: an age grows without writes),
    webhook backlog, ledger balances and low-balance currencies (`observability.snapshot.schema_gauges`)."""

    schema_name = models.CharField(max_length=63, primary_key=True)
    gauges = models.JSONField()
    computed_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.schema_name
