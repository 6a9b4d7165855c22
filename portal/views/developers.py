"""Developers (admins): API keys (create, revoke, rotate; the raw key shown once) and webhook endpoints.

Keys are public-schema rows pointing at a tenant: a live-mode page manages the live tenant's `rp_live_` keys,
a sandbox-mode page the twin's `rp_test_` keys. Webhook endpoints live in the schema in use. Secrets (raw keys,
`whsec_` signing secrets) appear in exactly one page, sent with `Cache-Control: no-store`, and never in the
audit log, the session or a message.

That page is a GET after a redirect (POST -> redirect -> GET): the POST that creates or rotates stashes the
secret, encrypted, in Redis under a random token for a few minutes; the first GET of /developers/shown/<token>/
by the same user takes it out, and any later GET (a reload, the back button) says it was already shown. So a
reload never repeats the POST, which created a second live key.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.views import View

from core import crypto
from core.errors import ApplicationError, NotFoundError
from core.redis import get_redis
from tenants.models import ApiKey, ApiScope
from tenants.services import api_key_create, api_key_revoke, api_key_rotate
from webhooks import endpoints as webhook_endpoints
from webhooks import redelivery as webhook_redelivery
from webhooks import selectors as webhook_selectors
from webhooks.models import ALL_EVENTS, EVENT_TYPES

from ..mixins import PortalMixin, PortalView
from ..permissions import Perm

MAX_DELIVERIES_SHOWN = 50
SHOWN_ONCE_SECONDS = 300  # a stashed secret waits this long for its one GET, then only a rotation helps
SHOWN_ONCE_NOTE_SECONDS = 3600  # the page still names what was shown (without the secret) on a reload


class ServiceCheckedChoices(forms.MultipleChoiceField):
    """Required in the label, but an empty choice goes on to the service, whose message is shown next to the field."""

    def validate(self, value):
        for item in value:
            if not self.valid_value(item):
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": item}
                )


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, help_text="What uses this key, e.g. “CRM sync”.")
    scopes = ServiceCheckedChoices(
        choices=ApiScope.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=["read", "write"],
        help_text="read: balances, catalogue, orders; write: place and cancel orders.",
    )
    allowed_cidrs = forms.CharField(
        label="IP allowlist",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "203.0.113.0/24"}),
        help_text="One network per line (CIDR). Empty: any address.",
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)", required=False, min_value=1, max_value=3650, help_text="Empty: never."
    )


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(
        label="URL", max_length=2000, widget=forms.TextInput(attrs={"placeholder": "https://", "inputmode": "url"})
    )
    events = forms.MultipleChoiceField(
        choices=[(ALL_EVENTS, "All events")] + [(e, e) for e in EVENT_TYPES],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None checked: all events.",
    )
    description = forms.CharField(max_length=300, required=False)


def _apply_errors(form: forms.Form, exc: ApplicationError) -> None:
    for field, errors in (exc.errors or {}).items():
        for error in errors:
            form.add_error(field if field in form.fields else None, error)
    if not exc.errors:
        form.add_error(None, exc.detail)


def _show_once(request, secret: str, **about) -> HttpResponseRedirect:
    """Stash `secret` for one GET of the page that shows it, and redirect there.

    `about` is what the page says about the secret (kind, page_title, key_id, replaced_key_id, endpoint_id,
    endpoint_url, previous_expires_at): ids and text only, kept a little longer so a reload can say what was shown.
    """
    token = secrets.token_urlsafe(24)
    note = {"user": request.user.pk, "tenant": request.tenant.schema_name, **about}
    pipe = get_redis().pipeline()
    pipe.set(f"rp:shown-once:{token}:secret", crypto.encrypt(secret), ex=SHOWN_ONCE_SECONDS)
    pipe.set(f"rp:shown-once:{token}:note", json.dumps(note), ex=SHOWN_ONCE_NOTE_SECONDS)
    pipe.execute()
    return redirect("portal:developers_shown", token=token)


class ShownOnceView(PortalView):
    """GET /developers/shown/<token>/: the new secret the first time, "already shown" on every later visit."""

    permission = Perm.DEVELOPERS
    nav_section = "developers"
    template_name = "portal/developers/secret.html"

    def get(self, request, token: str):
        redis = get_redis()
        raw_note = redis.get(f"rp:shown-once:{token}:note")
        note = json.loads(raw_note) if raw_note else {}
        encrypted = None
        if note.get("user") != request.user.pk or note.get("tenant") != request.tenant.schema_name:
            note = {}  # another user's (or tenant's) link: nothing to show them, and it stays for its owner
        else:
            pipe = redis.pipeline(transaction=True)  # read and delete at once: two tabs cannot both get it
            pipe.get(f"rp:shown-once:{token}:secret")
            pipe.delete(f"rp:shown-once:{token}:secret")
            encrypted, _ = pipe.execute()
        context = self.get_context_data(**self._about(note))
        context["secret"] = crypto.decrypt(encrypted.decode()) if encrypted else None
        context["page_title"] = note.get("page_title", "Shown once") if encrypted else "Already shown"
        response = self.render_to_response(context, status=200 if encrypted else 410)
        response["Cache-Control"] = "no-store"
        return response

    def _about(self, note: dict) -> dict:
        about: dict = {"kind": note.get("kind", "")}
        if note.get("key_id"):
            about["key"] = ApiKey.objects.filter(key_id=note["key_id"], tenant=self.data_tenant).first()
        if note.get("replaced_key_id"):
            about["replaced"] = ApiKey.objects.filter(key_id=note["replaced_key_id"], tenant=self.data_tenant).first()
        if note.get("endpoint_id"):
            about["endpoint"] = {"pk": note["endpoint_id"], "url": note.get("endpoint_url", "")}
        if note.get("previous_expires_at"):
            about["previous_expires_at"] = datetime.fromisoformat(note["previous_expires_at"])
        return about


class DevelopersView(PortalView):
    """GET: keys and endpoints; POST: create an API key (the raw key is in this response only)."""

    permission = Perm.DEVELOPERS
    nav_section = "developers"
    page_title = gettext_lazy("Developers")
    template_name = "portal/developers/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.setdefault("key_form", ApiKeyForm())
        context.setdefault("endpoint_form", WebhookEndpointForm())
        context["keys"] = ApiKey.objects.filter(tenant=self.data_tenant).select_related("tenant")
        context["endpoints"] = webhook_selectors.endpoint_list().order_by("-created_at")
        context["now"] = timezone.now()
        return context

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            days = data["expires_in_days"]
            try:
                key, raw_key = api_key_create(
                    tenant=self.data_tenant,
                    name=data["name"],
                    scopes=data["scopes"],
                    allowed_cidrs=[line.strip() for line in data["allowed_cidrs"].splitlines() if line.strip()],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                    actor=self.actor,
                )
            except ApplicationError as exc:
                _apply_errors(form, exc)
            else:
                return _show_once(request, raw_key, page_title="Your new API key", kind="api_key", key_id=key.key_id)
        return self.render_to_response(self.get_context_data(key_form=form), status=200)


class ApiKeyActionView(PortalMixin, View):
    """POST /developers/keys/<key_id>/<action> with action revoke|rotate."""

    permission = Perm.DEVELOPERS

    def post(self, request, key_id: str, action: str):
        key = ApiKey.objects.select_related("tenant").filter(tenant=self.data_tenant, key_id=key_id).first()
        if key is None:
            raise Http404("No such API key")
        if key.is_partner:  # the fulfilment partner's key is the operator's to issue and revoke, never the tenant's
            messages.error(request, gettext("A fulfilment partner's key is managed by the platform operator."))
            return redirect("portal:developers")
        if action == "revoke":
            if key.revoked_at is None:
                api_key_revoke(key=key, actor=self.actor)
                messages.success(
                    request,
                    gettext("The key “%(name)s” (%(key)s…) was revoked.")
                    % {"name": key.name, "key": f"{key.prefix}{key.key_id}"},
                )
            return redirect("portal:developers")
        if action == "rotate":
            try:
                new_key, raw_key = api_key_rotate(key=key, actor=self.actor)
            except ApplicationError as exc:  # already revoked (by another tab): create a new one instead
                messages.error(request, exc.detail)
                return redirect("portal:developers")
            return _show_once(
                request,
                raw_key,
                page_title="Your rotated API key",
                kind="api_key",
                key_id=new_key.key_id,
                replaced_key_id=key.key_id,
            )
        raise Http404("No such key action")


def _endpoint_or_404(endpoint_id: str):
    try:
        return webhook_selectors.endpoint_get(endpoint_id=endpoint_id)
    except NotFoundError:
        raise Http404("No such webhook endpoint") from None


class WebhookCreateView(DevelopersView):
    """POST /developers/webhooks/: a new endpoint; its signing secret is in this response only."""

    def post(self, request):
        form = WebhookEndpointForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                endpoint, secret = webhook_endpoints.webhook_endpoint_create(
                    url=data["url"], events=data["events"], description=data["description"], actor=self.actor
                )
            except ApplicationError as exc:
                _apply_errors(form, exc)
            else:
                return _show_once(
                    request,
                    secret,
                    page_title="Webhook signing secret",
                    kind="webhook",
                    endpoint_id=endpoint.pk,
                    endpoint_url=endpoint.url,
                )
        return self.render_to_response(self.get_context_data(endpoint_form=form), status=200)


class WebhookEndpointView(PortalView):
    """GET /developers/webhooks/<id>/: the endpoint and its delivery log."""

    permission = Perm.DEVELOPERS
    nav_section = "developers"
    page_title = gettext_lazy("Webhook endpoint")
    template_name = "portal/developers/endpoint.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        endpoint = kwargs.get("endpoint") or _endpoint_or_404(self.kwargs["endpoint_id"])
        context["endpoint"] = endpoint
        context.setdefault("edit_form", _edit_form(endpoint))
        context["deliveries"] = webhook_selectors.delivery_list(endpoint=endpoint).order_by("-created_at")[
            :MAX_DELIVERIES_SHOWN
        ]
        return context

    def post(self, request, endpoint_id: str):
        """Edit the URL, the events and the description (the secret is rotated separately)."""
        endpoint = _endpoint_or_404(endpoint_id)
        form = WebhookEndpointForm(request.POST, prefix="edit")
        if form.is_valid():
            data = form.cleaned_data
            before = (endpoint.url, list(endpoint.events), endpoint.description)
            try:
                endpoint = webhook_endpoints.webhook_endpoint_update(
                    endpoint=endpoint,
                    url=data["url"],
                    events=data["events"],
                    description=data["description"],
                    actor=self.actor,
                )
            except ApplicationError as exc:
                _apply_errors(form, exc)
            else:
                if before != (endpoint.url, list(endpoint.events), endpoint.description):
                    messages.success(request, gettext("The endpoint was updated."))
                else:
                    messages.info(request, gettext("Nothing changed."))
                return redirect("portal:developers_webhook", endpoint_id=endpoint.pk)
        return self.render_to_response(self.get_context_data(endpoint=endpoint, edit_form=form), status=422)


def _edit_form(endpoint) -> WebhookEndpointForm:
    events = [] if not endpoint.events or ALL_EVENTS in endpoint.events else list(endpoint.events)
    return WebhookEndpointForm(
        prefix="edit", initial={"url": endpoint.url, "events": events, "description": endpoint.description}
    )


class WebhookActionView(PortalMixin, View):
    """POST /developers/webhooks/<id>/<action> with action enable|disable|delete|rotate|test."""

    permission = Perm.DEVELOPERS

    def post(self, request, endpoint_id: str, action: str):
        endpoint = _endpoint_or_404(endpoint_id)
        back = redirect("portal:developers_webhook", endpoint_id=endpoint.pk)
        try:
            if action in ("enable", "disable"):
                webhook_endpoints.webhook_endpoint_update(
                    endpoint=endpoint, enabled=action == "enable", actor=self.actor
                )
                messages.success(
                    request,
                    gettext("The endpoint was enabled.")
                    if action == "enable"
                    else gettext("The endpoint was disabled."),
                )
            elif action == "delete":
                webhook_endpoints.webhook_endpoint_delete(endpoint=endpoint, actor=self.actor)
                messages.success(request, gettext("The endpoint %(url)s was deleted.") % {"url": endpoint.url})
                return redirect("portal:developers")
            elif action == "rotate":
                secret, previous_expires_at = webhook_endpoints.webhook_secret_rotate(
                    endpoint=endpoint, actor=self.actor
                )
                return _show_once(
                    request,
                    secret,
                    page_title="New webhook signing secret",
                    kind="webhook",
                    endpoint_id=endpoint.pk,
                    endpoint_url=endpoint.url,
                    previous_expires_at=previous_expires_at.isoformat(),
                )
            elif action == "test":
                delivery = webhook_endpoints.webhook_endpoint_test(endpoint=endpoint)
                self.audit(
                    "webhook_endpoint.test",
                    object_type="webhook_endpoint",
                    object_id=endpoint.pk,
                    data={"delivery_id": delivery.pk},
                )
                messages.success(request, gettext("A webhook.test event is on its way; it appears in the log below."))
            else:
                raise Http404("No such endpoint action")
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        return back


class WebhookRedeliverView(PortalMixin, View):
    """POST /developers/webhooks/<id>/deliveries/<delivery_id>/redeliver: send that event to this endpoint again."""

    permission = Perm.DEVELOPERS

    def post(self, request, endpoint_id: str, delivery_id: str):
        endpoint = _endpoint_or_404(endpoint_id)
        delivery = webhook_selectors.delivery_list(endpoint=endpoint).filter(pk=delivery_id).first()
        if delivery is None:
            raise Http404("No such delivery")
        try:
            webhook_redelivery.event_redeliver(event=delivery.event, endpoint_id=endpoint.pk)
        except ApplicationError as exc:
            messages.error(request, exc.detail)
        else:
            self.audit(
                "webhook_delivery.redeliver",
                object_type="webhook_delivery",
                object_id=delivery.pk,
                data={"endpoint_id": endpoint.pk, "event_id": delivery.event_id},
            )
            messages.success(request, gettext("%(event)s is being sent again.") % {"event": delivery.event.type})
        return redirect("portal:developers_webhook", endpoint_id=endpoint.pk)
