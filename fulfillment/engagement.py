"""Email opens for the funnel: a one-pixel image in each reward email whose loading marks the reward `opened`
(reward.opened webhook, the reports' "opened"), so emailed codes are counted too, not only claim links; and
click-through: the email's links to other sites (the brand's "use it at" page) go through /c/<token> on our
host, which marks the reward `opened` the same way and redirects — for readers whose mail app blocks images.

The redirect goes only to the target signed into its token when the email was rendered: an allowlist of that
email's own links, never an open redirect (a changed target breaks the signature and is a 404).

Privacy: the pixel's URL carries only a signed (schema, reward) pair; loading it stores nothing about the
reader (no IP address, no user agent) beyond the reward's own `opened` event, and a program can switch both
off (Program.track_email_opens: links then go straight to their target). The image is the same for every
request, valid or not: it tells nothing.
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
CLICK_SALT = "rewards_portal.email-click"
# A transparent 1x1 GIF: what every request gets back.
PIXEL = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _signer(salt: str) -> signing.Signer:
    """Tokens carry no time: every copy of a reward's email (a resend after a worker died before its commit,
    fulfillment.delivery) must be the same bytes, so a mailbox shows one message. A late pixel or click is
    harmless: it only marks a reward still `delivered` as opened."""
    return signing.Signer(salt=salt)


def _tracked(reward: Reward) -> bool:
    program = reward.order.program
    return program is None or program.track_email_opens


def open_pixel_url(reward: Reward) -> str | None:
    """The pixel's URL for this reward's email, or None when its program does not track opens."""
    from core.db import connection

    if not _tracked(reward):
        return None
    token = _signer(SALT).sign_object([connection.schema_name, str(reward.id)], compress=True)
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/e/{token}.gif"


def tracked_link(reward: Reward, target: str) -> str:
    """The link to put in this reward's email for `target` (an http(s) URL): our signed redirect to it, or the
    target itself when the program does not track engagement."""
    from core.db import connection

    if not _tracked(reward):
        return target
    token = _signer(CLICK_SALT).sign_object([connection.schema_name, str(reward.id), target], compress=True)
    return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/c/{token}"


def _mark_opened(schema: str, reward_id: str, note: str) -> bool:
    """A delivered reward becomes `opened`; False (nothing changes) when its tenant or it is gone, or past
    `delivered`."""
    from tenants.models import Tenant

    tenant: Any = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None:
        return False
    with tenant_context(tenant), transaction.atomic():
        reward = reward_lock(reward_id)
        if reward is None or reward.status != RewardStatus.DELIVERED:
            return False
        reward_transition(reward=reward, to=RewardStatus.OPENED, note=note)
    logger.info(note, extra={"event": "reward.email_opened", "reward_id": reward_id})
    return True


def email_opened(*, token: str) -> bool:
    """The pixel was loaded: a delivered reward becomes `opened`. False (and nothing changes) for a token that
    is not ours, of a tenant or reward that is gone, or a reward past `delivered`."""
    try:
        schema, reward_id = _signer(SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return False
    return _mark_opened(schema, reward_id, "email opened")


def email_clicked(*, token: str) -> str | None:
    """A link of the email was followed: the reward is marked opened as by the pixel (a later status stays)
    and the signed target is returned; None for a token that is not ours or altered."""
    try:
        schema, reward_id, target = _signer(CLICK_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(target, str) or not target.startswith(("https://", "http://")):
        return None
    _mark_opened(schema, reward_id, "email link followed")
    return target
