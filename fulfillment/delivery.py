"""Delivering a reward to its recipient: branded email (HTML + text) and SMS through a provider interface, in the
reward's language (Reward.locale; English when none was named)."""

from __future__ import annotations

import functools
import logging
import smtplib
from email.utils import formataddr
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import get_template
from django.utils import translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from catalog.images import absolute, logo_path
from core import crypto
from core.i18n import language
from core.money import format_money
from core.text import header_text
from orders.models import OrderType, Reward
from orders.selectors import claim_url

from .discounts import discount_headline
from .engagement import open_pixel_url, tracked_link

logger = logging.getLogger(__name__)


class DeliveryFailed(Exception):
    """The recipient's address refused the message: the reward is issued but not delivered."""


def _branding(reward: Reward, *, preview: bool = False) -> dict[str, str]:
    program = reward.order.program
    branding = dict(program.branding or {}) if program else {}
    logo = logo_path(str(branding.get("logo") or ""))
    return {
        # Only a logo the platform stores (catalog.images), as a full URL: mail is read far from the app's host.
        # A preview is shown inside the portal, which serves the same path on its own host; the full URL is
        # another origin there, which the page's CSP refuses over plain http (a broken image in make dev).
        "logo_url": logo if preview else absolute(logo),
        "primary_color": branding.get("primary_color", "#4f46e5"),
        "company": reward.sender_name or (program.sender_name if program else "") or _("Your team"),
    }


def message_carries_code(reward: Reward) -> bool:
    """Whether the reward's email/SMS carries the code itself (not a claim link): sending it discloses the code."""
    return bool(reward.code_encrypted) and reward.order.type != OrderType.LINK and not reward.claim_token_encrypted


def _use_at_url(reward: Reward, *, preview: bool) -> str:
    """The brand's "use it at" link of an email carrying a code (from the reward's product snapshot: no query
    per email), through the click-through redirect."""
    url = str(reward.product_snapshot.get("redemption_url") or "")
    return url if preview or not url else tracked_link(reward, url)


def reward_email_context(reward: Reward, *, preview: bool = False, reminder: bool = False) -> dict[str, Any]:
    link = claim_url(reward)
    shows_code = message_carries_code(reward)
    return {
        "reminder": reminder,  # a reminder of an unclaimed link (fulfillment.reminders): says until when to claim
        "claim_by": reward.claim_expires_at,
        "reward": reward,
        "brand": reward.product_snapshot.get("brand", ""),
        "product_name": reward.product_snapshot.get("name", ""),
        # callers render inside language(reward.locale); a discount says what it takes off, not its face value
        "amount": discount_headline(reward) or format_money(reward.amount, reward.currency),
        "currency": reward.currency,
        "message": reward.message,
        "claim_url": link,
        "code": ("XXXX-XXXX-XXXX-" + (reward.code_last4 or "0000")) if preview else (
            crypto.decrypt(reward.code_encrypted) if shows_code else None
        ),
        "pin": None if preview or not shows_code or not reward.pin_encrypted else crypto.decrypt(reward.pin_encrypted),
        "open_pixel_url": None if preview else open_pixel_url(reward),
        "use_at_url": _use_at_url(reward, preview=preview) if shows_code else "",
        **_branding(reward, preview=preview),
    }  # fmt: skip


def reward_email_from(reward: Reward) -> str:
    """The From header: the platform's address, shown as "<sender> via <tenant name>".

    The sender name is whatever the tenant typed (an API field): alone it could pose as anyone ("PayPal Security
    Team"), so the name of the tenant that sent it, set by the operator, is always shown with it. Encoded by
    formataddr (RFC 2047 for non-ASCII).
    """
    from core.db import connection

    program = reward.order.program
    sender = header_text(reward.sender_name or (program.sender_name if program else ""))
    tenant = header_text(getattr(getattr(connection, "tenant", None), "name", ""))
    if not tenant:
        return str(settings.DEFAULT_FROM_EMAIL)  # no name rather than an unattributed one
    if not sender or sender.casefold() == tenant.casefold():
        name = tenant
    else:
        name = _("%(sender)s via %(tenant)s") % {"sender": sender, "tenant": tenant}
    return formataddr((name, settings.DEFAULT_FROM_EMAIL))


