"""Operator console: the tenants list (search, balances per page), creating a tenant, suspending/reactivating."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.http import require_POST
from django_tenants.utils import get_public_schema_name, tenant_context

from core.errors import ApplicationError
from tenants.models import Tenant

from .base import operator_actor, operator_required


class TenantCreateForm(forms.Form):
    slug = forms.CharField(
        label=gettext_lazy("Slug"),
        max_length=40,
        help_text=gettext_lazy("Lowercase letters, digits and hyphens; the portal host name."),
    )
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    currency = forms.CharField(
        label=gettext_lazy("Currency"),
        max_length=3,
        initial="USD",
        help_text=gettext_lazy("Three-letter ISO 4217 code."),
    )


TENANTS_PER_PAGE = 50


def _live_tenants():
    return Tenant.objects.exclude(schema_name=get_public_schema_name()).filter(is_sandbox=False)


@operator_required
def tenants_view(request):
    from tenants.services import tenant_create

    form = TenantCreateForm()
    status = 200
    if request.method == "POST":
        form = TenantCreateForm(request.POST)
        if form.is_valid():
            try:
                tenant = tenant_create(**form.cleaned_data, actor=operator_actor(request))
            except ApplicationError as exc:
                for field, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
                if not exc.errors:
                    form.add_error(None, exc.detail)
                status = 422
            else:
                messages.success(request, gettext("Tenant %(slug)s created.") % {"slug": tenant.slug})
                return redirect("console:tenants")
        else:
            status = 422
    from funds.selectors import balance_list

    query = request.GET.get("q", "").strip()
    listed = _live_tenants().prefetch_related("domains").order_by("slug")
    if query:
        matches = Q(slug__icontains=query) | Q(name__icontains=query) | Q(domains__domain__icontains=query)
        listed = listed.filter(matches)
    page = Paginator(listed.distinct(), TENANTS_PER_PAGE).get_page(request.GET.get("page"))
    tenants = list(page.object_list)
    for tenant in tenants:  # one schema visit per tenant shown: a page, never all of them
        with tenant_context(tenant):
            tenant.console_balances = balance_list()
    connection.set_schema_to_public()
    return render(
        request,
        "console/tenants.html",
        {"tenants": tenants, "page": page, "query": query, "form": form, "page_title": gettext("Tenants"),
         "nav_section": "tenants"},
        status=status,
    )  # fmt: skip


@operator_required
@require_POST
def tenant_status_view(request, slug: str):
    from tenants.services import tenant_set_status

    tenant = _live_tenants().filter(slug=slug).first()
    if tenant is None:
        raise Http404("No such tenant")
    new_status = request.POST.get("status", "")
    try:
        tenant_set_status(tenant=tenant, status=new_status, actor=operator_actor(request))
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            (
                gettext("Tenant %(slug)s is now active.")
                if new_status == "active"
                else gettext("Tenant %(slug)s is now suspended.")
            )
            % {"slug": tenant.slug},
        )
    return redirect("console:tenants")


@operator_required
def home_view(request):
    return redirect("console:tenants")
