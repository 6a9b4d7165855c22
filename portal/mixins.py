"""The base every portal page builds on: tenant host only, signed in, role checked, live or sandbox data.

Page authors subclass `PortalView` (a TemplateView) or mix `PortalMixin` into any Django class-based view,
or decorate a function view with `role_required(...)`:

    class FundsView(PortalView):
        permission = Perm.FUNDS          # who may open it (portal.permissions.ROLE_PERMISSIONS)
        nav_section = "funds"            # highlights the navigation entry
        template_name = "portal/funds.html"

        def post(self, request):
            request_deposit(...)         # one service call
            self.audit("funds.deposit_request", object_type="deposit", object_id=deposit.id, data={...})

How the live/sandbox switch works: staff users and sessions live in the tenant's *live* schema (the
routing middleware put the connection there from the host name). The gate below evaluates `request.user`
and the session on that schema first; only then, when the session's mode is sandbox, the connection is
switched to the sandbox twin for the view (and its template rendering, and a streaming body's iteration),
and switched back before the response travels out through the session middleware, which saves the
session in the live schema. Views that manage people (Team, two-factor) set `live_schema_only = True`.
In sandbox mode there is no User table with your staff in it: store actor emails, never FKs to users.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext
from django.views.generic import TemplateView
from django_tenants.utils import get_public_schema_name

from audit.actors import Actor
from audit.models import AuditEvent
from audit.services import audit_record
from core.db import connection
from tenants.middleware import client_ip
from tenants.services import tenant_sandbox_ensure

from .permissions import Perm, has_perm

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise as StrOrPromise

    from core.db import SchemaTenant
    from tenants.models import Tenant

    class PortalRequest(HttpRequest):
        """A request on a tenant host, as the routing middleware and the portal's gate leave it."""

        tenant: Tenant  # tenants.middleware: the live tenant of the host
        portal_mode: str  # run_in_mode: LIVE or SANDBOX
        data_tenant: Tenant  # run_in_mode: the tenant whose schema the view reads and writes


LIVE, SANDBOX = "live", "sandbox"
MODE_SESSION_KEY = "portal_mode"
TENANT_SESSION_KEY = "portal_tenant"
LAST_SEEN_SESSION_KEY = "portal_last_seen"
LAST_SEEN_WRITE_EVERY_SECONDS = 60  # the idle clock is refreshed at most once a minute (one session write)


def is_tenant_host(request: HttpRequest) -> bool:
    """True on `<slug>.<PORTAL_DOMAIN>` (a live tenant from the Domain table), false on the public host."""
    tenant = getattr(request, "tenant", None)
    schema = getattr(tenant, "schema_name", None)
    return (
        schema is not None
        and schema != get_public_schema_name()
        and getattr(request, "api_key", None) is None
        and not getattr(tenant, "is_sandbox", True)
    )


def require_tenant_host(request: HttpRequest) -> None:
    if not is_tenant_host(request):
        raise Http404("The portal answers on tenant hosts only")