@functools.lru_cache(maxsize=64)
def _template(name: str, lang: str | None) -> Any:
    """A compiled email template per (name, language): compiled once per process, not once per message.

    Translated strings are looked up when it renders, in the language active then; the language is part of the
    key so a template chosen per language can never be served in another one.
    """
    return get_template(name)


def _render(name: str, context: dict[str, Any]) -> str:
    return str(_template(name, translation.get_language()).render(context))


def reward_email_render(reward: Reward, *, preview: bool = False, reminder: bool = False) -> tuple[str, str, str]:
    """(subject, plain text, HTML) of the reward's email (or of a reminder of its link), in the reward's language."""
    with language(reward.locale):
        context = reward_email_context(reward, preview=preview, reminder=reminder)
        # Header-safe like the From name: a name stored before control characters were refused must not break it.
        names = {"company": header_text(context["company"]), "brand": header_text(context["brand"])}
        if reminder:
            subject = _("Reminder: %(company)s sent you a %(brand)s gift") % names
        else:
            subject = _("%(company)s sent you a %(brand)s gift") % names
        return subject, _render("emails/reward.txt", context), _render("emails/reward.html", context)


def reward_email_message(
    *, reward: Reward, to: str, message_id: str = "", reminder: bool = False
) -> EmailMultiAlternatives:
    """The reward email (or a reminder of its link), ready to send. `message_id` (its local part) is the same on
    every copy of one send, so a mailbox shows one of them."""
    subject, text, html = reward_email_render(reward, reminder=reminder)
    with language(reward.locale):
        sender = reward_email_from(reward)
    headers = {}
    if message_id:
        headers["Message-ID"] = f"<{message_id}@{_message_id_domain()}>"
    message = EmailMultiAlternatives(subject=subject, body=text, from_email=sender, to=[to], headers=headers)
    message.attach_alternative(html, "text/html")
    # Read by django-anymail backends: bounce webhooks come back with these (fulfillment/bounces.py).
    from core.db import connection

    # Attributes of anymail's message mixin, which Django's class does not declare.
    message.metadata = {"reward_id": str(reward.id), "schema": connection.schema_name}  # type: ignore[attr-defined]
    message.tags = ["reward"]  # type: ignore[attr-defined]
    return message


def reward_emails_prepare() -> list[str]:
    """Render a sample reward email with a code in each of settings.LANGUAGES and build its MIME message, sending
    nothing and reading neither the database nor Redis; returns the languages.

    A Celery worker does this when it starts (rewards_portal.warmup.worker_warm_up). Otherwise its first
    delivery did it: the email templates compiled (kept per language by _template), each language's translations
    and Babel's locale data loaded (format_money: ~28 ms for English alone), the Fernet keys set up — ~40 ms of
    CPU the first time, ~4 ms after (bench/worker_first_task.py).
    """
    from decimal import Decimal

    from orders.models import Order

    languages = [code for code, _name in settings.LANGUAGES]
    for code in languages:
        sample = Reward(
            order=Order(type=OrderType.DIGITAL),
            product_snapshot={"brand": "Lumen Coffee", "name": "Lumen Coffee eGift", "type": "digital",
                              "redemption_url": "https://example.com/redeem"},
            amount=Decimal("25"),
            currency="USD",
            locale=code,
            code_encrypted=crypto.encrypt("SAMPLE-CODE-0000"),
            pin_encrypted=crypto.encrypt("0000"),
            code_last4="0000",
        )  # fmt: skip
        reward_email_message(reward=sample, to="sample@example.com", message_id="sample").message()
    return languages


def _message_id_domain() -> str:
    return str(settings.DEFAULT_FROM_EMAIL).rpartition("@")[2] or "localhost"


def mail_send(message: EmailMultiAlternatives, *, connection: Any = None) -> None:
    """Send one message (over `connection`, a mail backend kept open by the caller, or a new one); a refused
    recipient raises DeliveryFailed, other SMTP / connection errors (OSError) propagate: the caller retries."""
    try:
        if connection is None:
            message.send(fail_silently=False)
        else:
            connection.send_messages([message])
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryFailed("the recipient's mail server refused the address") from exc


