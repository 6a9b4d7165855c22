"""Team (admins): invite staff (a set-password email), change roles, deactivate and reactivate."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.tokens import default_token_generator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View

from accounts.models import Role, User
from accounts.services import (
    staff_invitation_resend,
    staff_invite,
    staff_set_active,
    staff_set_role,
    staff_two_factor_reset,
)
from core.errors import ApplicationError

from ..forms import InviteForm, RoleForm
from ..mixins import PortalMixin, PortalView
from ..permissions import Perm


def set_password_url(request, user: User) -> str:
    """The absolute set-password link an invitation carries, on this tenant's portal host."""
    path = reverse(
        "portal:password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return request.build_absolute_uri(path)


class TeamView(PortalView):
    permission = Perm.TEAM
    live_schema_only = True  # staff users live in the live schema only
    nav_section = "team"
    page_title = gettext_lazy("Team")
    template_name = "portal/team.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("invite_form", InviteForm())
        context["members"] = User.objects.order_by("-is_active", "email")
        context["role_choices"] = User._meta.get_field("role").choices
        return context

    def post(self, request):
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                user = staff_invite(
                    acting_user=request.user,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    name=form.cleaned_data["name"],
                    set_password_url=lambda user: set_password_url(self.request, user),
                    ip=self.client_ip,
                )
            except ApplicationError as exc:
                for field, errors in exc.errors.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
                if not exc.errors:
                    form.add_error(None, exc.detail)
            else:
                messages.success(request, _("Invitation sent to %(email)s.") % {"email": user.email})
                return redirect("portal:team")
        return self.render_to_response(self.get_context_data(invite_form=form), status=200)


class TeamMemberView(PortalMixin, View):
    """POST /team/<id>/<action> with action role|deactivate|reactivate|resend (the invitation)|reset_two_factor."""

    permission = Perm.TEAM
    live_schema_only = True

    def post(self, request, user_id: int, action: str):
        member = get_object_or_404(User, pk=user_id)
        try:
            if action == "role":
                form = RoleForm(request.POST)
                if not form.is_valid():
                    raise ApplicationError("Choose a valid role.", code="validation_error")
                staff_set_role(acting_user=request.user, user=member, role=form.cleaned_data["role"], ip=self.client_ip)
                messages.success(
                    request,
                    _("%(email)s is now %(role)s.")
                    % {"email": member.email, "role": Role(form.cleaned_data["role"]).label},
                )
            elif action in ("deactivate", "reactivate"):
                active = action == "reactivate"
                staff_set_active(acting_user=request.user, user=member, active=active, ip=self.client_ip)
                messages.success(
                    request,
                    (_("%(email)s was reactivated.") if active else _("%(email)s was deactivated."))
                    % {"email": member.email},
                )
            elif action == "reset_two_factor":
                staff_two_factor_reset(acting_user=request.user, user=member, ip=self.client_ip)
                messages.success(
                    request, _("Two-factor for %(email)s is cleared: they set it up again.") % {"email": member.email}
                )
            elif action == "resend":
                staff_invitation_resend(acting_user=request.user, user=member, ip=self.client_ip,
                                        set_password_url=lambda user: set_password_url(request, user))  # fmt: skip
                messages.success(request, _("Invitation sent again to %(email)s.") % {"email": member.email})
            else:
                raise Http404("No such team action")
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        return redirect("portal:team")
