"""One-time codes that let a browser prove it belongs to a claim link's recipient, for programs that turn on
claim verification (Program.claim_verification = email | sms).

With verification on, a browser the link has not seen must enter a 6-digit code, sent to the recipient's email
(real SMTP) or phone (the SMS backend) in the language of the page that asked for it, before the gift's code is
revealed in it; the claim page then remembers the browser with its signed cookie (fulfillment.claim_page).
Limits, all per reward:
  - CODE_SENDS_PER_WINDOW codes per CODE_SEND_WINDOW_SECONDS (a flood of messages to the recipient is refused);
  - a code lives CODE_TTL_MINUTES and allows CODE_MAX_ATTEMPTS wrong guesses, then a new one must be sent.
Three sends of five guesses in 15 minutes give a guesser 15 tries in a million per quarter hour. Only an HMAC
of the code is stored, and the code never reaches a log line.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _

from core import ratelimit
from core.text import header_text
from orders.models import Reward
from programs.models import ClaimVerification as VerificationMode

from .models import ClaimVerification

logger = logging.getLogger(__name__)

CODE_TTL_MINUTES = 10
CODE_MAX_ATTEMPTS = 5
CODE_SENDS_PER_WINDOW = 3
CODE_SEND_WINDOW_SECONDS = 15 * 60


class VerificationRefused(Exception):
    """A send or a guess the limits refuse; the message is for the recipient."""


@dataclass(frozen=True)
class Channel:
    kind: str  # email | sms
    destination: str
    masked: str


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}"


def _mask_phone(phone: str) -> str:
    return f"•••{phone[-4:]}"


def verification_required(reward: Reward) -> bool:
    program = reward.order.program
    return program is not None and program.claim_verification != VerificationMode.OFF


def verification_channel(reward: Reward) -> Channel | None:
    """Where the code goes: the program's channel, else the other one the reward has an address for."""
    program = reward.order.program
    email = (
        Channel("email", reward.recipient_email, _mask_email(reward.recipient_email))
        if reward.recipient_email
        else None
    )
    phone = (
        Channel("sms", reward.recipient_phone, _mask_phone(reward.recipient_phone)) if reward.recipient_phone else None
    )
    if program is not None and program.claim_verification == VerificationMode.SMS:
        return phone or email
    return email or phone


def _digest(reward: Reward, code: str) -> str:
    key = f"{settings.SECRET_KEY}:claim-verification:{reward.pk}".encode()
    return hmac.new(key, code.encode(), hashlib.sha256).hexdigest()


def _company(reward: Reward) -> str:
    from core.db import connection

    program = reward.order.program
    return reward.sender_name or (program.sender_name if program else "") or getattr(connection.tenant, "name", "")


def verification_send(*, reward: Reward) -> Channel:
    """Send a fresh code to the recipient (earlier codes stop working). Raises VerificationRefused."""
    channel = verification_channel(reward)
    if channel is None:
        raise VerificationRefused(_("We have no email address or phone number to send a code to."))
    allowed, retry_after = ratelimit.hit(
        f"claimotp:{reward.claim_token_hash}", limit=CODE_SENDS_PER_WINDOW, window=CODE_SEND_WINDOW_SECONDS
    )
    if not allowed:
        minutes = max(1, (retry_after + 59) // 60)
        raise VerificationRefused(
            _("Too many codes were sent. Please try again in %(minutes)s minutes.") % {"minutes": minutes}
        )
    code = f"{secrets.randbelow(1_000_000):06d}"
    with transaction.atomic():
        ClaimVerification.objects.filter(reward=reward, used_at__isnull=True).delete()
        ClaimVerification.objects.create(
            reward=reward,
            channel=channel.kind,
            code_hash=_digest(reward, code),
            expires_at=timezone.now() + timedelta(minutes=CODE_TTL_MINUTES),
        )
        _deliver(reward, channel, code)
    logger.info(
        "claim verification code sent",
        extra={"event": "claim.verification_sent", "reward_id": str(reward.id), "channel": channel.kind},
    )
    return channel


def _deliver(reward: Reward, channel: Channel, code: str) -> None:
    company = _company(reward)
    context = {"code": code, "company": company, "minutes": CODE_TTL_MINUTES}
    body = render_to_string("emails/claim_verification.txt", context).strip()
    if channel.kind == "sms":
        from .sms import get_sms_backend

        get_sms_backend().send(to=channel.destination, body=body)
        return
    from .delivery import reward_email_from

    subject = _("%(code)s is your code for your gift from %(company)s") % {
        "code": code,
        "company": header_text(company),
    }
    EmailMultiAlternatives(
        subject=subject, body=body, from_email=reward_email_from(reward), to=[channel.destination]
    ).send(fail_silently=False)


def verification_code_live(reward: Reward) -> bool:
    """Whether a code already sent can still be entered (not used, expired or guessed out): a refused resend
    must keep the page's code field, or the recipient could not type the code in their inbox."""
    return ClaimVerification.objects.filter(
        reward=reward, used_at__isnull=True, expires_at__gt=timezone.now(), attempts__lt=CODE_MAX_ATTEMPTS
    ).exists()


def verification_check(*, reward: Reward, code: str) -> None:
    """Accept the recipient's code (it is then used up) or raise VerificationRefused saying what to do.

    A wrong guess is counted in its own committed transaction, so the refusal cannot roll the count back."""
    code = "".join(ch for ch in (code or "") if ch.isdigit())
    with transaction.atomic():
        latest = ClaimVerification.objects.select_for_update().filter(reward=reward, used_at__isnull=True).first()
        if latest is None or latest.expires_at <= timezone.now() or latest.attempts >= CODE_MAX_ATTEMPTS:
            refusal = _("This code has expired or was tried too many times. Send a new code.")
        elif len(code) != 6 or not hmac.compare_digest(latest.code_hash, _digest(reward, code)):
            latest.attempts += 1
            latest.save(update_fields=["attempts"])
            left = CODE_MAX_ATTEMPTS - latest.attempts
            refusal = (
                _("That code is not right. %(left)s tries left.") % {"left": left}
                if left > 0
                else _("That code is not right, and it was tried too many times. Send a new code.")
            )
        else:
            latest.used_at = timezone.now()
            latest.save(update_fields=["used_at"])
            return
    logger.info("claim verification refused", extra={"event": "claim.verification_failed", "reward_id": str(reward.id)})
    raise VerificationRefused(refusal)
