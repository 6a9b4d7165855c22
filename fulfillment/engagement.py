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

Counting: the first open sets the reward's `opened_at`, the first followed link `clicked_at` and `opened_at`
(a click implies an open), so the funnel never widens (orders.reports). A fetch within SCANNER_SECONDS of
delivery is a mail scanner's prefetch and counts as nothing; a HEAD request (link checkers) neither.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from orders.lifecycle import reward_transition
from orders.models import Reward, RewardStatus
from orders.selectors import reward_lock

logger = logging.getLogger(__name__)

SALT = "rewards_portal.email-open"
CLICK_SALT = "rewards_portal.email-click"
# A pixel loaded or a link followed this soon after delivery is a scanner, not a reader (_scanner): mail servers
# and security gateways fetch images and follow links as a message arrives, in the second it is delivered.
SCANNER_SECONDS = 2
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


def _scanner(reward: Reward, now: datetime) -> bool:
    """Whether a fetch this soon after delivery is a mail server's scanner (link checkers and image proxies
    fetch a message as it arrives), not the recipient: within SCANNER_SECONDS of `delivered_at`."""
    return reward.delivered_at is not None and now - reward.delivered_at < timedelta(seconds=SCANNER_SECONDS)


def _mark_engaged(schema: str, reward_id: str, *, clicked: bool) -> bool:
    """Record that the recipient opened the reward's email (and followed a link of it, `clicked`): the first time
    sets `opened_at` (and `clicked_at`), and a reward still `delivered` becomes `opened`. False (nothing changes)
    when its tenant or it is gone, it was never delivered, it is already marked so, or a scanner fetched it."""
    from tenants.models import Tenant

    tenant: Any = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None:
        return False
    note = "email link followed" if clicked else "email opened"
    with tenant_context(tenant), transaction.atomic():
        reward = reward_lock(reward_id)
        now = timezone.now()
        if reward is None or reward.delivered_at is None or _scanner(reward, now):
            return False
        if reward.opened_at is not None and (reward.clicked_at is not None or not clicked):
            return False  # already counted: a second load (another device, a proxy) changes nothing
        if reward.status == RewardStatus.DELIVERED:
            reward_transition(reward=reward, to=RewardStatus.OPENED, note=note)  # sets opened_at
        fields = []
        if reward.opened_at is None:
            reward.opened_at = now
            fields.append("opened_at")
        if clicked and reward.clicked_at is None:
            reward.clicked_at = now  # a click implies an open: the funnel stays opened >= clicked
            fields.append("clicked_at")
        if fields:
            reward.save(update_fields=fields)
    logger.info(note, extra={"event": "reward.email_clicked" if clicked else "reward.email_opened",
                             "reward_id": reward_id})  # fmt: skip
    return True


def email_opened(*, token: str) -> bool:
    """The pixel was loaded: the reward is marked opened (a delivered one becomes `opened`). False (and nothing
    changes) for a token that is not ours, of a tenant or reward that is gone, or an open already counted."""
    try:
        schema, reward_id = _signer(SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return False
    return _mark_engaged(schema, reward_id, clicked=False)


def email_clicked(*, token: str) -> str | None:
    """A link of the email was followed: the reward is marked opened and clicked (a later status stays) and the
    signed target is returned; None for a token that is not ours or altered."""
    try:
        schema, reward_id, target = _signer(CLICK_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(target, str) or not target.startswith(("https://", "http://")):
        return None
    _mark_engaged(schema, reward_id, clicked=True)
    return target
