"""Awarding points, taking them back and letting them expire: the points ledger and the funds holds behind it.

An award holds the tenant's money for the points' value in the same transaction (402 `insufficient_funds` if
it cannot, and nothing is awarded); expiry and reversal release what is left of that hold.
"""

from __future__ import annotations

import functools
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.actors import Actor
from audit.services import audit_action
from core.bulk import insert_together
from core.errors import ApplicationError
from funds.models import Hold
from funds.services import (
    HoldRefusedAtCommit,
    funds_hold,
    funds_hold_release_part,
    holds_refused_at_commit,
)
from people.models import Person
from programs.models import Program

from . import ledger
from .models import PointsAccount, PointsAccountKind, PointsAward, PointsTransactionKind

logger = logging.getLogger(__name__)

MAX_POINTS = 100_000_000  # one award; beyond this it is a typo, not recognition


def _refuse(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, code="validation_error", status=422, errors={field: [message]})


def program_with_points(program: Program) -> Program:
    if not program.has_points:
        raise _refuse("program", f"The program {program.slug!r} has no points currency.")
    return program


def award_render(award: PointsAward, *, balance: int | None = None) -> dict[str, Any]:
    return {
        "id": str(award.id),
        "external_id": award.external_id,
        "person_id": str(award.person_id) if award.person_id else None,
        "program": award.program.slug,
        "points": award.points,
        "remaining": award.remaining,
        "reason": award.transaction.reason,
        "expires_at": award.expires_at.isoformat() if award.expires_at else None,
        "created_at": award.created_at.isoformat(),
        **({"balance": balance} if balance is not None else {}),
    }


def person_balance(*, program: Program, person_id: uuid.UUID | str | None) -> int:
    if person_id is None:  # an erased person's award: their account is no longer theirs
        return 0
    account = PointsAccount.objects.filter(program=program, person_id=person_id, kind=PointsAccountKind.PERSON)
    return int(account.values_list("balance", flat=True).first() or 0)


def points_award(
    *,
    program: Program,
    person: Person,
    points: object,
    reason: str = "",
    external_id: str | None = None,
    reference: str = "",
    actor: Actor | None,
) -> tuple[PointsAward, bool]:
    """Award `points` to a person: (award, created). The same `external_id` again returns the first award and
    posts nothing. Holds the points' value in the program's funding currency (402 if funds do not cover it)."""
    program_with_points(program)
    if isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= MAX_POINTS:
        raise _refuse("points", f"A whole number of points from 1 to {MAX_POINTS}.")
    if len(reason) > 300:
        raise _refuse("reason", "At most 300 characters.")
    if external_id:
        existing = _award_by_external_id(external_id)
        if existing is not None:
            return existing, False
    award = functools.partial(_award, program=program, person=person, points=points, reason=reason,
                              external_id=external_id, reference=reference, actor=actor)  # fmt: skip
    try:
        if not transaction.get_connection().in_atomic_block:
            # This call owns the COMMIT, so the hold is posted during it (funds_hold(at_commit=True)), as an
            # order's is: the tenant's cash row, which every award and order updates, is locked for the commit
            # alone.
            try:
                with holds_refused_at_commit(), transaction.atomic():
                    return award(hold_at_commit=True), True
            except HoldRefusedAtCommit:
                pass  # rolled back whole: the posting in the transaction decides (402, or the hold and balance.low)
        with transaction.atomic():
            return award(hold_at_commit=False), True
    except IntegrityError:
        existing = _award_by_external_id(external_id) if external_id else None
        if existing is None:
            raise
        return existing, False  # a concurrent twin with the same external_id won


def automation_points_award(
    *, program: Program, person: Person, points: int, reason: str, external_id: str
) -> uuid.UUID:
    """automations.handoff: an automation run's award (idempotent by the run's external id); the award's id."""
    award, _ = points_award(program=program, person=person, points=points, reason=reason[:300],
                            external_id=external_id, actor=None)  # fmt: skip
    return award.id


def _award_by_external_id(external_id: str) -> PointsAward | None:
    return PointsAward.objects.select_related("program", "transaction").filter(external_id=external_id).first()


