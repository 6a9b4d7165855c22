"""core.bulk.insert_statement reuses the INSERT text Django compiled for a shape of rows and computes the values
with the compiler's own field methods: the statement and its values are what Django's compiler gives, and the rows
written are the same."""

from __future__ import annotations

import copy
import uuid
from datetime import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.models.functions import Now
from django_tenants.utils import schema_context

from core import bulk
from orders.models import Order, Reward, RewardEvent
from testsupport.orders import digital_order


def _placed(api_a, tenant_a, shop) -> Reward:
    response = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd), HTTP_IDEMPOTENCY_KEY=uuid.uuid4().hex)
    assert response.status_code == 201, response.content
    with schema_context(tenant_a.schema_name):
        return Reward.objects.get(order_id=response.json()["id"])


def _fresh_reward(template: Reward) -> Reward:
    """An unsaved copy of `template` under a new order id: new key, the reference left to its sequence."""
    reward = copy.copy(template)
    reward._state = copy.copy(template._state)
    reward._state.adding = True
    reward.pk = uuid.uuid4()
    reward.hold_id = None  # one hold per reward
    reward.reference = Reward._meta.get_field("reference").get_default()
    return reward


def _compiled(objs) -> tuple[str, list]:
    """Django's compiler alone (no shape kept), for the same objects."""
    saved = dict(bulk._SHAPES)
    bulk._SHAPES.clear()
    try:
        return bulk.insert_statement(objs)
    finally:
        bulk._SHAPES.clear()
        bulk._SHAPES.update(saved)


def _normal(params: list) -> list:
    # psycopg's Jsonb wrapper has no equality of its own: compare what it wraps.
    return [getattr(value, "obj", value) if type(value).__name__ == "Jsonb" else value for value in params]


def test_a_reused_shape_gives_the_compilers_statement_and_values(api_a, funded_a, shop, tenant_a):
    reward = _placed(api_a, tenant_a, shop)
    with schema_context(tenant_a.schema_name):
        one = [_fresh_reward(reward)]
        events = [RewardEvent(reward_id=reward.pk, to_status=s, note=f"n{s}") for s in ("pending", "processing", "x")]
        for objs in (one, events):
            bulk.insert_statement(objs)  # the shape is kept
            reused = bulk.insert_statement(objs)
            expected = _compiled(objs)
            assert reused[0] == expected[0]
            assert _normal(reused[1]) == _normal(expected[1])
        # The reward's reference is left to its database default: not a column of the statement.
        assert '"reference"' not in reused_sql_of(one)
        # Several rows go as one array per column (Django's UNNEST form): three rows, one value per column.
        sql, params = bulk.insert_statement(events)
        assert "UNNEST" in sql and all(isinstance(column, list) and len(column) == 3 for column in params)


def test_values_not_of_their_columns_plain_type_are_prepared_by_the_field(api_a, funded_a, shop, tenant_a):
    """A value of its column's plain type is taken as it is; any other goes through the field's methods, so a
    string amount, a key given as text or a naive time are saved as Django saves them."""
    reward = _placed(api_a, tenant_a, shop)
    with schema_context(tenant_a.schema_name):
        bulk.insert_statement([_fresh_reward(reward)])  # the shape is kept
        odd = _fresh_reward(reward)
        odd.amount = "12.5"  # a str for a DecimalField
        odd.order_id = str(reward.order_id)  # a key as text
        odd.created_at = datetime(2026, 1, 2, 3, 4, 5)  # naive: Django makes it aware, with a warning
        with pytest.warns(RuntimeWarning, match="naive datetime"):
            reused = bulk.insert_statement([odd])
        with pytest.warns(RuntimeWarning, match="naive datetime"):
            expected = _compiled([odd])
        assert _normal(reused[1]) == _normal(expected[1])
        assert Decimal("12.5") in reused[1] and reward.order_id in reused[1]
        assert not any(isinstance(value, datetime) and value.tzinfo is None for value in reused[1])


def reused_sql_of(objs) -> str:
    return bulk.insert_statement(objs)[0]


def test_rows_written_through_a_reused_shape_read_back_as_given(api_a, funded_a, shop, tenant_a):
    reward = _placed(api_a, tenant_a, shop)
    with schema_context(tenant_a.schema_name):
        copies = []
        for _ in range(3):  # the first compiles the shape, the others reuse it
            fresh = _fresh_reward(reward)
            fresh.metadata = {"team": "ops", "n": len(copies)}
            with transaction.atomic():
                bulk.insert_together([fresh], returning=("reference",))
            copies.append(fresh)
        references = {fresh.reference for fresh in copies}
        assert len(references) == 3 and all(ref.startswith("RW-") for ref in references)
        for fresh in copies:
            stored = Reward.objects.get(pk=fresh.pk)
            for field in Reward._meta.concrete_fields:
                assert getattr(stored, field.attname) == getattr(fresh, field.attname), field.attname


def test_an_expression_value_is_compiled_each_time(api_a, funded_a, shop, tenant_a):
    reward = _placed(api_a, tenant_a, shop)
    with schema_context(tenant_a.schema_name):
        plain = [RewardEvent(reward_id=reward.pk, to_status="a")]
        bulk.insert_statement(plain)  # the plain shape is kept
        timed = [RewardEvent(reward_id=reward.pk, to_status="b", created_at=Now())]
        sql, params = bulk.insert_statement(timed)
        assert "STATEMENT_TIMESTAMP()" in sql.upper() or "NOW()" in sql.upper()
        assert len(params) == len(plain) * len(bulk.insert_statement(plain)[1]) - 1  # created_at is in the SQL
        with transaction.atomic():
            bulk.insert_together(timed)
        assert RewardEvent.objects.filter(reward_id=reward.pk, to_status="b").count() == 1
        assert Order.objects.filter(pk=reward.order_id).exists()
        assert connection.schema_name == tenant_a.schema_name
