"""Hooks where funds changes announce themselves as webhook events (balance.credited, balance.low).

They run inside the posting's transaction (after its ledger entries are written, with the cash account row
still locked by that posting), so an event is recorded exactly when the change commits.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from core.money import format_amount

from .models import AccountKind, LedgerAccount


def on_deposit(*, currency: str, amount: Decimal) -> None:
    from webhooks.events import event_emit

    cash = LedgerAccount.objects.get(currency=currency, kind=AccountKind.CASH)
    event_emit(
        type="balance.credited",
        data={
            "currency": currency,
            "amount": format_amount(amount, currency),
            "available": format_amount(cash.balance, currency),
        },
    )


def on_available_decreased(*, currency: str, balance: Decimal, threshold: Decimal | None, delta: Decimal) -> None:
    """balance.low when this posting took available funds from at or above the threshold to below it.

    Only the crossing alerts, not every debit below the threshold. `balance` and `threshold` are the cash
    row as the posting's UPDATE ... RETURNING left it, `delta` the posting's (negative) change to it: the row
    stays locked by the posting until commit, so nothing needs reading again.
    """
    if threshold is None or balance >= threshold:
        return
    if balance - delta < threshold:
        return  # already below: alerted when it crossed
    from webhooks.events import event_emit

    event_emit(
        type="balance.low",
        data={
            "currency": currency,
            "available": format_amount(balance, currency),
            "low_balance_threshold": format_amount(threshold, currency),
        },
    )
    available = format_amount(balance, currency)
    transaction.on_commit(
        lambda: _email_low_balance(currency=currency, available=available, threshold=format_amount(threshold, currency))
    )


def _email_low_balance(*, currency: str, available: str, threshold: str) -> None:
    """The people the tenant chose (funds page) hear about it too, once the posting committed."""
    from django.conf import settings
    from django.core.mail import send_mail
    from django.utils.translation import gettext

    from accounts.services import staff_email_languages
    from core.i18n import language
    from tenants.selectors import tenant_current

    from .selectors import low_balance_recipients

    recipients = low_balance_recipients()
    if not recipients:
        return
    values = {"available": available, "threshold": threshold, "currency": currency}
    for code, emails in staff_email_languages(recipients, default=tenant_current().default_locale).items():
        with language(code):  # each in the language they read the portal in
            send_mail(
                subject=gettext("Low balance: %(available)s %(currency)s available") % values,
                message=gettext(
                    "Available %(currency)s funds fell below %(threshold)s %(currency)s: %(available)s %(currency)s "
                    "left.\nAdd funds from the Funds page of the rewards portal."
                )
                % values,
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=emails,
                fail_silently=True,  # an alert email must never break the posting that committed
            )