def _award(
    *, program: Program, person: Person, points: int, reason: str, external_id: str | None, reference: str,
    actor: Actor | None, hold_at_commit: bool,
) -> PointsAward:  # fmt: skip
    """The award's rows first, the account UPDATEs last: the person's account and the program's `issued` account
    (which every award of the program updates) are locked from their UPDATE to the commit, so only the hold's
    insert (or, not at commit, its posting: the funds ledger comes after the points ledger in the lock order)
    and the event come between. The foreign keys to the transaction and the hold are checked at commit."""
    ids = ledger.account_ids(program=program, person_id=person.pk)
    txn = ledger.transaction_new(kind=PointsTransactionKind.AWARD, program=program, person_id=person.pk,
                                 points=points, reason=reason, reference=reference)  # fmt: skip
    now = timezone.now()
    days = program.points_expire_after_days
    award = PointsAward(
        external_id=external_id or None, transaction=txn, program=program, person=person,
        account_id=ids[PointsAccountKind.PERSON], points=points, remaining=points,
        expires_at=now + timedelta(days=days) if days else None, created_at=now, hold_id=uuid.uuid4(),
    )  # fmt: skip
    # One round trip for the transaction and the award (a twin external_id fails here, before any lock).
    insert_together([txn], [award])
    audit_action(actor=actor, action="points.award", object_type="points_award", object_id=award.id,
                 data={"program": program.slug, "person_id": str(person.pk), "points": points})  # fmt: skip
    balance, _ = ledger.apply(
        txn=txn, legs=[(ids[PointsAccountKind.PERSON], points), (ids[PointsAccountKind.ISSUED], -points)]
    )
    award.hold = funds_hold(
        currency=program.points_currency,
        amount=ledger.points_value(program=program, points=points),
        reference=f"points_award:{award.id}",
        description=f"{points} {program.points_name} for {person.name or person.external_id}",
        hold_id=award.hold_id,
        at_commit=hold_at_commit,
    )
    from webhooks.events import event_emit

    event_emit(type="points.awarded", data=award_render(award, balance=balance))
    logger.info("points awarded", extra={"event": "points.awarded", "award_id": str(award.id), "points": points})
    return award


def _take_back(*, award: PointsAward, kind: str, reason: str) -> int:
    """Move what is left of a locked award to `expired` and release its hold; the points moved (0: nothing)."""
    left = award.remaining
    if left == 0:
        return 0
    program = award.program
    ids = ledger.account_ids(program=program, person_id=None)
    ledger.post(
        kind=kind, program=program, person_id=award.person_id, points=left,
        legs=[(award.account_id, -left), (ids[PointsAccountKind.EXPIRED], left)],
        reason=reason, reference=f"points_award:{award.id}",
    )  # fmt: skip
    funds_hold_release_part(
        hold=Hold(pk=award.hold_id), amount=ledger.points_value(program=program, points=left),
        description=f"{left} {program.points_name} {kind}d",
    )  # fmt: skip
    award.remaining = 0
    award.save(update_fields=["remaining"])
    return left


def _locked_award(award_id: uuid.UUID | str) -> PointsAward:
    award = PointsAward.objects.select_related("program", "transaction").get(pk=award_id)
    # The person's account first (the ledger's lock order), then the award.
    PointsAccount.objects.select_for_update().filter(pk=award.account_id).first()
    return PointsAward.objects.select_for_update(of=("self",)).select_related("program", "transaction").get(pk=award_id)


def points_award_reverse(
    *, award_id: uuid.UUID | str, reason: str = "", actor: Actor | None
) -> tuple[PointsAward, int]:
    """Take back what is left of an award (points already spent stay spent) and release its money:
    (award, points reversed). A second reversal reverses nothing."""
    with transaction.atomic():
        award = _locked_award(award_id)
        reversed_points = _take_back(award=award, kind=PointsTransactionKind.REVERSE, reason=reason or "Reversed")
        if reversed_points:
            from webhooks.events import event_emit

            balance = person_balance(program=award.program, person_id=award.person_id)
            event_emit(type="points.reversed", data={**award_render(award, balance=balance),
                                                     "points_reversed": reversed_points})  # fmt: skip
            audit_action(actor=actor, action="points.reverse", object_type="points_award", object_id=award.id,
                         data={"points": reversed_points, "reason": reason})  # fmt: skip
    return award, reversed_points


def points_award_expire(*, award_id: uuid.UUID | str) -> int:
    """Expire what is left of a due award (a beat task's work; harmless twice): the points expired."""
    with transaction.atomic():
        award = _locked_award(award_id)
        if award.expires_at is None or award.expires_at > timezone.now():
            return 0
        expired = _take_back(award=award, kind=PointsTransactionKind.EXPIRE, reason="Expired")
        if expired:
            from webhooks.events import event_emit

            balance = person_balance(program=award.program, person_id=award.person_id)
            event_emit(type="points.expired", data={**award_render(award, balance=balance), "points_expired": expired})
    if expired:
        logger.info("points expired", extra={"event": "points.expired", "award_id": str(award_id), "points": expired})
    return expired
