"""Fulfilment with real workers, a real Redis broker and a real SMTP server on 127.0.0.1."""

import email
import logging
from collections import defaultdict
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count
from django_tenants.utils import tenant_context

from catalog.models import Supplier
from core import crypto
from fulfillment.tasks import fulfilment_sweep
from funds.models import LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.create import order_create
from orders.idempotency import request_hash
from orders.models import Reward
from orders.planning import RewardInput
from tenants.services import api_key_create
from testsupport.catalog import make_shop
from testsupport.waiting import wait_for

pytestmark = pytest.mark.worker


def _place(tenant, product, *, count: int, email_domain: str = "example.com") -> list[str]:
    """One order of `count` email rewards (each to its own address), through the order service."""
    with tenant_context(tenant):
        from orders.selectors import order_get, order_render

        rewards = [
            RewardInput(
                product_id=str(product.id),
                amount=Decimal("10.00"),
                currency="USD",
                delivery_method="email",
                recipient={"name": f"Recipient {i}", "email": f"r{i}@{email_domain}"},
                message="Thanks!",
            )
            for i in range(count)
        ]
        _, body, _ = order_create(
            order_type="digital",
            rewards=rewards,
            idempotency_key=None,
            body_hash=request_hash({"n": count}),
            render=lambda order: order_render(order_get(order_id=order.id)),
        )
    connection.set_schema_to_public()
    return [reward["id"] for reward in body["rewards"]]


def _delivered(tenant) -> int:
    with tenant_context(tenant):
        return Reward.objects.filter(status="delivered").count()


def test_digital_order_is_emailed_with_its_code(committed_tenant, celery_worker_process, smtp_server, caplog):
    caplog.set_level(logging.DEBUG)
    _, raw_key = api_key_create(tenant=committed_tenant)
    shop = make_shop()
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="100.00")
    [reward_id] = _place(committed_tenant, shop.coffee_usd, count=1, email_domain="single.example")
    wait_for(lambda: _delivered(committed_tenant) == 1, timeout=30)
    with tenant_context(committed_tenant):
        reward = Reward.objects.get(pk=reward_id)
        code = crypto.decrypt(reward.code_encrypted)
        assert reward.hold.status == "captured"
        assert balance_get(currency="USD").available == Decimal("90.00")
        assert ledger_invariant_violations() == []
    mails = [text for text, m in zip(smtp_server.texts(), smtp_server.messages, strict=True)
             if m["to"] == ["r0@single.example"]]  # fmt: skip
    assert len(mails) == 1 and code in mails[0] and "Thanks!" in mails[0]
    # nothing secret in any log line: ours (caplog) or the worker's
    logs = caplog.text + celery_worker_process.log_text()
    assert code not in logs and code.replace("-", "") not in logs
    assert raw_key not in logs


def test_retryable_supplier_failure_recovers_on_retry(committed_tenant, celery_worker_process):
    shop = make_shop()
    supplier = Supplier.objects.get(pk=shop.coffee_usd.supplier_id)
    supplier.config = {"products": {str(shop.coffee_usd.id): {"fail": "retryable", "fail_times": 2}}}
    supplier.save(update_fields=["config"])
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="10.00")
    [reward_id] = _place(committed_tenant, shop.coffee_usd, count=1, email_domain="retry.example")
    wait_for(lambda: _delivered(committed_tenant) == 1, timeout=30)
    with tenant_context(committed_tenant):
        reward = Reward.objects.get(pk=reward_id)
        assert reward.attempts == 3 and reward.hold.status == "captured"
        assert ledger_invariant_violations() == []


def test_non_retryable_failure_fails_and_releases_its_hold(committed_tenant, celery_worker_process):
    shop = make_shop()
    supplier = Supplier.objects.get(pk=shop.coffee_usd.supplier_id)
    supplier.config = {"products": {str(shop.coffee_usd.id): {"fail": "permanent"}}}
    supplier.save(update_fields=["config"])
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="10.00")
    [reward_id] = _place(committed_tenant, shop.coffee_usd, count=1, email_domain="fail.example")

    def failed():
        with tenant_context(committed_tenant):
            return Reward.objects.get(pk=reward_id).status == "failed"

    wait_for(failed, timeout=30)
    with tenant_context(committed_tenant):
        reward = Reward.objects.get(pk=reward_id)
        assert reward.hold.status == "released" and reward.code_encrypted == ""
        assert balance_get(currency="USD").available == Decimal("10.00")
        assert ledger_invariant_violations() == []


def test_worker_killed_mid_batch_delivers_every_reward_exactly_once(
    committed_tenant, celery_worker_process, smtp_server
):
    count = 200
    shop = make_shop()
    supplier = Supplier.objects.get(pk=shop.coffee_usd.supplier_id)
    # a slow supplier, so the kill lands in the middle of the batch
    supplier.config = {"products": {str(shop.coffee_usd.id): {"delay_ms": 25}}}
    supplier.save(update_fields=["config"])
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount=str(10 * count))
    reward_ids = _place(committed_tenant, shop.coffee_usd, count=count, email_domain="kill.example")

    wait_for(lambda: _delivered(committed_tenant) >= count // 4, timeout=120, interval=0.02)
    celery_worker_process.kill()  # kill -9: unacked tasks, rewards left in `processing`
    delivered_at_kill = _delivered(committed_tenant)
    assert delivered_at_kill < count
    celery_worker_process.start(2)

    def all_delivered():
        with tenant_context(committed_tenant):
            fulfilment_sweep.apply()  # what beat does every 10 s: re-queue stale and orphaned rewards
        return _delivered(committed_tenant) == count

    try:
        wait_for(all_delivered, timeout=180, interval=1.0)
    except BaseException:
        with tenant_context(committed_tenant):
            states = list(Reward.objects.values("status").annotate(n=Count("id")))
        raise AssertionError(f"not all delivered after the restart: {states}") from None
    with tenant_context(committed_tenant):
        rewards = list(Reward.objects.filter(pk__in=reward_ids))
        codes = [crypto.decrypt(r.code_encrypted) for r in rewards]
        assert len(set(codes)) == count  # every reward has its own code, none issued twice
        captures = (
            LedgerTransaction.objects.filter(kind="capture").values("reference").annotate(n=Count("id")).filter(n__gt=1)
        )
        assert list(captures) == []  # no hold captured twice
        assert LedgerTransaction.objects.filter(kind="capture").count() == count
        balance = balance_get(currency="USD")
        assert (balance.posted, balance.held, balance.available) == (0, 0, 0)
        assert ledger_invariant_violations() == []
    sent = [(m["to"][0], email.message_from_string(m["data"])["Message-ID"], text)
            for text, m in zip(smtp_server.texts(), smtp_server.messages, strict=True)
            if m["to"][0].endswith("@kill.example")]  # fmt: skip
    for code in codes:
        assert any(code in text for _, _, text in sent)
    # The email goes out inside the transaction that records the delivery (fulfillment.services.reward_deliver):
    # only a kill between the mail server's acceptance and COMMIT sends it again, under the same Message-ID
    # (the mailbox shows one). One kill: one copy at most.
    duplicates = len(sent) - count
    assert duplicates <= 1, f"kill -9 at {delivered_at_kill}/{count} delivered; {duplicates} emails sent twice"
    message_ids = defaultdict(set)
    for address, message_id, _ in sent:
        message_ids[address].add(message_id)
    assert len(message_ids) == count and all(len(ids) == 1 for ids in message_ids.values())
