"""Operator console: pending deposit requests across tenants; approve & credit (after a confirmation page) or
reject."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django_tenants.utils import tenant_context

from core.db import connection
from core.errors import ApplicationError

from ..templatetags.portal_tags import money
from .base import operator_actor, operator_required, tenant_schemas


@operator_required
def deposits_view(request):
    from funds.models import DepositRequestStatus
    from funds.selectors import deposit_request_list

    rows = []
    for tenant in tenant_schemas():
        with tenant_context(tenant):
            for deposit in deposit_request_list().filter(status=DepositRequestStatus.PENDING):
                rows.append({"tenant": tenant, "deposit": deposit})
    connection.set_schema_to_public()
    rows.sort(key=lambda row: row["deposit"].created_at)
    return render(
        request,
        "console/deposits.html",
        {"rows": rows, "page_title": gettext("Deposit requests"), "nav_section": "deposits"},
    )


class DepositApproveForm(forms.Form):
    confirm = forms.BooleanField(
        label="I have checked the bank statement: this money has arrived.",
        error_messages={
            "required": gettext_lazy("Tick the box to confirm the money has arrived; nothing was credited.")
        },
    )


def _pending_deposit(tenant, request_id):
    from funds.models import DepositRequestStatus
    from funds.selectors import deposit_request_list

    with tenant_context(tenant):
        deposit = deposit_request_list().filter(pk=request_id).first()
    if deposit is None:
        raise Http404("No such deposit request")
    return deposit if deposit.status == DepositRequestStatus.PENDING else None


def _deposit_confirm_page(request, tenant, deposit, form: DepositApproveForm, status: int = 200):
    context = {
        "tenant": tenant,
        "deposit": deposit,
        "amount": money(deposit.amount, deposit.currency),
        "form": form,
        "page_title": gettext("Approve & credit"),
        "nav_section": "deposits",
    }
    return render(request, "console/deposit_confirm.html", context, status=status)


@operator_required
def deposit_resolve_view(request, schema: str, request_id, action: str):
    """Approve & credit asks first (GET: a page naming tenant, amount and currency; POST: only with the box
    ticked); reject moves no money and needs no confirmation."""
    from funds.deposit_requests import deposit_request_approve, deposit_request_reject

    tenant = tenant_schemas().filter(schema_name=schema).first()
    if tenant is None or action not in ("approve", "reject"):
        raise Http404("No such tenant")
    if request.method not in ("GET", "POST") or (request.method == "GET" and action != "approve"):
        return HttpResponseNotAllowed(["POST"] if action == "reject" else ["GET", "POST"])
    if action == "approve":
        deposit = _pending_deposit(tenant, request_id)
        if deposit is None:
            messages.info(
                request, gettext("That deposit request is no longer pending: it was already credited or rejected.")
            )
            return redirect("console:deposits")
        form = DepositApproveForm(request.POST if request.method == "POST" else None)
        if not form.is_valid():
            return _deposit_confirm_page(request, tenant, deposit, form, status=422 if form.is_bound else 200)
    service = deposit_request_approve if action == "approve" else deposit_request_reject
    try:
        with tenant_context(tenant):
            deposit = service(request_id=request_id, actor=operator_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        values = {"amount": f"{money(deposit.amount, deposit.currency)} {deposit.currency}", "tenant": tenant.name}
        if action == "approve":
            messages.success(request, gettext("%(amount)s credited to %(tenant)s.") % values)
        else:
            messages.success(request, gettext("%(amount)s rejected for %(tenant)s.") % values)
    connection.set_schema_to_public()
    return redirect("console:deposits")


class DepositInstructionsForm(forms.Form):
    currency = forms.CharField(
        required=False, max_length=3, label=gettext_lazy("Currency"),
        help_text=gettext_lazy("Three letters, e.g. USD; empty: every currency without its own."),
    )  # fmt: skip
    text = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 5}), label=gettext_lazy("Bank details"),
        help_text=gettext_lazy("Shown on tenants' Funds pages; {reference} becomes the tenant's transfer "
                               "reference. Empty removes them."),
    )  # fmt: skip


@operator_required
def deposit_instructions_view(request):
    """GET: the deposit instructions per currency; POST: set or remove one (tenants.deposit_instructions)."""
    from tenants.deposit_instructions import deposit_instructions_list, deposit_instructions_set

    form = DepositInstructionsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deposit_instructions_set(
                currency=form.cleaned_data["currency"], text=form.cleaned_data["text"], actor=operator_actor(request)
            )
        except ApplicationError as exc:
            for field, errors in (exc.errors or {}).items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
        else:
            messages.success(request, gettext("Deposit instructions saved."))
            return redirect("console:deposit_instructions")
    return render(
        request,
        "console/deposit_instructions.html",
        {
            "form": form,
            "rows": deposit_instructions_list(),
            "page_title": gettext("Deposit instructions"),
            "nav_section": "deposits",
        },
        status=400 if form.errors else 200,
    )
