"""The operator console (`/console/`): public host only, `is_staff` users of the public schema.

Tenants (create, suspend/reactivate), pending deposit requests across tenants (approve & credit / reject),
catalogue and supplier stock, and health (queues, failed rewards, disabled webhooks, worker heartbeat).
Operator actions are audited in the affected tenant's schema with actor `operator:<email>`.
On a tenant host every console URL is a 404.
"""

from __future__ import annotations

import functools
import math
import time
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import authenticate, login, logout
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Q
from django.http import Http404, HttpResponseForbidden, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django_tenants.utils import get_public_schema_name, tenant_context

from audit.services import audit_record
from core.errors import ApplicationError
from tenants.middleware import client_ip
from tenants.models import Tenant, TenantStatus

from .forms import LoginForm
from .templatetags.portal_tags import money
from .throttle import login_failure_record, login_retry_after

AUTH_BACKEND = "django.contrib.auth.backends.ModelBackend"
THROTTLE_SCOPE = "console"


def _on_public_host(request) -> bool:
    schema = getattr(getattr(request, "tenant", None), "schema_name", None)
    return getattr(request, "api_key", None) is None and schema == get_public_schema_name()


def public_host_only(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not _on_public_host(request):
            raise Http404("The operator console lives on the public host only")
        return view(request, *args, **kwargs)

    return wrapper


def operator_required(view):
    @public_host_only
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        user = request.user
        if not user.is_authenticated:
            return HttpResponseRedirect(f"{reverse('console:login')}?next={request.get_full_path()}")
        if not (user.is_active and user.is_staff):
            return HttpResponseForbidden("Operators only.")
        return view(request, *args, **kwargs)

    return wrapper


def _actor(request) -> str:
    return f"operator:{request.user.email}"


def _audit(request, tenant, action: str, **fields) -> None:
    with tenant_context(tenant):
        audit_record(actor=_actor(request), action=action, ip=client_ip(request), **fields)


def _render(request, template: str, context: dict, status: int = 200):
    return render(request, template, context, status=status)


# --- Sign-in ----------------------------------------------------------------------------------------


@public_host_only
def login_view(request):
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = ""
    next_url = next_url or reverse("console:tenants")
    if request.method == "GET":
        if request.user.is_authenticated and request.user.is_staff:
            return redirect(next_url)
        form = LoginForm()
    elif request.method == "POST":
        form = LoginForm(request.POST)
        if form.is_valid():
            email = form.cleaned_data["email"].strip().lower()
            ip = client_ip(request)
            retry_after = login_retry_after(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
            if retry_after:
                response = _render(
                    request,
                    "console/login.html",
                    {
                        "form": form,
                        "next": next_url,
                        "page_title": "Too many attempts",
                        "throttled_minutes": max(1, math.ceil(retry_after / 60)),
                    },
                    status=429,
                )
                response["Retry-After"] = str(retry_after)
                return response
            user = authenticate(request, username=email, password=form.cleaned_data["password"])
            if user is None or not user.is_staff:
                login_failure_record(tenant_schema=THROTTLE_SCOPE, email=email, ip=ip)
                form.add_error(None, "That email and password don't match an operator account.")
            else:
                login(request, user, backend=AUTH_BACKEND)
                return redirect(next_url)
    else:
        return HttpResponseNotAllowed(["GET", "POST"])
    return _render(request, "console/login.html", {"form": form, "next": next_url, "page_title": "Operator sign-in"})


@public_host_only
@require_POST
def logout_view(request):
    logout(request)
    return redirect("console:login")


# --- Tenants ----------------------------------------------------------------------------------------


class TenantCreateForm(forms.Form):
    slug = forms.CharField(max_length=40, help_text="Lowercase letters, digits and hyphens; the portal host name.")
    name = forms.CharField(max_length=200)
    currency = forms.CharField(max_length=3, initial="USD", help_text="Three-letter ISO 4217 code.")


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
                tenant = tenant_create(**form.cleaned_data)
            except ApplicationError as exc:
                for field, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
                if not exc.errors:
                    form.add_error(None, exc.detail)
                status = 422
            else:
                _audit(request, tenant, "tenant.create", object_type="tenant", object_id=tenant.slug)
                messages.success(request, f"Tenant {tenant.slug} created.")
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
    return _render(
        request,
        "console/tenants.html",
        {"tenants": tenants, "page": page, "query": query, "form": form, "page_title": "Tenants",
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
        tenant_set_status(tenant=tenant, status=new_status)
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        _audit(request, tenant, f"tenant.{'suspend' if new_status == TenantStatus.SUSPENDED else 'reactivate'}",
               object_type="tenant", object_id=tenant.slug, data={"status": new_status})  # fmt: skip
        messages.success(request, f"Tenant {tenant.slug} is now {new_status}.")
    return redirect("console:tenants")


# --- Deposits ---------------------------------------------------------------------------------------


def _all_tenant_schemas():
    return Tenant.objects.exclude(schema_name=get_public_schema_name()).order_by("slug", "is_sandbox")


@operator_required
def deposits_view(request):
    from funds.models import DepositRequestStatus
    from funds.selectors import deposit_request_list

    rows = []
    for tenant in _all_tenant_schemas():
        with tenant_context(tenant):
            for deposit in deposit_request_list().filter(status=DepositRequestStatus.PENDING):
                rows.append({"tenant": tenant, "deposit": deposit})
    connection.set_schema_to_public()
    rows.sort(key=lambda row: row["deposit"].created_at)
    return _render(
        request, "console/deposits.html", {"rows": rows, "page_title": "Deposit requests", "nav_section": "deposits"}
    )


class DepositApproveForm(forms.Form):
    confirm = forms.BooleanField(
        label="I have checked the bank statement: this money has arrived.",
        error_messages={"required": "Tick the box to confirm the money has arrived; nothing was credited."},
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
        "page_title": "Approve & credit",
        "nav_section": "deposits",
    }
    return _render(request, "console/deposit_confirm.html", context, status=status)


@operator_required
def deposit_resolve_view(request, schema: str, request_id, action: str):
    """Approve & credit asks first (GET: a page naming tenant, amount and currency; POST: only with the box
    ticked); reject moves no money and needs no confirmation."""
    from funds.services import deposit_request_approve, deposit_request_reject

    tenant = _all_tenant_schemas().filter(schema_name=schema).first()
    if tenant is None or action not in ("approve", "reject"):
        raise Http404("No such tenant")
    if request.method not in ("GET", "POST") or (request.method == "GET" and action != "approve"):
        return HttpResponseNotAllowed(["POST"] if action == "reject" else ["GET", "POST"])
    if action == "approve":
        deposit = _pending_deposit(tenant, request_id)
        if deposit is None:
            messages.info(request, "That deposit request is no longer pending: it was already credited or rejected.")
            return redirect("console:deposits")
        form = DepositApproveForm(request.POST if request.method == "POST" else None)
        if not form.is_valid():
            return _deposit_confirm_page(request, tenant, deposit, form, status=422 if form.is_bound else 200)
    service = deposit_request_approve if action == "approve" else deposit_request_reject
    try:
        with tenant_context(tenant):
            deposit = service(request_id=request_id, acting_operator=request.user.email)
            audit_record(
                actor=_actor(request),
                action=f"funds.deposit_request_{'approved' if action == 'approve' else 'rejected'}",
                object_type="deposit",
                object_id=deposit.id,
                data={"currency": deposit.currency, "amount": str(deposit.amount), "reference": deposit.reference},
                ip=client_ip(request),
            )
    except ApplicationError as exc:
        messages.error(request, exc.detail)
    else:
        verb = "credited to" if action == "approve" else "rejected for"
        messages.success(request, f"{money(deposit.amount, deposit.currency)} {deposit.currency} {verb} {tenant.name}.")
    connection.set_schema_to_public()
    return redirect("console:deposits")


# --- Catalogue and suppliers ------------------------------------------------------------------------


class InventoryUploadForm(forms.Form):
    product = forms.ChoiceField(help_text="Only products of an inventory supplier take codes.")
    file = forms.FileField(
        label="CSV file", help_text="Columns code,pin,denomination (pin optional); all rows or none."
    )
    batch = forms.CharField(max_length=100, required=False, label="Batch label", help_text="e.g. the purchase order.")

    def __init__(self, *args, **kwargs) -> None:
        from catalog.models import Product, SupplierKind

        super().__init__(*args, **kwargs)
        products = Product.objects.filter(supplier__kind=SupplierKind.INVENTORY).select_related("supplier")
        self.fields["product"].choices = [("", "Choose a product")] + [
            (str(p.pk), f"{p.name} ({p.currency}) · {p.supplier.code}") for p in products.order_by("name")
        ]


def _inventory_upload(request, form: InventoryUploadForm) -> bool:
    """Import the uploaded CSV via catalog.inventory (all or nothing); errors land on the form."""
    import tempfile

    from catalog.inventory import inventory_import_csv
    from catalog.models import Product

    product = Product.objects.select_related("supplier").get(pk=form.cleaned_data["product"])
    with tempfile.NamedTemporaryFile(suffix=".csv") as handle:
        for chunk in form.cleaned_data["file"].chunks():
            handle.write(chunk)
        handle.flush()
        try:
            result = inventory_import_csv(
                supplier=product.supplier, product=product, path=handle.name, batch_label=form.cleaned_data["batch"]
            )
        except ApplicationError as exc:
            rows = exc.errors.get("rows") or []
            if rows:
                form.add_error("file", f"{len({r['row'] for r in rows})} bad row(s); nothing was imported.")
                for row in rows[:20]:
                    form.add_error("file", f"Row {row['row']}, {row['column']}: {row['message']}")
                if len(rows) > 20:
                    form.add_error("file", f"… and {len(rows) - 20} more.")
            else:
                field_map = {"product": "product", "supplier": "product", "path": "file", "header": "file"}
                mapped = False
                for key, errors in exc.errors.items():
                    if key in field_map:
                        for error in errors:
                            form.add_error(field_map[key], error)
                        mapped = True
                if not mapped:
                    form.add_error(None, exc.detail)
            return False
    messages.success(
        request, f"Imported {result.imported} code{'s' if result.imported != 1 else ''} for {product.name}."
    )
    return True


@operator_required
def catalog_view(request):
    from catalog.inventory import inventory_stock
    from catalog.models import Brand, Product, Supplier

    form = InventoryUploadForm()
    status = 200
    if request.method == "POST":
        form = InventoryUploadForm(request.POST, request.FILES)
        if form.is_valid() and _inventory_upload(request, form):
            return redirect("console:catalog")
        status = 422
    stock = inventory_stock()
    suppliers = []
    for supplier in Supplier.objects.order_by("code"):
        lines = [line for line in stock if line.supplier_code == supplier.code]
        suppliers.append({"supplier": supplier, "stock": lines})
    counts = {"brands": Brand.objects.count(), "products": Product.objects.count(), "suppliers": len(suppliers)}
    context = {"counts": counts, "suppliers": suppliers, "form": form, "page_title": "Catalogue and suppliers",
               "nav_section": "catalog"}  # fmt: skip
    return _render(request, "console/catalog.html", context, status=status)


# --- Health -----------------------------------------------------------------------------------------


def queue_lengths() -> list[dict]:
    from core import ratelimit
    from rewards_portal.celery import QUEUES

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    rows = []
    try:
        client = ratelimit.get_redis()  # the broker is the same Redis (settings: CELERY_BROKER_URL)
        for name in QUEUES:
            rows.append({"name": name, "length": client.llen(f"{prefix}{name}")})
    except Exception as exc:  # the page still renders when the broker is down
        rows = [{"name": name, "length": None, "error": type(exc).__name__} for name in QUEUES]
    return rows


def worker_status() -> dict:
    from core import ratelimit
    from core.health import WORKER_HEARTBEAT_KEY, WORKER_HEARTBEAT_MAX_AGE

    try:
        beats = ratelimit.get_redis().hgetall(WORKER_HEARTBEAT_KEY)
    except Exception as exc:
        return {"ok": False, "detail": type(exc).__name__, "alive": [], "stale_count": 0}
    now = time.time()
    workers = sorted(
        (
            {"name": name.decode() if isinstance(name, bytes) else name, "age": int(now - float(at))}
            for name, at in beats.items()
        ),
        key=lambda w: w["age"],
    )
    alive = [w for w in workers if w["age"] < WORKER_HEARTBEAT_MAX_AGE]
    detail = f"{len(alive)} worker(s) reported in the last minute" if alive else "no recent worker heartbeat"
    return {"ok": bool(alive), "detail": detail, "alive": alive, "stale_count": len(workers) - len(alive)}


@operator_required
def health_view(request):
    from orders.models import Reward, RewardStatus
    from webhooks.models import WebhookEndpoint

    since = timezone.now() - timedelta(hours=24)
    failures, endpoints = [], []
    for tenant in _all_tenant_schemas():
        with tenant_context(tenant):
            counts = {
                status: Reward.objects.filter(status=status, updated_at__gte=since).count()
                for status in (RewardStatus.FAILED, RewardStatus.DELIVERY_FAILED)
            }
            if any(counts.values()):
                failures.append({"tenant": tenant, "failed": counts[RewardStatus.FAILED],
                                 "delivery_failed": counts[RewardStatus.DELIVERY_FAILED]})  # fmt: skip
            for endpoint in WebhookEndpoint.objects.filter(enabled=False):
                endpoints.append({"tenant": tenant, "url": endpoint.url, "reason": endpoint.disabled_reason})
    connection.set_schema_to_public()
    context = {
        "queues": queue_lengths(),
        "workers": worker_status(),
        "failures": failures,
        "endpoints": endpoints,
        "page_title": "Health",
        "nav_section": "health",
    }
    return _render(request, "console/health.html", context)


@operator_required
def home_view(request):
    return redirect("console:tenants")
