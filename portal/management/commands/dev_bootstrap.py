"""Idempotent demo data for `make dev`: a demo tenant with funds, a portal admin and fresh API keys."""

from django.conf import settings
from django.core.management import call_command
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.services import staff_create
from audit.actors import Actor
from funds.selectors import balance_get
from funds.services import funds_deposit
from programs.models import Program
from programs.services import program_create
from tenants.management.base import OperatorCommand
from tenants.models import ApiKey, Tenant
from tenants.services import api_key_create, api_key_revoke, tenant_create, tenant_sandbox_ensure

DEMO_SLUG = "demo"
DEMO_EMAIL = "admin@demo.example"
DEMO_PASSWORD = "demo-password-123"  # dev only: printed on every `make dev`
DEV_KEY_NAME = "make dev"


class Command(OperatorCommand):
    help = "Create (once) the demo tenant, funds and an admin; print the login and fresh API keys (revoking older)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", default="8000")

    def handle(self, *args, **options) -> None:
        actor = Actor.cli()
        call_command("catalog_load_demo", stdout=self.stdout)
        live = Tenant.objects.filter(slug=DEMO_SLUG, is_sandbox=False).first()
        if live is None:
            live = tenant_create(slug=DEMO_SLUG, name="Demo Company", currency="USD", actor=actor)
        # The demo shows the sandbox too: depositing its test funds is its first use (provisions the twin's schema).
        sandbox = tenant_sandbox_ensure(tenant=live)
        for tenant, amounts in ((live, {"USD": "10000.00", "EUR": "5000.00"}), (sandbox, {"USD": "100000.00"})):
            with tenant_context(tenant):
                for currency, amount in amounts.items():
                    if balance_get(currency=currency) is None:
                        funds_deposit(currency=currency, amount=amount, description="Demo funds", actor=actor)
                if not Program.objects.filter(slug="spot-awards").exists():
                    program_create(slug="spot-awards", name="Spot awards", sender_name="Demo Company")
                if not tenant.is_sandbox and not User.objects.filter(email=DEMO_EMAIL).exists():
                    staff_create(email=DEMO_EMAIL, role="admin", password=DEMO_PASSWORD, name="Demo Admin", actor=actor)
        # Keys are stored as hashes only, so the ones printed last time cannot be shown again: issue fresh ones
        # and revoke the earlier `make dev` keys, so restarts never pile up live credentials.
        earlier = list(ApiKey.objects.filter(tenant__in=[live, sandbox], name=DEV_KEY_NAME, revoked_at=None))
        _, live_key = api_key_create(tenant=live, name=DEV_KEY_NAME, actor=actor)
        _, test_key = api_key_create(tenant=sandbox, name=DEV_KEY_NAME, actor=actor)
        for key in earlier:
            api_key_revoke(key=key, actor=actor)
        port = options["port"]
        lines = [
            "",
            "rewards_portal is starting — demo tenant 'demo' (USD 10,000 and EUR 5,000 live; USD 100,000 sandbox)",
            f"  API:        http://127.0.0.1:{port}/api/v1/   docs: http://127.0.0.1:{port}/api/docs/",
            f"  Portal:     http://{DEMO_SLUG}.{settings.PORTAL_DOMAIN}:{port}/login/",
            f"  Login:      {DEMO_EMAIL} / {DEMO_PASSWORD}",
            f"  Live key:   {live_key}",
            f"  Test key:   {test_key}",
            f"  Try:        curl -H 'Authorization: Bearer {test_key}' http://127.0.0.1:{port}/api/v1/balances",
            "",
        ]
        self.stdout.write("\n".join(lines))
