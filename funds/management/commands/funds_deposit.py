from django_tenants.utils import tenant_context

from audit.actors import Actor
from core.money import format_amount
from funds.selectors import balance_get
from funds.services import funds_deposit
from tenants.management.base import OperatorCommand


class Command(OperatorCommand):
    help = "Credit prepaid funds to a tenant (a ledger deposit); prints the new available balance."

    def add_arguments(self, parser) -> None:
        parser.add_argument("slug")
        parser.add_argument("amount")
        parser.add_argument("currency")
        parser.add_argument("--sandbox", action="store_true")
        parser.add_argument("--description", default="Operator deposit")

    def handle(self, *args, **options) -> str:
        tenant = self.handle_tenant(options["slug"], sandbox=options["sandbox"])
        with tenant_context(tenant):
            account = funds_deposit(
                currency=options["currency"],
                amount=options["amount"],
                description=options["description"],
                actor=Actor.cli(),
            )
            balance = balance_get(currency=account.currency)
        assert balance is not None  # the deposit just credited this currency
        return format_amount(balance.available, balance.currency)