def send_reward_email(*, reward: Reward, to: str, message_id: str = "", connection: Any = None) -> None:
    mail_send(reward_email_message(reward=reward, to=to, message_id=message_id), connection=connection)


# --- accepted sends -------------------------------------------------------------------------------------
# A message the mail server accepted is noted in Redis under its Message-ID, right after the acceptance and
# before the transaction that records the delivery commits. A worker killed in between rolls its records back;
# whoever delivers the reward again finds the note and records the delivery without sending a second copy. So a
# kill doubles a message only in the one round trip between the acceptance and the note, however many messages
# the transaction sent (the fulfilment drain sends a batch in one). Losing Redis loses the notes: then such a
# message goes out again, under the same Message-ID (mailboxes show one).
ACCEPTED_SECONDS = 86400  # far longer than any retry of one send takes


def _accepted_key(message_id: str) -> str:
    from core.db import connection

    return f"rp:mail-accepted:{connection.settings_dict['NAME']}:{connection.schema_name}:{message_id}"


def mail_accepted(message_ids: list[str]) -> set[str]:
    """Which of these Message-IDs (local parts) the mail server already accepted; on Redis trouble, none."""
    from core.redis import get_redis

    if not message_ids:
        return set()
    try:
        found = get_redis().mget([_accepted_key(message_id) for message_id in message_ids])
    except Exception:
        logger.warning("accepted-mail notes unreadable; sending", extra={"event": "mail.accepted_unreadable"})
        return set()
    return {message_id for message_id, value in zip(message_ids, found, strict=True) if value}


def mail_accepted_note(message_id: str) -> None:
    from core.redis import get_redis

    try:
        get_redis().set(_accepted_key(message_id), b"1", ex=ACCEPTED_SECONDS)
    except Exception:  # the message went out; only a kill before COMMIT would now send it twice
        logger.warning("accepted-mail note not written", extra={"event": "mail.accepted_unwritten"})


def send_reward_sms(*, reward: Reward, to: str) -> None:
    from .sms import get_sms_backend

    get_sms_backend().send(to=to, body=reward_sms_text(reward))


def reward_sms_text(reward: Reward, *, reminder: bool = False) -> str:
    """The SMS body (or a reminder of the link), in the reward's language."""
    with language(reward.locale):
        context = reward_email_context(reward)
        if reminder and context["claim_url"]:
            return _("Reminder: %(company)s sent you a %(brand)s gift. Claim it by %(date)s: %(url)s") % {
                "company": context["company"],
                "brand": context["brand"],
                "date": date_format(reward.claim_expires_at, "j F Y") if reward.claim_expires_at else "",
                "url": context["claim_url"],
            }
        if context["claim_url"]:
            return _("%(company)s sent you a %(brand)s gift: %(url)s") % {
                "company": context["company"],
                "brand": context["brand"],
                "url": context["claim_url"],
            }
        pin = (" " + _("PIN %(pin)s") % {"pin": context["pin"]}) if context["pin"] else ""
        if headline := discount_headline(reward):  # what it takes off, not "a 20% off … gift card"
            return (
                _("%(company)s sent you a discount: %(discount)s. Your code: %(code)s")
                % {"company": context["company"], "discount": headline, "code": context["code"]}
                + pin
            )
        return (
            _("%(company)s sent you a %(amount)s %(brand)s gift card: %(code)s")
            % {
                "company": context["company"],
                "amount": context["amount"],
                "brand": context["brand"],
                "code": context["code"],
            }
            + pin
        )


def program_email_preview(*, program: Any, locale: str) -> tuple[str, str]:
    """(subject, HTML) of the email a claim link of this program sends, in `locale`, for a sample gift: what the
    Programs page shows for each language, with the program's logo, colour and sender name."""
    from decimal import Decimal

    from orders.models import Order

    sample = Reward(
        order=Order(type=OrderType.LINK, program=program),
        product_snapshot={"brand": "Lumen Coffee", "name": "Lumen Coffee eGift", "type": "digital"},
        amount=Decimal("50"),
        currency=program.budget_currency or "USD",
        message=program.default_message or "",
        sender_name=program.sender_name,
        locale=locale,
        claim_token_encrypted=crypto.encrypt("sample-link"),
    )
    subject, _text, html = reward_email_render(sample, preview=True)
    return subject, html
