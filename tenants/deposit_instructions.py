"""The operator's deposit instructions (public schema, tenants.DepositInstructions): set per currency in the
operator console, read by the tenants' Funds pages, falling back to FUNDS_DEPOSIT_INSTRUCTIONS."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tenants.utils import schema_context

from audit.actors import Actor
from core.errors import ApplicationError

from .models import DepositInstructions

logger = logging.getLogger(__name__)
MAX_TEXT = 2000


def deposit_instructions_set(*, currency: str, text: str, actor: Actor) -> DepositInstructions | None:
    """Set (or, with an empty text, remove) the instructions for `currency` ("" = the default for all). The
    audit log lives in each tenant's schema and this is platform-wide, so the row keeps who changed it and when,
    and the change is logged as an event."""
    currency = currency.strip().upper()
    text = text.strip()
    if currency and (len(currency) != 3 or not currency.isascii() or not currency.isalpha()):
        raise ApplicationError(
            _("A currency is three letters, e.g. USD."),
            code="validation_error",
            errors={"currency": [_("Three letters.")]},
        )
    if len(text) > MAX_TEXT:
        raise ApplicationError(
            _("At most %(n)d characters.") % {"n": MAX_TEXT}, code="validation_error", errors={"text": [_("Too long.")]}
        )
    with schema_context("public"), transaction.atomic():
        if not text:
            DepositInstructions.objects.filter(currency=currency).delete()
            row = None
        else:
            row, _created = DepositInstructions.objects.update_or_create(
                currency=currency, defaults={"text": text, "updated_at": timezone.now(), "updated_by": actor.label}
            )
    logger.info(
        "deposit instructions changed",
        extra={"event": "console.deposit_instructions", "currency": currency or "*", "actor": actor.label,
               "removed": row is None},
    )  # fmt: skip
    return row


def deposit_instructions_list() -> list[DepositInstructions]:
    with schema_context("public"):
        return list(DepositInstructions.objects.all())


def deposit_instructions_text(*, currency: str) -> str:
    """The instructions for deposits in `currency`: the operator's for that currency, else their default, else
    FUNDS_DEPOSIT_INSTRUCTIONS ("" when none)."""
    # A shared-app table: found through the tenant's search_path (tenant, public), no schema switch needed.
    rows = {row.currency: row.text for row in DepositInstructions.objects.filter(currency__in=[currency, ""])}
    return rows.get(currency) or rows.get("") or str(settings.FUNDS_DEPOSIT_INSTRUCTIONS).strip()
