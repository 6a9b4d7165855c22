"""Funds (finance and admins): balances, the ledger statement with filters and CSV export, deposit
instructions and a deposit request to the operator, low-balance thresholds and who is emailed about them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import QuerySet
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views import View

from core.csv_export import csv_response
from core.errors import ApplicationError
from core.money import format_amount
from funds.deposit_requests import deposit_request_create
from funds.models import LedgerTransaction, TransactionKind
from funds.selectors import balance_list, deposit_request_list, low_balance_recipients, transaction_list
from funds.services import funds_set_low_balance_threshold, low_balance_recipients_set
from funds.statements import monthly_statement, posted_deltas, running_balances, statement_months
from orders.ledger_groups import ledger_groups
from orders.reports import breakage_by_currency
from points.selectors import points_liabilities

from ..fields import AmountField, amount_text
from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
from .orders import _day_start, after_cursor, encode_cursor, money

PAGE_SIZE = 50
EXPORT_CHUNK = 1000  # ledger lines per round trip while streaming, plus one query for their balance movements


def deposit_instructions(*, reference: str, currency: str) -> dict[str, str]:
    """The operator's bank details for `currency` (set in the console, else FUNDS_DEPOSIT_INSTRUCTIONS;
    `{reference}` in them becomes this tenant's transfer reference), or, where the operator published none, what
    to do instead: never a placeholder."""
    from tenants.deposit_instructions import deposit_instructions_text

    text = deposit_instructions_text(currency=currency)
    if not text:
        return {"details": "", "reference": reference}
    return {"details": text.replace("{reference}", reference), "reference": reference}


def tenant_currencies(balances: list[Any] | None = None) -> list[str]:
    """The currencies this schema has accounts in (its default currency first), else its default currency: what
    the currency menus offer."""
    from tenants.selectors import tenant_current

    default = tenant_current().live_tenant.default_currency
    currencies = [b.currency for b in (balance_list() if balances is None else balances)]
    return sorted(set(currencies) | {default}, key=lambda c: (c != default, c)) if currencies else [default]


def _upper_currency(data: Any) -> Any:
    """Form data with its currency code in capitals ("usd" is USD), copied: request data is immutable."""
    if data is None or not data.get("currency"):
        return data
    data = data.copy()
    data["currency"] = str(data["currency"]).strip().upper()
    return data


class StatementFilterForm(forms.Form):
    currency = forms.ChoiceField(label=_("Currency"), choices=[])
    view = forms.ChoiceField(
        required=False,
        label=_("Show"),
        choices=[("", _("Every ledger line")), ("orders", _("Grouped by order and batch"))],
    )
    kind = forms.ChoiceField(required=False, choices=[("", _("Any kind")), *TransactionKind.choices])
    since = forms.DateField(required=False, label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, data=None, *, currencies: list[str], **kwargs: Any) -> None:
        data = _upper_currency(data.copy()) if data is not None else {}
        data.setdefault("currency", currencies[0])  # the statement is always of one currency: its balance
        super().__init__(data, **kwargs)
        self.fields["currency"].choices = [(c, c) for c in currencies]  # type: ignore[attr-defined]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date is before the start date.")
        return data


class CurrencyChoiceMixin:
    """A `currency` menu of the tenant's currencies (was a free-text box)."""

    def __init__(self, data: Any = None, *args: Any, currencies: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(_upper_currency(data), *args, **kwargs)  # type: ignore[call-arg]
        choices = currencies or tenant_currencies()
        self.fields["currency"].choices = [(c, c) for c in choices]  # type: ignore[attr-defined]


class DepositRequestForm(CurrencyChoiceMixin, forms.Form):
    amount = AmountField()  # "12,500.00" as typed; the currency's minor units are the service's check
    currency = forms.ChoiceField(choices=[])
    reference = forms.CharField(max_length=100, help_text="The reference on your bank transfer")


class ThresholdForm(CurrencyChoiceMixin, forms.Form):
    currency = forms.ChoiceField(choices=[])
    threshold = AmountField(required=False, allow_zero=True, label="Alert below", help_text="Leave empty for no alert")


class RecipientsForm(forms.Form):
    emails = forms.CharField(
        required=False,
        label="Who gets the alert",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Email addresses, one per line or separated by commas",
    )


def filtered_statement(filters: dict[str, Any]) -> QuerySet[LedgerTransaction]:
    qs = transaction_list(kind=filters.get("kind") or None, currency=filters.get("currency") or None)
    if since := filters.get("since"):
        qs = qs.filter(created_at__gte=_day_start(since))
    if until := filters.get("until"):
        qs = qs.filter(created_at__lt=_day_start(until + timedelta(days=1)))
    return qs.order_by("-created_at", "-id")


GROUP_FIGURES = ("held", "spent", "released", "refunded", "deposited", "net")


def deposit_currencies(currencies: list[str]) -> list[str]:
    """What a deposit may be in: the tenant's accounts, then the catalogue's other currencies."""
    from catalog.selectors import product_list_for_tenant

    offered = set(product_list_for_tenant().prefetch_related(None).values_list("currency", flat=True).distinct())
    return currencies + sorted(offered - set(currencies))


def _month_param(value: str | None) -> date | None:
    try:
        return datetime.strptime(value or "", "%Y-%m").date()
    except ValueError:
        return None


REWARD_REFERENCE = re.compile(r"reward:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def _group_of(reference: str) -> str:
    """The reward a ledger line belongs to, for the link beside it ("" for other lines)."""
    match = REWARD_REFERENCE.fullmatch(reference)
    return match.group(1) if match else ""


def _apply_service_error(form: forms.Form, exc: ApplicationError, *, field_map: dict[str, str] | None = None) -> None:
    placed = False
    for field, errors in (exc.errors or {}).items():
        name = (field_map or {}).get(field, field)
        for error in errors:
            form.add_error(name if name in form.fields else None, error)
            placed = True
    if not placed:
        form.add_error(None, exc.detail)


class FundsView(PortalView):
    permission = Perm.FUNDS
    nav_section = "funds"
    page_title = gettext_lazy("Funds")
    template_name = "portal/funds/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        balances = balance_list()
        currencies = tenant_currencies(balances)
        form = StatementFilterForm(self.request.GET or None, currencies=currencies)
        filters = form.cleaned_data if form.is_valid() else {"currency": currencies[0]}
        currency = filters["currency"]
        cursor = self.request.GET.get("after")
        query = self.request.GET.copy()
        query.pop("after", None)
        if "currency" not in query:
            query["currency"] = currency
        rows: list[LedgerTransaction] = []
        groups = []
        if filters.get("view") == "orders":
            groups = ledger_groups(
                currency=currency,
                since=_day_start(filters["since"]) if filters.get("since") else None,
                until=_day_start(filters["until"] + timedelta(days=1)) if filters.get("until") else None,
            )
        else:
            rows = list(after_cursor(filtered_statement(filters), cursor)[: PAGE_SIZE + 1])
        transactions = rows[:PAGE_SIZE]
        # A running balance needs every line between two shown ones: only when no kind is filtered out.
        running = running_balances(transactions) if not filters.get("kind") else {}
        month = _month_param(self.request.GET.get("month"))
        months = statement_months(currency=currency)
        statement = monthly_statement(currency=currency, month=month or months[0])
        recipients = low_balance_recipients()
        context.update(
            filter_form=form,
            currency=currency,
            groups=[{"g": g, **{n: money(getattr(g, n), currency) for n in GROUP_FIGURES}} for g in groups],
            statement=statement.as_dict(),
            statement_months=[m.strftime("%Y-%m") for m in months],
            shows_running=bool(running),
            balances=[
                {
                    "b": b,
                    "available": money(b.available, b.currency),
                    "held": money(b.held, b.currency),
                    "posted": money(b.posted, b.currency),
                    "threshold": money(b.low_balance_threshold, b.currency),
                    "low": b.low_balance_threshold is not None and b.available < b.low_balance_threshold,
                }
                for b in balances
            ],
            transactions=[
                {
                    "t": t,
                    "amount": money(t.amount, t.currency),
                    "balance": money(running[t.id], t.currency) if t.id in running else "",
                    "group": _group_of(t.reference),
                }
                for t in transactions
            ],
            next_cursor=encode_cursor(transactions[-1]) if len(rows) > PAGE_SIZE else None,
            is_first_page=not cursor,
            filter_query=query.urlencode(),
            instructions=deposit_instructions(
                reference=f"{self.tenant.slug.upper()}-FUNDS", currency=self.tenant.live_tenant.default_currency
            ),
            # Money held for points people have not spent yet: part of `held` above, shown per program.
            points_liabilities=[
                {"l": row, "value": money(row.value, row.program.points_currency)} for row in points_liabilities()
            ],
            deposit_requests=[{"d": d, "amount": money(d.amount, d.currency)} for d in deposit_request_list()[:5]],
            recipients=recipients,
            breakage=[
                {
                    "currency": row.currency,
                    "released": money(row.released, row.currency),
                    "released_count": row.released_count,
                    "kept": money(row.kept, row.currency),
                    "kept_count": row.kept_count,
                }
                for row in breakage_by_currency()
            ],
        )
        context.setdefault("deposit_form", DepositRequestForm(currencies=deposit_currencies(currencies)))
        context.setdefault("threshold_form", ThresholdForm(initial={"currency": currency}, currencies=currencies))
        context.setdefault("recipients_form", RecipientsForm(initial={"emails": "\n".join(recipients)}))
        return context

    def post(self, request):
        handler = {
            "deposit_request": self._deposit_request,
            "threshold": self._threshold,
            "recipients": self._recipients,
        }.get(request.POST.get("form", ""))
        if handler is None:
            messages.error(request, gettext("Unknown form."))
            return redirect("portal:funds")
        return handler(request)

    def _invalid(self, **forms_with_errors):
        return self.render_to_response(self.get_context_data(**forms_with_errors), status=200)

    def _deposit_request(self, request):
        form = DepositRequestForm(request.POST, currencies=deposit_currencies(tenant_currencies()))
        if form.is_valid():
            try:
                deposit = deposit_request_create(
                    currency=form.cleaned_data["currency"],
                    amount=form.cleaned_data["amount"],
                    reference=form.cleaned_data["reference"],
                    requested_by=request.user.email,
                    actor=self.actor,
                )
            except ApplicationError as exc:
                _apply_service_error(form, exc)
            else:
                amount = f"{format_amount(deposit.amount, deposit.currency)} {deposit.currency}"
                messages.success(
                    request, gettext("Deposit request for %(amount)s sent to the operator.") % {"amount": amount}
                )
                return redirect("portal:funds")
        return self._invalid(deposit_form=form)

    def _threshold(self, request):
        form = ThresholdForm(request.POST)
        if form.is_valid():
            try:
                account = funds_set_low_balance_threshold(
                    currency=form.cleaned_data["currency"],
                    threshold=amount_text(form.cleaned_data["threshold"]) or None,
                    actor=self.actor,
                )
            except ApplicationError as exc:
                _apply_service_error(form, exc, field_map={"low_balance_threshold": "threshold"})
            else:
                value = account.low_balance_threshold
                shown = money(value, account.currency) if value is not None else gettext("none")
                messages.success(
                    request,
                    gettext("Low-balance alert for %(currency)s: %(threshold)s.")
                    % {"currency": account.currency, "threshold": shown},
                )
                return redirect("portal:funds")
        return self._invalid(threshold_form=form)

    def _recipients(self, request):
        form = RecipientsForm(request.POST)
        if form.is_valid():
            raw = form.cleaned_data["emails"].replace(",", "\n").splitlines()
            try:
                stored = low_balance_recipients_set(emails=raw, actor=self.actor)
            except ApplicationError as exc:
                _apply_service_error(form, exc)
            else:
                messages.success(
                    request,
                    gettext("Low-balance alerts go to %(emails)s.") % {"emails": ", ".join(stored)}
                    if stored
                    else gettext("Low-balance alerts go to nobody."),
                )
                return redirect("portal:funds")
        return self._invalid(recipients_form=form)


STATEMENT_HEADER = [
    "created_at", "transaction_id", "kind", "amount", "currency", "description", "reference", "balance_after",
]  # fmt: skip
GROUPS_HEADER = ["group", "label", "first_at", "last_at", "lines", *GROUP_FIGURES, "currency"]
MONTHLY_HEADER = ["month", "currency", "opening", "deposits", "spend", "refunds", "adjustments", "closing"]


def _chunks(rows: Iterator[LedgerTransaction], size: int) -> Iterator[list[LedgerTransaction]]:
    while chunk := list(islice(rows, size)):
        yield chunk


def statement_rows(transactions: QuerySet[LedgerTransaction], *, with_balance: bool) -> Iterator[list[object]]:
    """The lines newest first, each with the posted balance after it (walked down from the newest line's; only
    `with_balance` when no kind is filtered out)."""
    balance: Decimal | None = None
    for chunk in _chunks(transactions.iterator(chunk_size=EXPORT_CHUNK), EXPORT_CHUNK):
        deltas: dict[Any, Decimal] = {}
        if with_balance:
            if balance is None:
                balance = running_balances([chunk[0]])[chunk[0].id]
            deltas = posted_deltas([t.id for t in chunk])
        for t in chunk:
            shown = format_amount(balance, t.currency) if balance is not None else ""
            yield [
                t.created_at.isoformat(), t.id, t.kind, format_amount(t.amount, t.currency), t.currency,
                t.description, t.reference, shown,
            ]  # fmt: skip
            if balance is not None:
                balance -= deltas.get(t.id, Decimal(0))


class StatementExportView(PortalMixin, View):
    """The statement as CSV: every line with its running balance, the lines grouped by order and batch
    (`view=orders`), or the monthly statement (`view=monthly&month=YYYY-MM`)."""

    permission = Perm.FUNDS

    def get(self, request):
        currencies = tenant_currencies()
        form = StatementFilterForm(request.GET or None, currencies=currencies)
        filters = form.cleaned_data if form.is_valid() else {"currency": currencies[0]}
        currency = filters["currency"]
        view = request.GET.get("view", "")
        self.audit(
            "funds.statement_export",
            object_type="ledger",
            data={**{k: str(v) for k, v in filters.items() if v}, "view": view or "lines"},
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        if view == "monthly":
            month = _month_param(request.GET.get("month")) or timezone.now().date()
            statement = monthly_statement(currency=currency, month=month).as_dict()
            response = csv_response(
                filename=f"statement-{currency}-{statement['month']}.csv",
                header=MONTHLY_HEADER,
                rows=[[statement[name] for name in MONTHLY_HEADER]],
                streaming=False,
            )
        elif view == "orders":
            groups = ledger_groups(
                currency=currency,
                since=_day_start(filters["since"]) if filters.get("since") else None,
                until=_day_start(filters["until"] + timedelta(days=1)) if filters.get("until") else None,
            )
            rows = [
                [g.key, g.label, g.first_at.isoformat(), g.last_at.isoformat(), g.lines,
                 *(format_amount(getattr(g, n), currency) for n in GROUP_FIGURES), currency]
                for g in groups
            ]  # fmt: skip
            response = csv_response(
                filename=f"statement-by-order-{stamp}.csv", header=GROUPS_HEADER, rows=rows, streaming=False
            )
        else:
            response = csv_response(
                filename=f"statement-{stamp}.csv",
                header=STATEMENT_HEADER,
                rows=statement_rows(filtered_statement(filters), with_balance=not filters.get("kind")),
            )
        response["Cache-Control"] = "no-store"
        return response
