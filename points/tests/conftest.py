"""Points fixtures: a funded tenant with a Kudos program (100 points = 1.00 USD), people, and the books checked
(funds and points ledgers) after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django_tenants.utils import tenant_context

from audit.actors import Actor

ACTOR = Actor.cli()
KUDOS = {"name": "Kudos", "points_per_unit": 100, "currency": "USD", "expire_after_days": 365, "self_redeem": True}


def books_violations(tenant) -> list[str]:
    from funds.selectors import ledger_invariant_violations
    from points.selectors import points_invariant_violations

    with tenant_context(tenant):
        return ledger_invariant_violations() + points_invariant_violations()


@pytest.fixture
def books_balance(tenant_a) -> Iterator[None]:
    """Ends the test by checking tenant A's funds and points ledgers."""
    yield
    assert books_violations(tenant_a) == []


@pytest.fixture
def kudos(funded_a, shop, books_balance):
    """Tenant A (1,000.00 USD) with the `kudos` program offering every product."""
    from programs.services import program_create

    with tenant_context(funded_a):
        return program_create(slug="kudos", name="Kudos", points=KUDOS)


def make_person(tenant, external_id: str = "E-1", **fields):
    from people.services import person_create

    with tenant_context(tenant):
        return person_create(actor=ACTOR, fields={"external_id": external_id, "name": fields.pop("name", "Ana Tan"),
                                                  "email": fields.pop("email", f"{external_id.lower()}@alpha.test"),
                                                  **fields})  # fmt: skip


@pytest.fixture
def ana(tenant_a):
    return make_person(tenant_a, "E-1", name="Ana Tan")
