"""Points running out: the notice N days before (a `points.expiring` event and an email to the person) and the
expiry itself (points.services.points_award_expire), both swept by beat, both harmless to run twice."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Min
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import override

from .models import PointsAward
from .selectors import awards_due
from .services import award_render, person_balance, points_award_expire

logger = logging.getLogger(__name__)

SWEEP_BATCH = 500  # awards per sweep and schema; the next sweep takes the rest


def points_expire_due() -> int:
    """Expire every due award in the current schema (up to SWEEP_BATCH): the points expired."""
    ids = list(awards_due().values_list("pk", flat=True)[:SWEEP_BATCH])
    return sum(points_award_expire(award_id=award_id) for award_id in ids)


def points_expiry_next_due() -> datetime | None:
    """When the sweep next has something to do in this schema (None: no award with points left that expires): an
    award's notice time (POINTS_EXPIRY_NOTICE_DAYS before it expires, until it is sent), else its expiry."""
    left = PointsAward.objects.filter(remaining__gt=0, expires_at__isnull=False)
    notice: datetime | None = left.filter(expiry_notified_at__isnull=True).aggregate(at=Min("expires_at"))["at"]
    expiry: datetime | None = left.aggregate(at=Min("expires_at"))["at"]
    if notice is not None:
        notice -= timedelta(days=settings.POINTS_EXPIRY_NOTICE_DAYS)
    return min((at for at in (notice, expiry) if at is not None), default=None)


def points_expiry_notify() -> int:
    """Tell people about awards expiring within POINTS_EXPIRY_NOTICE_DAYS, once per award: the awards notified."""
    horizon = timezone.now() + timedelta(days=settings.POINTS_EXPIRY_NOTICE_DAYS)
    ids = list(
        PointsAward.objects.filter(remaining__gt=0, expires_at__lte=horizon, expiry_notified_at__isnull=True)
        .order_by("expires_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    return sum(_notify(award_id) for award_id in ids)


def _notify(award_id: uuid.UUID | str) -> int:
    from webhooks.events import event_emit

    with transaction.atomic():
        award = (
            PointsAward.objects.select_for_update(of=("self",))
            .select_related("program", "transaction", "person")
            .filter(pk=award_id, expiry_notified_at__isnull=True, remaining__gt=0)
            .first()
        )
        if award is None or award.expires_at is None:
            return 0
        award.expiry_notified_at = timezone.now()
        award.save(update_fields=["expiry_notified_at"])
        event_emit(type="points.expiring", data={
            **award_render(award, balance=person_balance(program=award.program, person_id=award.person_id)),
            "points_expiring": award.remaining,
        })  # fmt: skip
        person = award.person
        if person is not None and person.email:
            subject, body = _email(award)
            email = person.email
            transaction.on_commit(lambda: send_mail(subject, body, None, [email], fail_silently=False))
    return 1


def _email(award: PointsAward) -> tuple[str, str]:
    person, program = award.person, award.program
    assert person is not None and award.expires_at is not None
    with override(person.locale or program.default_locale or None):
        context = {"points": award.remaining, "name": program.points_name, "program": program.name,
                   "date": award.expires_at.date().isoformat()}  # fmt: skip
        subject = _("%(points)s %(name)s expire on %(date)s") % context
        body = (
            _(
                "Hello,\n\n%(points)s %(name)s from %(program)s expire on %(date)s. "
                "Spend them before then on the points page.\n"
            )
            % context
        )
    return subject, body
