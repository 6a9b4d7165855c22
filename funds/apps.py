from django.apps import AppConfig


class FundsConfig(AppConfig):
    name = "funds"

    def ready(self) -> None:
        from funds.models import LedgerTransaction
        from people.erasure import erasure_fields_register

        # Erasing a person: a posting's description may quote them (a points award's reason); its amounts stay.
        erasure_fields_register(LedgerTransaction, ("description",))
