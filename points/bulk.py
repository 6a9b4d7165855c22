"""Awarding points to many people at once (a team from the portal): one award per person, each idempotent by
an external id derived from the request, so a resubmitted form awards nobody twice."""

from __future__ import annotations

from dataclasses import dataclass

from audit.actors import Actor
from core.errors import ApplicationError
from people.models import Person
from programs.models import Program

from .services import points_award

TEAM_MAX = 2000  # people per team award from the portal; larger sends are CSV batches


@dataclass(frozen=True)
class TeamAwardResult:
    awarded: int
    already: int  # awards this request made before (a resubmitted form)
    refused: list[str]  # "<external_id>: <reason>" for people who could not be awarded


def points_award_team(
    *, program: Program, people: list[Person], points: int, reason: str, request_id: str, actor: Actor | None
) -> TeamAwardResult:
    """Award `points` to each person; each award is its own transaction (one refusal, e.g. funds running out,
    leaves the others awarded) and idempotent by `<request_id>:<person id>`."""
    if len(people) > TEAM_MAX:
        raise ApplicationError(f"At most {TEAM_MAX} people at once; use a CSV upload for more.",
                               code="validation_error", errors={"department": ["Too many people."]})  # fmt: skip
    awarded = already = 0
    refused: list[str] = []
    for person in sorted(people, key=lambda p: str(p.pk)):
        try:
            _, created = points_award(program=program, person=person, points=points, reason=reason,
                                      external_id=f"{request_id}:{person.pk}", actor=actor)  # fmt: skip
        except ApplicationError as exc:
            refused.append(f"{person.external_id}: {exc.detail}")
            continue
        awarded += created
        already += not created
    return TeamAwardResult(awarded=awarded, already=already, refused=refused)
