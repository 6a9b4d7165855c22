"""Orders and rewards pages: filtered lists paged by keyset with a streamed CSV export, an order with its
rewards, a reward with its timeline, and the staff actions resend, cancel and reveal (one service call each,
audited)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Q, QuerySet
from django.http import Http404
from django.shortcuts import redirect
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views import View

from automations.models import Automation
from core.csv_export import csv_response
from core.db import custom_plans
from core.errors import ApplicationError, NotFoundError
from core.money import format_amount, format_number
from fulfillment.models import CodeReveal, ShipmentEvent
from fulfillment.services import reward_can_resend, reward_can_reveal, reward_resend, reward_reveal
from orders.lifecycle import order_cancel, reward_cancel
from orders.models import Order, OrderStatus, Reward, RewardEvent
from orders.policy import CancelAction, can_offer_cancel, cancel_rule
from orders.search import MIN_TERM_CHARS, order_search
from orders.selectors import claim_url, order_get, order_list, reward_get
from programs.models import Program
from webhooks.models import Event

from ..mixins import PortalMixin, PortalView, actor_for
from ..permissions import Perm, has_perm

PAGE_SIZE = 50
EXPORT_CHUNK = 500  # orders per round trip while streaming (each with its rewards: 2 queries per chunk)


# --- Filters and keyset pages ------------------------------------------------------------------------


class OrderFilterForm(forms.Form):
    recipient = forms.CharField(
        required=False,
        min_length=MIN_TERM_CHARS,
        max_length=200,
        label=_("Recipient"),
        help_text=_("Name, email, reference, external id or metadata value, or part of it"),
    )
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *OrderStatus.choices])
    program = forms.ChoiceField(required=False, choices=[("", "Any program")])
    external_id = forms.CharField(required=False, max_length=100, label="External id")
    po_number = forms.CharField(required=False, max_length=100, label="PO number")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        programs = Program.objects.order_by("name").values_list("slug", "name")
        self.fields["program"].choices = [("", "Any program"), *programs]  # type: ignore[attr-defined]  # a ChoiceField

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            self.add_error("until", "The end date is before the start date.")
        return data


def _day_start(day) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filtered_orders(filters: dict[str, Any]) -> QuerySet[Order]:
    """order_list with the portal's extra filters (recipient, PO); newest first, keyset-friendly."""
    since, until = filters.get("since"), filters.get("until")
    qs = order_list(
        status=filters.get("status") or None,
        external_id=(filters.get("external_id") or "").strip() or None,
        program=filters.get("program") or None,
        created_after=_day_start(since) if since else None,
        created_before=_day_start(until + timedelta(days=1)) if until else None,
    )
    if po := (filters.get("po_number") or "").strip():
        qs = qs.filter(po_number=po)
    if recipient := (filters.get("recipient") or "").strip():
        # The trigram index on rewards, then their orders (orders.search): was an EXISTS walk over every order's
        # rewards, ~1 s at 1M rewards.
        qs = order_search(qs, recipient)
    return qs.order_by("-created_at", "-id")


def encode_cursor(order: Order) -> str:
    raw = f"{order.created_at.isoformat()}|{order.pk}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[datetime, str] | None:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        created, pk = raw.split("|", 1)
        return datetime.fromisoformat(created), pk
    except (ValueError, UnicodeDecodeError):
        return None


def after_cursor(qs: QuerySet[Order], cursor: str | None) -> QuerySet[Order]:
    """Rows strictly after the cursor in (-created_at, -id) order: an index range, never an OFFSET scan."""
    position = decode_cursor(cursor) if cursor else None
    if position is None:
        return qs
    created, pk = position
    return qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=pk))


def money(amount, currency: str) -> str:
    return f"{format_number(amount, currency)} {currency}" if amount is not None else ""


# --- Pages ---------------------------------------------------------------------------------------------


