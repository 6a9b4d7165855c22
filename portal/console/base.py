"""What every operator console page shares: the public-host and operator checks, the tenant schemas it walks,
and the actor (`operator:<email>`) it passes to the services, which audit in the affected tenant's schema."""

from __future__ import annotations

import functools

from django.conf import settings
from django.http import Http404, HttpResponseForbidden, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext
from django_tenants.utils import get_public_schema_name

from audit.actors import Actor
from tenants.middleware import client_ip
from tenants.models import Tenant


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


def operator_needs_enrolment(user) -> bool:
    """Whether this operator must set up two-factor before anything else (OPERATOR_REQUIRE_TWO_FACTOR)."""
    return bool(settings.OPERATOR_REQUIRE_TWO_FACTOR) and not user.totp_enabled


def admin_has_permission(request) -> bool:
    """The Django admin's gate (admin.site.has_permission): an active operator who passed two-factor enrolment."""
    user = request.user
    return bool(user.is_active and user.is_staff) and not operator_needs_enrolment(user)


def operator_required(view=None, *, enrolment: bool = False):
    """`@operator_required` (or `@operator_required(enrolment=True)` for the enrolment page itself): signed in on
    the public host as an active operator, and enrolled in two-factor where that is required."""

    def decorate(view):
        @public_host_only
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            user = request.user
            if not user.is_authenticated:
                return HttpResponseRedirect(f"{reverse('console:login')}?next={request.get_full_path()}")
            if not (user.is_active and user.is_staff):
                return HttpResponseForbidden(gettext("Operators only."))
            if not enrolment and operator_needs_enrolment(user):
                return HttpResponseRedirect(reverse("console:two_factor"))
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def operator_actor(request) -> Actor:
    return Actor.operator(request.user.email, ip=client_ip(request))


def tenant_schemas():
    """Every tenant schema, live and sandbox twins used at least once (the console's cross-tenant pages walk them in
    this order; a twin never used has no schema and nothing to show)."""
    return Tenant.objects.with_schema().exclude(schema_name=get_public_schema_name()).order_by("slug", "is_sandbox")
