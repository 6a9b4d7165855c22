"""Email opens for the funnel: a one-pixel image in each reward email whose loading marks the reward `opened`
(reward.opened webhook, the reports' "opened"), so emailed codes are counted too, not only claim links.

Privacy: the pixel's URL carries only a signed (schema, reward) pair; loading it stores nothing about the
reader (no IP address, no user agent) beyond the reward's own `opened` event, and a program can switch it
off (Program.track_email_opens). The image is the same for every request, valid or not: it tells nothing.
"""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django_tenants.utils import tenant_context

from orders.lifecycle import reward_transition
from orders.models import Reward, RewardStatus
from orders.selectors import reward_lock

logger = logging.getLogger(__name__)

SALT = "rewards_portal.email-open"
MAX_AGE_SECONDS = 400 * 24 * 3600  # a pixel older than a claim link's longest life is ignored
# A transparent 1x1 GIF: what every request gets back.
PIXEL = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def open_pixel_url(reward: Reward) -> str | None:
    """The pixel's URL for this reward's email, or None when its program does not track opens."""
    from core.db import connection

    program = reward.order.program
    if program is not None and not program.track_email_opens:
        return None
    token = signing.dumps([connection.schema_name, str(reward.id)], salt=SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/e/{token}.gif"


def email_opened(*, token: str) -> bool:
    """The pixel was loaded: a delivered reward becomes `opened`. False (and nothing changes) for a token that
    is not ours, too old, of a tenant or reward that is gone, or a reward past `delivered`."""
    from tenants.models import Tenant

    try:
        schema, reward_id = signing.loads(token, salt=SALT, max_age=MAX_AGE_SECONDS)
    except (signing.BadSignature, ValueError, TypeError):
        return False
    tenant: Any = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None:
        return False
    with tenant_context(tenant), transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None or reward.status != RewardStatus.DELIVERED:
            return False
        reward_transition(reward=reward, to=RewardStatus.OPENED, note="email opened")
    logger.info("reward email opened", extra={"event": "reward.email_opened", "reward_id": reward_id})
    return True