class OrderListView(PortalView):
    permission = Perm.VIEW
    nav_section = "orders"
    page_title = gettext_lazy("Orders")
    template_name = "portal/orders/list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = OrderFilterForm(self.request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        cursor = self.request.GET.get("after")
        # A recipient search: planned for its words each time (core.db.custom_plans; a generic plan walked every order)
        with custom_plans(when=bool((filters.get("recipient") or "").strip())):
            rows = list(after_cursor(filtered_orders(filters), cursor)[: PAGE_SIZE + 1])
        has_next = len(rows) > PAGE_SIZE
        orders = rows[:PAGE_SIZE]
        query = self.request.GET.copy()
        query.pop("after", None)
        context.update(
            form=form,
            orders=[_order_row(order) for order in orders],
            next_cursor=encode_cursor(orders[-1]) if has_next else None,
            is_first_page=not cursor,
            filter_query=query.urlencode(),
        )
        return context


def _order_row(order: Order) -> dict[str, Any]:
    rewards = sorted(order.rewards.all(), key=lambda r: r.position)
    first = rewards[0] if rewards else None
    return {
        "order": order,
        "total": money(order.total_amount, order.currency),
        "recipient": (first.recipient_name or first.recipient_email) if first else "",
        "recipient_email": first.recipient_email if first else "",
        "more": max(0, len(rewards) - 1),
        "reward_count": len(rewards),
    }


EXPORT_HEADER = [
    "order_id", "order_created_at", "order_status", "external_id", "po_number", "program", "reward_id",
    "reward_status", "recipient_name", "recipient_email", "brand", "product", "amount", "currency",
    "charge_amount", "charge_currency", "delivered_at", "reward_reference", "reward_external_id", "order_metadata",
    "reward_metadata",
]  # fmt: skip


def _json(metadata: dict[str, str]) -> str:
    return json.dumps(metadata, ensure_ascii=False, sort_keys=True) if metadata else ""


def export_rows(orders: QuerySet[Order]) -> Iterator[list[object]]:
    """One row per reward, in the order's reward order."""
    for order in orders.iterator(chunk_size=EXPORT_CHUNK):
        for reward in sorted(order.rewards.all(), key=lambda r: r.position):
            snapshot = reward.product_snapshot or {}
            yield [
                order.id, order.created_at.isoformat(), order.status, order.external_id or "", order.po_number,
                order.program.slug if order.program else "", reward.id, reward.status, reward.recipient_name,
                reward.recipient_email, snapshot.get("brand", ""), snapshot.get("name", ""),
                format_amount(reward.amount, reward.currency), reward.currency,
                format_amount(reward.charge_amount, order.currency), order.currency,
                reward.delivered_at.isoformat() if reward.delivered_at else "", reward.reference, reward.external_id,
                _json(order.metadata), _json(reward.metadata),
            ]  # fmt: skip


class OrderExportView(PortalMixin, View):
    """The filtered list as CSV, one line per reward, streamed; every cell neutralised against formulas."""

    permission = Perm.VIEW

    def get(self, request):
        form = OrderFilterForm(request.GET or None)
        filters = form.cleaned_data if form.is_valid() else {}
        self.audit("orders.export", object_type="order", data={k: str(v) for k, v in filters.items() if v})
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response = csv_response(
            filename=f"orders-{stamp}.csv", header=EXPORT_HEADER, rows=export_rows(filtered_orders(filters))
        )
        response["Cache-Control"] = "no-store"
        return response


def _get_order(order_id) -> Order:
    try:
        return order_get(order_id=order_id)
    except NotFoundError:
        raise Http404("No such order") from None


def _get_reward(reward_id) -> Reward:
    try:
        return reward_get(reward_id=reward_id)
    except NotFoundError:
        raise Http404("No such reward") from None


