"""Deposit requests: a tenant tells the operator it sent money (the operators are emailed); the operator
approves it once the money is on the bank statement (the ledger is credited once) or rejects it."""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.errors import ApplicationError
from core.money import format_amount, parse_amount, parse_currency
from tenants.selectors import tenant_current

from .models import DepositRequest
from .services import deposit_post

if TYPE_CHECKING:
    from tenants.models import Tenant

logger = logging.getLogger(__name__)

DEPOSIT_REQUEST_MAX_AMOUNT = Decimal("100000000")  # a typo guard; larger deposits are arranged with the operator


def deposit_request_create(
    *, currency: str, amount: object, reference: str, requested_by: str, actor: Actor | None = None
) -> DepositRequest:
    """Record a tenant's deposit notice and email the operators (is_staff users on the public schema).

    Audited as `funds.deposit_request`.
    """
    currency = parse_currency(currency)
    value = parse_amount(amount, currency, field="amount")
    if value > DEPOSIT_REQUEST_MAX_AMOUNT:
        raise ApplicationError(
            "That amount is too large for a deposit request: contact the operator.",
            code="validation_error",
            errors={"amount": [f"At most {DEPOSIT_REQUEST_MAX_AMOUNT:,} per request."]},
        )
    reference = reference.strip()
    if not reference:
        raise ApplicationError("A reference is required.", code="validation_error", errors={"reference": ["Required."]})
    tenant = tenant_current()
    with transaction.atomic():
        deposit = DepositRequest.objects.create(
            currency=currency, amount=value, reference=reference[:100], requested_by=requested_by[:254]
        )
        audit_action(
            actor=actor, action="funds.deposit_request", object_type="deposit_request", object_id=deposit.id,
            data={"amount": f"{format_amount(value, currency)} {currency}", "reference": deposit.reference},
        )  # fmt: skip
        transaction.on_commit(lambda: _email_operators_about(deposit, tenant=tenant))
    logger.info("deposit requested", extra={"event": "funds.deposit_request", "currency": currency})
    return deposit


def _email_operators_about(deposit: DepositRequest, *, tenant: Tenant) -> None:
    from django.conf import settings
    from django.core.mail import send_mail
    from django.utils.translation import gettext
    from django_tenants.utils import get_public_schema_name, schema_context

    from accounts.models import User
    from accounts.services import staff_email_languages
    from core.i18n import language

    with schema_context(get_public_schema_name()):
        operators = list(User.objects.filter(is_staff=True, is_active=True).values_list("email", flat=True))
        groups = staff_email_languages(operators, default="")  # each operator's console language
    if not operators:
        logger.warning("deposit request with no operator to tell", extra={"event": "funds.deposit_request_unseen"})
        return
    amount = f"{format_amount(deposit.amount, deposit.currency)} {deposit.currency}"
    for code, emails in groups.items():
        with language(code):
            sandbox = gettext(", sandbox") if getattr(tenant, "is_sandbox", False) else ""
            values = {"tenant": tenant.name, "schema": tenant.schema_name, "sandbox": sandbox, "amount": amount,
                      "reference": deposit.reference, "by": deposit.requested_by, "id": deposit.id}  # fmt: skip
            send_mail(
                subject=gettext("Deposit request: %(amount)s from %(tenant)s") % values,
                message=gettext(
                    "%(tenant)s (%(schema)s%(sandbox)s) says it sent %(amount)s.\n"
                    "Reference: %(reference)s\nRequested by: %(by)s\nRequest id: %(id)s\n\n"
                    "Approve it in the operator console once the money has arrived."
                )
                % values,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=emails,
            )


def _deposit_request_resolve(*, request_id: uuid.UUID | str, to: str, actor: Actor) -> DepositRequest:
    from core.errors import NotFoundError

    from .models import DepositRequestStatus

    with transaction.atomic():
        deposit = DepositRequest.objects.select_for_update().filter(pk=request_id).first()
        if deposit is None:
            raise NotFoundError("No such deposit request.")
        if deposit.status != DepositRequestStatus.PENDING:
            raise ApplicationError(
                f"This deposit request is already {deposit.status}.", code="deposit_request_resolved", status=409
            )
        if to == DepositRequestStatus.CREDITED:
            deposit_post(
                currency=deposit.currency,
                value=parse_amount(deposit.amount, deposit.currency),
                description=f"Deposit {deposit.reference} (approved by {actor.name})"[:300],
                reference=f"deposit_request:{deposit.id}",
            )
        deposit.status = to
        deposit.resolved_at = timezone.now()
        deposit.save(update_fields=["status", "resolved_at"])
        audit_action(
            actor=actor, action=f"funds.deposit_request_{'approved' if to == 'credited' else 'rejected'}",
            object_type="deposit", object_id=deposit.id,
            data={"currency": deposit.currency, "amount": str(deposit.amount), "reference": deposit.reference},
        )  # fmt: skip
    logger.info(
        "deposit request resolved", extra={"event": f"funds.deposit_request_{to}", "currency": deposit.currency}
    )
    return deposit


def deposit_request_approve(*, request_id: uuid.UUID | str, actor: Actor) -> DepositRequest:
    """Operator: the money arrived. Credit the ledger once (in the current tenant schema) and mark it credited.

    One audit row, `funds.deposit_request_approved` (the posting records no `funds.deposit` of its own)."""
    return _deposit_request_resolve(request_id=request_id, to="credited", actor=actor)


def deposit_request_reject(*, request_id: uuid.UUID | str, actor: Actor) -> DepositRequest:
    """Operator: no such money arrived. Nothing is credited; audited as `funds.deposit_request_rejected`."""
    return _deposit_request_resolve(request_id=request_id, to="rejected", actor=actor)