def suspended(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/auth/suspended.html", {"page_title": gettext("Account suspended")}, status=403)


class TenantHostRequiredMixin:
    """For views that need no sign-in (login, password reset): 404 on the public host; a suspended tenant is closed."""

    def dispatch(self, request, *args, **kwargs):
        require_tenant_host(request)
        if not request.tenant.is_active:
            return suspended(request)
        return super().dispatch(request, *args, **kwargs)


def portal_mode(request: HttpRequest) -> str:
    return SANDBOX if request.session.get(MODE_SESSION_KEY) == SANDBOX else LIVE


def actor_for(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    return f"staff:{user.email}" if user is not None and user.is_authenticated else "anonymous"


@contextmanager
def schema_of(tenant: SchemaTenant) -> Iterator[None]:
    """Run a block on another tenant schema, then return to the previous one."""
    previous = connection.tenant
    connection.set_tenant(tenant)
    try:
        yield
    finally:
        connection.set_tenant(previous)


def _iterate_in_schema(tenant: SchemaTenant, chunks: Iterator[bytes]) -> Iterator[bytes]:
    # A streaming body (CSV export) is iterated by the server after every middleware returned.
    with schema_of(tenant):
        yield from chunks


def forbidden(request: HttpRequest, perm: Perm | str) -> HttpResponse:
    return render(
        request, "portal/403.html", {"missing_perm": str(perm), "page_title": gettext("Not allowed")}, status=403
    )


def portal_gate(request: PortalRequest, *, perm: Perm | str | None, enrolment: bool = False) -> HttpResponse | None:
    """Checks in order: tenant host (404), tenant active, signed in on this tenant (login), idle timeout, two-factor
    enrolment where the tenant requires it (every page but the enrolment page itself, `enrolment=True`), role (403).

    Runs on the live schema: `request.user` is evaluated here, before any switch to the sandbox twin.
    """
    require_tenant_host(request)
    if not request.tenant.is_active:
        return suspended(request)
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    session = request.session
    if session.get(TENANT_SESSION_KEY) != request.tenant.schema_name:
        logout(request)  # defence in depth: a session is bound to the tenant it signed in on
        return redirect_to_login(request.get_full_path())
    now = int(time.time())
    last_seen = session.get(LAST_SEEN_SESSION_KEY)
    if last_seen is not None and now - last_seen > settings.PORTAL_SESSION_IDLE_TIMEOUT_SECONDS:
        logout(request)
        minutes = max(1, settings.PORTAL_SESSION_IDLE_TIMEOUT_SECONDS // 60)
        messages.info(
            request,
            ngettext(
                "You were signed out after %(minutes)s minute without activity.",
                "You were signed out after %(minutes)s minutes without activity.",
                minutes,
            )
            % {"minutes": minutes},
        )
        return redirect_to_login(request.get_full_path())
    if last_seen is None or now - last_seen >= LAST_SEEN_WRITE_EVERY_SECONDS:
        session[LAST_SEEN_SESSION_KEY] = now
    if request.tenant.require_two_factor and not user.totp_enabled and not enrolment:
        # the two-factor page says why (`required`): no flash, which piled up one per redirected page
        return redirect("portal:two_factor")
    if perm is not None and not has_perm(user, perm):
        return forbidden(request, perm)
    return None


def run_in_mode(request: PortalRequest, handler: Callable[[], HttpResponse], *, live_only: bool) -> HttpResponse:
    """Call the view on the schema the session's mode selects; always back on the live schema afterwards."""
    request.portal_mode = LIVE if live_only else portal_mode(request)
    if request.portal_mode == LIVE:
        request.data_tenant = request.tenant
        return handler()
    sandbox = tenant_sandbox_ensure(tenant=request.tenant)  # its schema is provisioned on the first sandbox page
    request.data_tenant = sandbox
    with schema_of(sandbox):
        response = handler()
        if hasattr(response, "render") and not getattr(response, "is_rendered", True):
            response.render()  # lazy TemplateResponse: its queries must run on the sandbox schema too
    if isinstance(response, StreamingHttpResponse):
        response.streaming_content = _iterate_in_schema(sandbox, response.streaming_content)
    return response


class PortalMixin:
    """Mix into any class-based view: gate, role, live/sandbox schema, context and an audit helper.

    Used only with Django's class-based views: `self.request` (a PortalRequest) and the parent's
    get_context_data come from the view it is mixed into, which mypy cannot see from here.
    """

    permission: Perm | None = Perm.VIEW  # None: any signed-in staff member
    two_factor_enrolment: bool = False  # True only for the page where staff set up two-factor (never redirected)
    live_schema_only: bool = False  # True for pages about people (users live in the live schema only)
    nav_section: str = ""
    page_title: str | StrOrPromise = ""  # gettext_lazy("…") to have it translated

    def dispatch(self, request, *args, **kwargs):
        denied = portal_gate(request, perm=self.permission, enrolment=self.two_factor_enrolment)
        if denied is not None:
            return denied
        parent = super().dispatch
        return run_in_mode(request, lambda: parent(request, *args, **kwargs), live_only=self.live_schema_only)

    @property
    def tenant(self):
        """The live tenant (name, slug, settings) whatever the mode."""
        return self.request.tenant

    @property
    def data_tenant(self):
        """The tenant whose schema this request reads and writes: the live one or its sandbox twin."""
        return self.request.data_tenant

    @property
    def is_sandbox(self) -> bool:
        return self.request.portal_mode == SANDBOX  # type: ignore[attr-defined]  # see the class docstring

    @property
    def client_ip(self) -> str:
        return client_ip(self.request)  # type: ignore[attr-defined]  # see the class docstring

    @property
    def actor(self) -> Actor:
        """The signed-in staff member, for services that record their own audit row (money, keys, people)."""
        return Actor.staff(self.request.user.email, ip=self.client_ip)  # type: ignore[attr-defined]  # see the docstring

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context: dict[str, Any] = super().get_context_data(**kwargs)  # type: ignore[misc]  # see the class docstring
        context.setdefault("nav_section", self.nav_section)
        context.setdefault("page_title", self.page_title)
        return context

    def audit(
        self, action: str, *, object_type: str = "", object_id: object = "", data: dict | None = None
    ) -> AuditEvent:
        """Record a staff action in the audit log of the schema in use (live or sandbox).

        Only for what no service audits (exports, reveals, cancels, test sends): services that change money,
        credentials or people take `actor=self.actor` and record their own row.
        """
        return audit_record(
            actor=actor_for(self.request),  # type: ignore[attr-defined]  # see the class docstring
            action=action,
            object_type=object_type,
            object_id=object_id,
            data=data,
            ip=self.client_ip,
        )


class PortalView(PortalMixin, TemplateView):
    """A portal page: set `template_name`, `permission`, `nav_section`, `page_title`; add get/post."""


def role_required(perm: Perm | str | None = Perm.VIEW, *, live_schema_only: bool = False):
    """The function-view twin of PortalMixin: `@role_required(Perm.FUNDS)`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            denied = portal_gate(request, perm=perm)
            if denied is not None:
                return denied
            return run_in_mode(request, lambda: view(request, *args, **kwargs), live_only=live_schema_only)

        return wrapped

    return decorator