class OrderDetailView(PortalView):
    permission = Perm.VIEW
    nav_section = "orders"
    template_name = "portal/orders/order_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        order = _get_order(kwargs["order_id"])
        rewards = sorted(order.rewards.all(), key=lambda r: r.position)
        context.update(
            page_title=f"Order {str(order.id)[:8]}",
            order=order,
            # The automation that placed it (it may have been deleted since: its id is kept on the order).
            automation=Automation.objects.filter(pk=order.automation_id).first() if order.automation_id else None,
            # The order's cancel leaves issued codes alone (those are voided reward by reward).
            can_cancel_order=any(cancel_rule(r).action in (CancelAction.RELEASE, CancelAction.REFUND) for r in rewards),
            total=money(order.total_amount, order.currency),
            fees=money(order.fees, order.currency),
            shipping=money(order.shipping_amount, order.currency),
            rewards=[
                {"reward": r, "amount": money(r.amount, r.currency), "charge": money(r.charge_amount, order.currency)}
                for r in rewards
            ],
        )
        return context


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # status | webhook | reveal | shipment
    title: str
    detail: str = ""
    status: str = ""


def reward_timeline(reward: Reward) -> list[TimelineEntry]:
    """Everything that happened to a reward, oldest first: state changes, webhook events, reveals, shipping."""
    entries = [
        TimelineEntry(
            at=event.created_at,
            kind="status",
            title=event.to_status.replace("_", " ").capitalize(),
            detail=event.note,
            status=event.to_status,
        )
        for event in RewardEvent.objects.filter(reward=reward)
    ]
    about = [str(reward.id)]
    shipment = getattr(reward, "shipment", None)
    if shipment is not None:
        about.append(str(shipment.id))
        entries += [
            TimelineEntry(
                at=e.occurred_at,
                kind="shipment",
                title=f"Shipment {e.status.replace('_', ' ')}",
                detail=" · ".join(x for x in (e.description, e.location) if x),
                status=e.status,
            )
            for e in ShipmentEvent.objects.filter(shipment=shipment)
        ]
    webhook_events = (
        Event.objects.filter(data__id__in=about).prefetch_related("deliveries__endpoint").order_by("created_at", "id")
    )
    for event in webhook_events:
        deliveries = list(event.deliveries.all())
        if deliveries:
            detail = "; ".join(
                f"{d.endpoint.url}: {d.status}"
                + (f" (HTTP {d.last_status_code})" if d.last_status_code else "")
                + (f", {d.attempt_count} attempt{'s' if d.attempt_count != 1 else ''}" if d.attempt_count else "")
                for d in deliveries
            )
        else:
            detail = "No webhook endpoint subscribed"
        entries.append(TimelineEntry(at=event.created_at, kind="webhook", title=f"Webhook {event.type}", detail=detail))
    entries += [
        TimelineEntry(at=r.created_at, kind="reveal", title="Code revealed", detail=f"by {r.actor}")
        for r in CodeReveal.objects.filter(reward=reward)
    ]
    return sorted(entries, key=lambda e: e.at)


class RewardResendForm(forms.Form):
    email = forms.EmailField(
        required=False, label="Corrected email", help_text="Leave empty to send to the current address"
    )


class RewardDetailView(PortalView):
    permission = Perm.VIEW
    nav_section = "orders"
    template_name = "portal/orders/reward_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        reward = _get_reward(kwargs["reward_id"])
        snapshot = reward.product_snapshot or {}
        context.update(
            page_title=f"Reward {reward.reference}",
            reward=reward,
            order=reward.order,
            product=f"{snapshot.get('brand', '')} · {snapshot.get('name', '')}".strip(" ·"),
            amount=money(reward.amount, reward.currency),
            charge=money(reward.charge_amount, reward.order.currency),
            masked_code=f"•••• {reward.code_last4}" if reward.code_last4 else "",
            # A claim link opens the code: only for roles that may send (a viewer sees that one exists).
            claim_url=claim_url(reward) if has_perm(self.request.user, Perm.SEND) else None,
            has_claim_link=bool(reward.claim_token_encrypted),
            # Only the actions the reward's state allows (the same rules the services check).
            can_resend=reward_can_resend(reward),
            cancel_rule=cancel_rule(reward),
            can_cancel=can_offer_cancel(reward),
            can_reveal=reward_can_reveal(reward),
            timeline=reward_timeline(reward),
        )
        context.setdefault("resend_form", RewardResendForm())
        return context


