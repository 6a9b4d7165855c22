"""Recipients sign in to the points page with a link by email: no password; the link is random (256 bits),
stored as a hash, expires after POINTS_SIGN_IN_TTL_MINUTES and works once. Asking for one is rate-limited per
address and per client, and the answer never says whether an address has points."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override

from core.i18n import locale_normalize
from core.ratelimit import hit_all
from people.models import Person

from .models import PointsAccount, PointsAccountKind, PointsSignIn

WINDOW = 3600


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in_allowed(*, schema: str, email: str, ip: str) -> tuple[bool, int]:
    """Count one request for a link (per address and per client, per hour): (allowed, retry after seconds)."""
    limit = settings.POINTS_SIGN_IN_LIMIT_PER_HOUR
    return hit_all([f"points-signin:{schema}:{email}", f"points-signin-ip:{schema}:{ip}"], limit=limit, window=WINDOW)


def sign_in_link_send(*, email: str, link_for: Callable[[str], str]) -> bool:
    """Email a sign-in link to the person with this address if they hold points in a program that lets them
    spend them; True if one was sent (the page says the same either way)."""
    email = email.strip().lower()
    person = (
        Person.objects.filter(email__iexact=email, status="active")
        .filter(pk__in=PointsAccount.objects.filter(kind=PointsAccountKind.PERSON, program__points_self_redeem=True)
                .values("person_id"))
        .order_by("created_at")
        .first()
    )  # fmt: skip
    if person is None:
        return False
    token = secrets.token_urlsafe(32)
    ttl = settings.POINTS_SIGN_IN_TTL_MINUTES
    with transaction.atomic():
        PointsSignIn.objects.create(
            token_hash=_hash(token), person=person, expires_at=timezone.now() + timedelta(minutes=ttl)
        )
        with override(person.locale or None):
            subject = _("Your sign-in link to your points")
            body = _(
                "Hello %(name)s,\n\nOpen this link to see and spend your points (it works once, for %(minutes)s "
                "minutes):\n%(link)s\n\nIf you did not ask for it, ignore this email.\n"
            ) % {"name": person.name, "minutes": ttl, "link": _link(link_for(token), person)}
        address = person.email
        transaction.on_commit(lambda: send_mail(subject, body, None, [address]))
    return True


def _link(link: str, person: Person) -> str:
    """The link opens its page in the language of the email it came in (review: a Malay reader's Malay email led
    to an English "Sign in" page); `?lang=` is what the points page's language links use."""
    language = locale_normalize(person.locale)
    return f"{link}?lang={language}" if language else link


def sign_in_redeem(*, token: str) -> Person | None:
    """The person a link signs in, using it up; None if it is unknown, used or expired."""
    with transaction.atomic():
        row = (
            PointsSignIn.objects.select_for_update()
            .select_related("person")
            .filter(token_hash=_hash(token), used_at__isnull=True, expires_at__gt=timezone.now())
            .first()
        )
        if row is None:
            return None
        row.used_at = timezone.now()
        row.save(update_fields=["used_at"])
        return row.person


def sign_in_valid(*, token: str) -> bool:
    return PointsSignIn.objects.filter(token_hash=_hash(token), used_at__isnull=True,
                                       expires_at__gt=timezone.now()).exists()  # fmt: skip
