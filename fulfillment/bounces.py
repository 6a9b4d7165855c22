"""Bounces and rejections reported by the email provider (django-anymail tracking webhooks).

Every reward email carries `{"reward_id", "schema"}` as provider metadata. When the provider reports the
message bounced or was rejected, the reward becomes `delivery_failed` (the code was issued and stays
valid: staff or the API resend it to a corrected address), and `reward.delivery_failed` is emitted.
"""

from __future__ import annotations

import logging
from typing import Any

from anymail.signals import EventType, tracking
from django.db import transaction
from django.dispatch import receiver
from django_tenants.utils import schema_context

from orders.lifecycle import order_refresh_status, reward_transition
from orders.models import Reward, RewardStatus
from orders.selectors import reward_lock

logger = logging.getLogger(__name__)
FAILURE_EVENTS = {EventType.BOUNCED, EventType.REJECTED, EventType.FAILED}


def reward_mark_delivery_failed(*, reward_id: Any, reason: str) -> Reward | None:
    """Delivered → delivery_failed (a no-op for any other state: a late bounce never undoes a redemption)."""
    with transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None or reward.status != RewardStatus.DELIVERED:
            return reward
        reward_transition(reward=reward, to=RewardStatus.DELIVERY_FAILED, note=reason[:300])
        order_refresh_status(order=reward.order)
    return reward


@receiver(tracking, dispatch_uid="rewards_portal.reward_bounces")
def handle_tracking_event(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    if event.event_type not in FAILURE_EVENTS:
        return
    metadata = event.metadata or {}
    reward_id, schema = metadata.get("reward_id"), metadata.get("schema")
    if not reward_id or not schema:
        return  # not one of our reward emails
    from tenants.models import Tenant

    if not Tenant.objects.filter(schema_name=schema).exists():
        return
    reason = f"{esp_name}: {event.event_type}" + (f" ({event.reject_reason})" if event.reject_reason else "")
    with schema_context(schema):
        reward_mark_delivery_failed(reward_id=reward_id, reason=reason)
    logger.info(
        "reward email bounced", extra={"event": "reward.delivery_failed", "reward_id": reward_id, "tenant": schema}
    )