# --- Actions: POST only, CSRF by Django, one service call, an audit row, the service's error shown -----


def _render_reward(request, reward_id, **extra):
    """The reward page as the answer to a POST (a form with errors, or the code shown once)."""
    view = RewardDetailView()
    view.setup(request, reward_id=reward_id)
    return view.render_to_response(view.get_context_data(reward_id=reward_id, **extra))


def _fail(request, exc: ApplicationError) -> None:
    messages.error(request, exc.detail)


CANCELED_MESSAGES = {
    CancelAction.RELEASE: "The reward was canceled and its funds released.",
    CancelAction.REFUND: "The reward was canceled and its cost refunded to your funds.",
    CancelAction.VOID_THEN_REFUND: "The supplier voided the code; the reward was canceled and its cost refunded.",
}


class RewardActionView(PortalMixin, View):
    """POST /rewards/<id>/resend|cancel. Reveal has its own view (admins only, never cached)."""

    permission = Perm.SEND

    def post(self, request, reward_id, action: str):
        reward = _get_reward(reward_id)
        try:
            if action == "resend":
                form = RewardResendForm(request.POST)
                if not form.is_valid():
                    return _render_reward(request, reward_id, resend_form=form)
                email = form.cleaned_data["email"] or None
                reward = reward_resend(reward_id=reward.id, email=email)
                self.audit(
                    "reward.resend",
                    object_type="reward",
                    object_id=reward.id,
                    data={"email": reward.recipient_email} if email else {},
                )
                messages.success(
                    request,
                    gettext("The reward is being sent again to %(recipient)s.")
                    % {"recipient": reward.recipient_email or reward.recipient_phone},
                )
            elif action == "cancel":
                rule = cancel_rule(reward)
                reward_cancel(reward_id=reward.id, reason=f"canceled in the portal by {request.user.email}")
                self.audit("reward.cancel", object_type="reward", object_id=reward.id)
                messages.success(request, CANCELED_MESSAGES[rule.action])
            else:
                raise Http404("No such reward action")
        except NotFoundError:
            raise Http404("No such reward") from None
        except ApplicationError as exc:
            _fail(request, exc)
        return redirect("portal:reward", reward_id=reward.id)


class RewardRevealView(PortalMixin, View):
    """POST only: the code is in this one response, never stored in a page cache or the session."""

    permission = Perm.REVEAL

    def post(self, request, reward_id):
        reward = _get_reward(reward_id)
        try:
            secret = reward_reveal(reward_id=reward.id, actor=actor_for(request))
        except NotFoundError:
            raise Http404("No such reward") from None
        except ApplicationError as exc:
            _fail(request, exc)
            return redirect("portal:reward", reward_id=reward.id)
        self.audit("reward.reveal", object_type="reward", object_id=reward.id)
        response = _render_reward(request, reward_id, revealed=secret)
        response.render()
        response["Cache-Control"] = "no-store"
        return response


class OrderCancelView(PortalMixin, View):
    permission = Perm.SEND

    def post(self, request, order_id):
        order = _get_order(order_id)
        try:
            order_cancel(order_id=order.id, reason=f"order canceled in the portal by {request.user.email}")
        except NotFoundError:
            raise Http404("No such order") from None
        except ApplicationError as exc:
            _fail(request, exc)
        else:
            self.audit("order.cancel", object_type="order", object_id=order.id)
            messages.success(
                request, gettext("Every reward that could still be canceled was canceled; funds released.")
            )
        return redirect("portal:order", order_id=order.id)
