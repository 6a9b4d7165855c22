"""Funds (finance and admins): balances, the ledger statement with filters and CSV export, deposit
instructions and a deposit request to the operator, low-balance thresholds and who is emailed about them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import QuerySet
from django.shortcuts import redirect
from django.utils import timezone
from django.views import View

from core.csv_export import csv_response
from core.errors import ApplicationError
from core.money import format_amount
from funds.deposit_requests import deposit_request_create
from funds.models import LedgerTransaction, TransactionKind
from funds.selectors import balance_list, deposit_request_list, low_balance_recipients, transaction_list
from funds.services import funds_set_low_balance_threshold, low_balance_recipients_set
from orders.reports import breakage_by_currency
from points.selectors import points_liabilities

from ..fields import AmountField, amount_text
from ..mixins import PortalMixin, PortalView
from ..permissions import Perm
from .orders import _day_start, after_cursor, encode_cursor, money

PAGE_SIZE = 50
# Shown on the page as is until the operator sets FUNDS_DEPOSIT_INSTRUCTIONS (settings) to their bank details.
DEFAULT_DEPOSIT_INSTRUCTIONS = (
    "Send a bank transfer to the operator's account:\n"
    "Bank: (set FUNDS_DEPOSIT_INSTRUCTIONS)\nIBAN / account number: —\nSWIFT / routing: —\n"
    "Use your company name and a reference you choose, then tell us below so we can match it."
)


def deposit_instructions() -> str:
    return settings.FUNDS_DEPOSIT_INSTRUCTIONS or DEFAULT_DEPOSIT_INSTRUCTIONS


class StatementFilterForm(forms.Form):
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *TransactionKind.choices])
    currency = forms.CharField(required=False, max_length=3, widget=forms.TextInput(attrs={"placeholder": "USD"}))
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def clean_currency(self) -> str:
        value = self.cleaned_data["currency"].strip().upper()
        if value and (len(value) != 3 or not value.isalpha()):
            raise forms.ValidationError("A three-letter currency code, e.g. USD.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date is before the start date.")
        return data


class DepositRequestForm(forms.Form):
    amount = AmountField()  # "12,500.00" as typed; the currency's minor units are the service's check
    currency = forms.CharField(max_length=3, initial="USD")
    reference = forms.CharField(max_length=100, help_text="The reference on your bank transfer")


class ThresholdForm(forms.Form):
    currency = forms.CharField(max_length=3)
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
    page_title = "Funds"
    template_name = "portal/funds/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = StatementFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        cursor = self.request.GET.get("after")
        rows = list(after_cursor(filtered_statement(filters), cursor)[: PAGE_SIZE + 1])
        transactions = rows[:PAGE_SIZE]
        query = self.request.GET.copy()
        query.pop("after", None)
        balances = balance_list()
        recipients = low_balance_recipients()
        context.update(
            filter_form=form,
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
            transactions=[{"t": t, "amount": money(t.amount, t.currency)} for t in transactions],
            next_cursor=encode_cursor(transactions[-1]) if len(rows) > PAGE_SIZE else None,
            is_first_page=not cursor,
            filter_query=query.urlencode(),
            instructions=deposit_instructions(),
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
        context.setdefault("deposit_form", DepositRequestForm())
        context.setdefault(
            "threshold_form", ThresholdForm(initial={"currency": balances[0].currency if balances else "USD"})
        )
        context.setdefault("recipients_form", RecipientsForm(initial={"emails": "\n".join(recipients)}))
        return context

    def post(self, request):
        handler = {
            "deposit_request": self._deposit_request,
            "threshold": self._threshold,
            "recipients": self._recipients,
        }.get(request.POST.get("form", ""))
        if handler is None:
            messages.error(request, "Unknown form.")
            return redirect("portal:funds")
        return handler(request)

    def _invalid(self, **forms_with_errors):
        return self.render_to_response(self.get_context_data(**forms_with_errors), status=200)

    def _deposit_request(self, request):
        form = DepositRequestForm(request.POST)
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
                messages.success(request, f"Deposit request for {amount} sent to the operator.")
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
                shown = money(value, account.currency) if value is not None else "none"
                messages.success(request, f"Low-balance alert for {account.currency}: {shown}.")
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
                messages.success(request, f"Low-balance alerts go to {', '.join(stored) or 'nobody'}.")
                return redirect("portal:funds")
        return self._invalid(recipients_form=form)


STATEMENT_HEADER = ["created_at", "transaction_id", "kind", "amount", "currency", "description", "reference"]


def statement_rows(transactions: QuerySet[LedgerTransaction]) -> Iterator[list[object]]:
    for t in transactions.iterator(chunk_size=1000):
        yield [
            t.created_at.isoformat(), t.id, t.kind, format_amount(t.amount, t.currency), t.currency,
            t.description, t.reference,
        ]  # fmt: skip


class StatementExportView(PortalMixin, View):
    permission = Perm.FUNDS

    def get(self, request):
        form = StatementFilterForm(request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        self.audit("funds.statement_export", object_type="ledger", data={k: str(v) for k, v in filters.items() if v})
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = csv_response(
            filename=f"statement-{stamp}.csv", header=STATEMENT_HEADER, rows=statement_rows(filtered_statement(filters))
        )
        response["Cache-Control"] = "no-store"
        return response
