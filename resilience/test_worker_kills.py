"""Workers killed with SIGKILL during delivery and webhook flows: no reward lost or doubled, no event lost.

One combined flow. Client threads place orders through the real HTTP API (a threaded WSGI server on
127.0.0.1) while real Celery workers fulfil them: email rewards from the sandbox supplier, SMS rewards
through a Twilio-style provider on 127.0.0.1, claim-link rewards (emailed, and API-only links), and
email rewards drawn from the code-inventory supplier, whose codes must each be used exactly once. A
webhook endpoint subscribed to every event is served by a receiver on 127.0.0.1. Meanwhile the worker
is killed with SIGKILL many times, and restarted each time:
  - at random moments with work in flight (mid-supplier call, mid-transaction, mid-SMTP, mid-webhook POST);
  - exactly between the steps of the three-step fulfil, through core.faults (the worker kills itself):
    `fulfil.issued` (the supplier gave a code that is not yet recorded) and `fulfil.settled` (the code is
    recorded and the hold captured, the email not yet sent).
A sweeper thread does beat's job (re-queues rewards whose worker lease ran out, and due webhook deliveries).

What a user would notice, asserted at the end:
  - every reward delivered: each email reward's recipient got its email (with its code, or its claim link),
    each SMS reward's phone its SMS, nobody else got anything. Sending is the last step of the transaction
    that records the delivery (fulfillment.services.reward_deliver), so only a kill in the one round trip
    between the mail server's acceptance and COMMIT can send a message twice: such copies are counted
    (at most one per kill is allowed) and must be the same message under the same Message-ID, which the
    recipient's mailbox shows as one. The window itself is tested deterministically at the end of this file;
    the summary line prints how many random kills hit it (usually none);
  - every inventory code issued to at most one reward, and exactly one code per inventory reward;
  - money: one capture per reward, spent == the sum of the delivered rewards, nothing held, and
    ledger_invariant_violations() == [] in the live schema (the sandbox twin, never used, was never provisioned);
  - webhooks: every event reached the receiver, verified with its Standard Webhooks signature.
    Webhooks are at-least-once by contract: a worker killed after the receiver answered 200 but before the
    delivery was marked succeeded sends it again, so duplicates are allowed (one per kill that caught the
    delivery claimed, at most), and counted. The webhook-id is
    stable across retries so receivers can dedupe; "nothing doubled" therefore means: each event was
    recorded once (one order.created / order.completed per order, one reward.delivered per reward), has one
    delivery row per endpoint, and every copy that arrived carries the same webhook-id.
"""

from __future__ import annotations

import email
import json
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django_tenants.utils import tenant_context
from standardwebhooks import Webhook

from catalog.inventory import inventory_import_csv
from catalog.models import InventoryCode, InventoryCodeStatus
from catalog.services import brand_upsert, product_create, supplier_upsert
from core import crypto
from core.faults import fault_arm, fault_disarm, fault_kills
from fulfillment.tasks import fulfilment_sweep
from funds.models import Hold, LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Order, Reward
from tenants.models import Tenant
from tenants.services import api_key_create
from testsupport.api import http_json
from testsupport.catalog import make_shop
from testsupport.waiting import wait_until
from testsupport.webhooks import assert_resends_bounded, claimed_delivery_ids
from webhooks.endpoints import webhook_endpoint_create
from webhooks.models import Event, WebhookDelivery
from webhooks.tasks import webhook_deliveries_sweep

from .killing import ThirdParty, any_dead, purge_queued, restart

pytestmark = [pytest.mark.resilience, pytest.mark.worker]

RANDOM_KILLS = 5
FAULT_KILLS = {"fulfil.issued": 2, "fulfil.settled": 2}
CLIENTS = 2
ORDER_INTERVAL = 2.0  # seconds between one client's orders (~1 order/s, ~1.75 rewards/s in all)
SWEEP_EVERY = 2.0  # beat's interval, shortened
# A pending reward older than this is taken for orphaned (its task lost with a killed worker's prefetch) and
# re-queued at every sweep; it must stay above the time a task waits in the queue, or every sweep re-queues
# the whole backlog again (see the report: rewards_due has no "already re-queued" mark).
ORPHANED_AFTER = 20
LEASE_SECONDS = 8  # the workers' reward lease: a killed worker's rewards are re-queued after this
REQUEUE_AFTER = 15  # WEBHOOK_REQUEUE_AFTER_SECONDS for the in-process sweeper (production: 300)
DRAIN_TIMEOUT = 90.0
INVENTORY_CODES = 300
DEPOSIT = Decimal("100000.00")
DOMAIN = "kills.example"


class Flow:
    """What the clients placed, as the API answered it."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.orders: list[str] = []
        self.rewards: dict[str, dict] = {}  # id -> {"kind", "email", "phone", "order"}
        self.replays = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()


def _order_body(index: int, tag: str, shop, inventory_product) -> tuple[dict, list[str]]:
    """Four shapes in turn; returns the body and each reward's kind (email/sms/link-email/link/inventory)."""
    coffee = str(shop.coffee_usd.id)
    stock = str(inventory_product.id)

    def reward(product, method, kind_suffix="a", **recipient):
        return {
            "product_id": product,
            "amount": "10.00",
            "currency": "USD",
            "delivery_method": method,
            "recipient": {"name": f"Recipient {index}{kind_suffix}", **recipient},
            "message": "Thanks for staying up!",
        }

    first = f"o{index}a.{tag}@{DOMAIN}"
    shape = index % 4
    if shape == 0:
        rewards = [reward(coffee, "email", email=first), reward(coffee, "sms", "b", phone=f"+1555{index:07d}")]
        return {"type": "digital", "rewards": rewards}, ["email", "sms"]
    if shape == 1:
        return {"type": "digital", "rewards": [reward(stock, "email", email=first)]}, ["inventory"]
    if shape == 2:
        rewards = [reward(coffee, "email", email=first), reward(coffee, "link", "b")]
        return {"type": "link", "rewards": rewards}, ["link-email", "link"]
    rewards = [reward(coffee, "email", email=first), reward(stock, "email", "b", email=f"o{index}b.{tag}@{DOMAIN}")]
    return {"type": "digital", "rewards": rewards}, ["email", "inventory"]


def _client(number: int, *, base: str, key: str, flow: Flow, shop, stock, stop: threading.Event) -> None:
    """Places orders every ORDER_INTERVAL until told to stop; every 10th request is sent twice (a client retry)."""
    try:
        index = number
        next_at = time.monotonic()
        while not stop.is_set():
            body, kinds = _order_body(index, flow.tag, shop, stock)
            headers = {"Idempotency-Key": f"{flow.tag}-{index}"}
            status, order, _ = http_json("POST", f"{base}/api/v1/orders", key=key, body=body, headers=headers)
            assert status == 201, (status, order)
            if index % 10 == 5:
                again, replayed, replay_headers = http_json(
                    "POST", f"{base}/api/v1/orders", key=key, body=body, headers=headers
                )
                assert again in (200, 201) and replayed["id"] == order["id"], (again, replayed)
                assert replay_headers.get("Idempotent-Replayed") == "true", replay_headers
            with flow.lock:
                flow.orders.append(order["id"])
                if index % 10 == 5:
                    flow.replays += 1
                for placed, kind, asked in zip(order["rewards"], kinds, body["rewards"], strict=True):
                    flow.rewards[placed["id"]] = {
                        "kind": kind,
                        "email": asked["recipient"].get("email"),
                        "phone": asked["recipient"].get("phone"),
                        "order": order["id"],
                    }
            index += CLIENTS
            next_at += ORDER_INTERVAL
            stop.wait(max(0.0, next_at - time.monotonic()))
    except BaseException as exc:  # reported by the main thread
        flow.errors.append(exc)
    finally:
        connection.close()


def _sweeper(stop: threading.Event, sweeps: list, errors: list) -> None:
    """What beat does: re-queue rewards whose lease ran out, publish due webhook deliveries."""
    try:
        while not stop.is_set():
            sweeps.append(fulfilment_sweep.apply().get() + webhook_deliveries_sweep.apply().get())
            stop.wait(SWEEP_EVERY)
    except BaseException as exc:
        errors.append(exc)
    finally:
        connection.close()


def _in_flight(tenant) -> dict[str, int]:
    with tenant_context(tenant):
        rewards = Reward.objects.filter(status__in=["pending", "processing"]).count()
        deliveries = WebhookDelivery.objects.filter(status__in=["pending", "sending"]).count()
    connection.set_schema_to_public()
    return {"rewards": rewards, "deliveries": deliveries}


def _inventory_product(tmp_path, tag: str):
    supplier = supplier_upsert(code=f"inv-{tag}", name="Prepaid stock", kind="inventory")
    brand = brand_upsert(slug=f"kite-{tag}", name="Kite Books")
    product = product_create(brand=brand, name="Kite Books", currency="USD", countries=["US"],
                             denomination_type="fixed", denomination_values=["10"], supplier=supplier)  # fmt: skip
    rng = random.SystemRandom()
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    lines = ["code,pin,denomination"]
    for _ in range(INVENTORY_CODES):
        code = "-".join("".join(rng.choice(alphabet) for _ in range(4)) for _ in range(4))
        lines.append(f"KITE-{code},{rng.randrange(1000, 9999)},10")
    path = tmp_path / "codes.csv"
    path.write_text("\n".join(lines) + "\n")
    inventory_import_csv(supplier=supplier, product=product, path=path)
    return product


@pytest.fixture
def third_party():
    party = ThirdParty()
    yield party
    party.stop()


@pytest.fixture
def killable_workers(celery_worker_process, third_party):
    """The session's worker pool, restarted with fault injection on, the HTTP SMS provider and a longer lease;
    put back as it was afterwards."""
    pool = celery_worker_process
    env = {**third_party.worker_env(), "TEST_FAULT_INJECTION": "1", "FULFILMENT_LEASE_SECONDS": str(LEASE_SECONDS)}
    pool.kill()
    fault_disarm()
    try:
        with mock.patch.dict(os.environ, env):
            restart(pool)
            yield pool
            pool.kill()
    finally:
        fault_disarm()
        pool.kill()
        restart(pool)


def test_workers_killed_at_random_and_between_steps_lose_and_double_nothing(
    committed_tenant, live_http, killable_workers, third_party, smtp_server, settings, tmp_path
):
    settings.FULFILMENT_LEASE_SECONDS = ORPHANED_AFTER  # the in-process sweeper's idea of an orphaned reward
    settings.WEBHOOK_REQUEUE_AFTER_SECONDS = REQUEUE_AFTER
    pool = killable_workers
    seed = random.randrange(1 << 32)
    rng = random.Random(seed)
    tag = uuid.uuid4().hex[:8]
    started = time.monotonic()

    connection.set_schema_to_public()
    _, key = api_key_create(tenant=committed_tenant)
    shop = make_shop()
    stock = _inventory_product(tmp_path, tag)
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount=str(DEPOSIT))
        endpoint, secret = webhook_endpoint_create(url=f"{third_party.base_url}/hooks", events=["*"])
    connection.set_schema_to_public()

    flow = Flow(tag)
    sweeps: list[int] = []
    sweep_errors: list[BaseException] = []
    stop_clients, stop_sweeping = threading.Event(), threading.Event()
    threads = [
        threading.Thread(
            target=_client,
            args=(number,),
            kwargs={"base": live_http, "key": key, "flow": flow, "shop": shop, "stock": stock, "stop": stop_clients},
            daemon=True,
        )
        for number in range(CLIENTS)
    ]
    sweeper = threading.Thread(target=_sweeper, args=(stop_sweeping, sweeps, sweep_errors), daemon=True)
    for thread in [*threads, sweeper]:
        thread.start()

    plan = ["random"] * RANDOM_KILLS + [point for point, n in FAULT_KILLS.items() for _ in range(n)]
    rng.shuffle(plan)
    kills: list[dict] = []
    held: Counter[str] = Counter()  # delivery id -> kills that caught it claimed
    boots: list[float] = []
    try:
        for action in plan:
            time.sleep(rng.uniform(0.5, 2.5))
            assert not flow.errors and not sweep_errors, (flow.errors, sweep_errors)
            assert not any_dead(pool), "a worker died without being told to"
            if action == "random":
                # every other random kill waits for webhook deliveries in flight (they are quick to drain)
                randoms = sum(1 for k in kills if k["how"] == "random")
                if randoms % 2 and wait_until(lambda: _in_flight(committed_tenant)["deliveries"], timeout=15):
                    in_flight = _in_flight(committed_tenant)
                else:
                    assert wait_until(lambda: any(_in_flight(committed_tenant).values()), timeout=30)
                    in_flight = _in_flight(committed_tenant)
                pool.kill()
            else:
                before = _in_flight(committed_tenant)
                fault_arm(action, times=1)
                died = wait_until(lambda: any_dead(pool), timeout=30)
                assert died, f"no worker reached {action} within 30 s"
                # What the dead worker left (its reward is not delivered): the queue may have been empty
                # when the point was armed, and the worker reached it with the next order.
                after = _in_flight(committed_tenant)
                in_flight = {name: max(before[name], after[name]) for name in before}
                pool.kill()  # reap it
            with tenant_context(committed_tenant):
                claimed = claimed_delivery_ids()  # what the dead worker held: all its kill can send twice
            connection.set_schema_to_public()
            held.update(claimed)
            kills.append({"at": round(time.monotonic() - started, 1), "how": action, **in_flight})
            time.sleep(rng.uniform(0.0, 0.5))  # orders keep coming while no worker runs
            boots.append(restart(pool))
        stop_clients.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not flow.errors, flow.errors
        placed_at = time.monotonic() - started

        def drained() -> bool:
            assert not sweep_errors, sweep_errors
            assert not any_dead(pool), "a worker died after the last kill"
            with tenant_context(committed_tenant):
                undelivered = Reward.objects.exclude(status="delivered").exists()
                unfinished = WebhookDelivery.objects.exclude(status="succeeded").exists()
            connection.set_schema_to_public()
            return not undelivered and not unfinished

        if not wait_until(drained, timeout=DRAIN_TIMEOUT, interval=0.25):
            with tenant_context(committed_tenant):
                rewards = dict(Reward.objects.values_list("status").annotate(n=Count("id")))
                deliveries = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")))
            pytest.fail(f"not drained {DRAIN_TIMEOUT:g}s after the last order: rewards {rewards}, "
                        f"deliveries {deliveries}; kills {kills}")  # fmt: skip
        drained_at = time.monotonic() - started
    finally:
        stop_clients.set()
        stop_sweeping.set()
        sweeper.join(timeout=30)
        fault_kills_seen = {point: fault_kills(point, armed=FAULT_KILLS[point]) for point in FAULT_KILLS}
        fault_disarm()
        leftover = purge_queued({committed_tenant.schema_name, committed_tenant.sandbox.schema_name})
    assert not sweep_errors, sweep_errors

    # The kills happened: each with work in flight, each fault point reached as often as armed.
    assert len(kills) == len(plan) and all(k["rewards"] or k["deliveries"] for k in kills), kills
    assert fault_kills_seen == FAULT_KILLS, fault_kills_seen
    rewards_by_kind = defaultdict(list)
    for reward_id, placed in flow.rewards.items():
        rewards_by_kind[placed["kind"]].append(reward_id)
    assert all(rewards_by_kind[kind] for kind in ("email", "sms", "link-email", "link", "inventory")), rewards_by_kind

    with tenant_context(committed_tenant):
        rewards = {str(r.id): r for r in Reward.objects.select_related("hold")}
        orders = dict(Order.objects.values_list("id", "status"))
        # every order placed once (the retried requests were replayed, not placed again), all completed
        assert sorted(str(o) for o in orders) == sorted(flow.orders)
        assert set(orders.values()) == {"completed"}
        assert set(rewards) == set(flow.rewards)
        assert {r.status for r in rewards.values()} == {"delivered"}
        codes = {reward_id: crypto.decrypt(r.code_encrypted) for reward_id, r in rewards.items()}
        assert len(set(codes.values())) == len(codes)  # every reward its own code
        claim_links = {reward_id: r.claim_token_encrypted and crypto.decrypt(r.claim_token_encrypted)
                       for reward_id, r in rewards.items()}  # fmt: skip

        # money: captured once per reward; what was spent is what was delivered; nothing held
        captures = Counter(LedgerTransaction.objects.filter(kind="capture").values_list("reference", flat=True))
        assert len(captures) == len(rewards) and set(captures.values()) == {1}, captures.most_common(3)
        assert {r.hold.status for r in rewards.values()} == {"captured"}
        spent = Hold.objects.filter(status="captured").aggregate(total=Sum("amount"))["total"]
        assert spent == sum(r.charge_amount for r in rewards.values())
        balance = balance_get(currency="USD")
        assert (balance.posted, balance.held) == (DEPOSIT - spent, 0)
        assert ledger_invariant_violations() == []

        # events recorded once each; one delivery row per (event, endpoint)
        # (the deposit's balance.credited came before the endpoint: it went nowhere)
        events = list(Event.objects.filter(created_at__gte=endpoint.created_at).values("id", "type", "data__id"))
        by_type = defaultdict(Counter)
        for event in events:
            by_type[event["type"]][event["data__id"]] += 1
        assert by_type["order.created"] == Counter({order: 1 for order in flow.orders})
        assert by_type["order.completed"] == Counter({order: 1 for order in flow.orders})
        assert by_type["reward.delivered"] == Counter({reward: 1 for reward in flow.rewards})
        per_event = Counter(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("event_id", flat=True))
        assert set(per_event) == {event["id"] for event in events} and set(per_event.values()) == {1}
    # The flow used live keys only, and nothing a kill or a sweep did made the sandbox twin's schema (lazy twins).
    assert not Tenant.objects.get(pk=committed_tenant.sandbox.pk).schema_ready
    connection.set_schema_to_public()

    # inventory: one code per inventory reward, each code drawn for exactly one reward, none wasted
    drawn = dict(
        InventoryCode.objects.filter(product=stock).exclude(status=InventoryCodeStatus.AVAILABLE)
        .values_list("reference", "code_encrypted")
    )  # fmt: skip
    assert set(drawn) == set(rewards_by_kind["inventory"])
    assert all(crypto.decrypt(drawn[reward_id]) == codes[reward_id] for reward_id in drawn)

    # email: one message per email reward, with its code (or its claim link), and none to anyone else. A kill
    # in the one round trip between the mail server's acceptance and COMMIT sends it again: allowed (at most
    # one per kill), counted, and always the same message under the same Message-ID, so the mailbox shows one.
    mail: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for text, message in zip(smtp_server.texts(), smtp_server.messages, strict=True):
        for address in message["to"]:
            if address.endswith(f".{tag}@{DOMAIN}"):
                message_id = email.message_from_string(message["data"])["Message-ID"]
                mail[address].append((message_id, text))
    emailed = {
        flow.rewards[r]["email"]: r for kind in ("email", "inventory", "link-email") for r in rewards_by_kind[kind]
    }
    assert set(mail) == set(emailed), set(mail) ^ set(emailed)
    for address, reward_id in emailed.items():
        message_ids = {message_id for message_id, _ in mail[address]}
        assert len(message_ids) == 1 and str(reward_id) in message_ids.pop(), mail[address]
        for _, text in mail[address]:
            if flow.rewards[reward_id]["kind"] == "link-email":
                assert claim_links[reward_id] and claim_links[reward_id] in text, address
                assert codes[reward_id] not in text
            else:
                assert codes[reward_id] in text, address
    email_duplicates = sum(len(copies) - 1 for copies in mail.values())

    # SMS: one message per SMS reward, with its code (the same window may send one twice; counted)
    texted = defaultdict(list)
    for message in third_party.sms():
        texted[message["to"]].append(message["body"])
    sms_rewards = {flow.rewards[r]["phone"]: r for r in rewards_by_kind["sms"]}
    assert set(texted) == set(sms_rewards)
    assert all(codes[reward_id] in body for phone, reward_id in sms_rewards.items() for body in texted[phone])
    sms_duplicates = sum(len(bodies) - 1 for bodies in texted.values())
    assert email_duplicates + sms_duplicates <= len(kills), (email_duplicates, sms_duplicates, kills)

    # webhooks: every event arrived, verified as a receiver verifies it, always under one webhook-id
    hooks = third_party.hooks()
    complete = [r for r in hooks if r.complete]
    torn = len(hooks) - len(complete)
    webhook_ids: dict[str, set[str]] = defaultdict(set)
    arrivals: Counter[str] = Counter()
    for request in complete:
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload == json.loads(request.body)
        arrivals[payload["id"]] += 1
        webhook_ids[payload["id"]].add(request.headers["webhook-id"])
    expected = {str(event["id"]) for event in events}
    assert set(arrivals) == expected, f"{len(expected - set(arrivals))} events never arrived"
    assert all(len(ids) == 1 for ids in webhook_ids.values()), [e for e, ids in webhook_ids.items() if len(ids) > 1]
    # …and a copy arrived twice only where a kill caught its delivery claimed, once more per such kill.
    webhook_duplicates = assert_resends_bounded(
        Counter({next(iter(ids)): arrivals[event_id] for event_id, ids in webhook_ids.items()}), held
    )

    elapsed = time.monotonic() - started
    print(
        f"\nworker kills: {len(kills)} SIGKILLs ({RANDOM_KILLS} at random, "
        f"{sum(FAULT_KILLS.values())} between fulfil steps), {len(flow.orders)} orders ({flow.replays} retried "
        f"requests replayed), {len(rewards)} rewards ({len(mail)} emails, {len(texted)} SMS, "
        f"{len(drawn)} inventory codes), duplicates: {email_duplicates} emails, {sms_duplicates} SMS; "
        f"{len(expected)} events, "
        f"{sum(arrivals.values())} webhook requests ({webhook_duplicates} duplicates, {torn} torn); "
        f"placed in {placed_at:.0f}s, drained at {drained_at:.0f}s, {elapsed:.0f}s in all "
        f"(worker boots {sum(boots):.0f}s; load {os.getloadavg()[0]:.1f}; seed {seed})"
        f"\nkills: {kills}; sweeps {len(sweeps)} re-queued {sum(sweeps)}; {leftover} stale tasks purged"
    )


def test_kill_after_the_send_before_commit_sends_the_same_email_again_and_records_it_once(
    committed_tenant, killable_workers, smtp_server
):
    """The one window left: the mail server accepted the email, the worker dies before COMMIT. On recovery the
    email goes out again — the same message under the same Message-ID (a mailbox shows one) — and the reward is
    delivered once: one timeline entry, one reward.delivered event, one capture."""
    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.models import RewardEvent
    from orders.planning import RewardInput

    pool = killable_workers
    tag = uuid.uuid4().hex[:8]
    address = f"window.{tag}@{DOMAIN}"
    shop = make_shop()
    fault_arm("deliver.sent", times=1)
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="10.00")
        _, body, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10.00"), currency="USD",
                                 delivery_method="email", recipient={"name": "Window", "email": address})],
            idempotency_key=None,
            body_hash=request_hash({"tag": tag}),
            render=lambda order: {"id": str(order.id), "rewards": [{"id": str(r.id)} for r in order.rewards.all()]},
        )  # fmt: skip
    connection.set_schema_to_public()
    reward_id = body["rewards"][0]["id"]
    assert wait_until(lambda: any_dead(pool), timeout=60), "the worker never reached deliver.sent"
    pool.kill()
    assert fault_kills("deliver.sent", armed=1) == 1
    restart(pool)

    def delivered() -> bool:
        fulfilment_sweep.apply()  # beat's job: the reward's lease runs out, it is queued again
        with tenant_context(committed_tenant):
            return Reward.objects.filter(pk=reward_id, status="delivered").exists()

    assert wait_until(delivered, timeout=60, interval=1.0)
    copies = [
        (email.message_from_string(m["data"])["Message-ID"], text)
        for text, m in zip(smtp_server.texts(), smtp_server.messages, strict=True)
        if m["to"] == [address]
    ]
    with tenant_context(committed_tenant):
        reward = Reward.objects.select_related("hold").get(pk=reward_id)
        code = crypto.decrypt(reward.code_encrypted)
        assert RewardEvent.objects.filter(reward=reward, to_status="delivered").count() == 1
        assert Event.objects.filter(type="reward.delivered", data__id=reward_id).count() == 1
        assert LedgerTransaction.objects.filter(kind="capture", reference__contains=reward_id).count() == 1
        assert reward.hold.status == "captured" and balance_get(currency="USD").posted == 0
        assert Order.objects.get(pk=body["id"]).status == "completed"
        assert ledger_invariant_violations() == []
    assert len(copies) == 2, copies  # sent, killed before COMMIT, sent again
    assert copies[0][0] == copies[1][0] and str(reward_id) in copies[0][0]
    assert code in copies[0][1] and copies[0][1] == copies[1][1]
    print(f"\nkill after the send, before COMMIT: {len(copies)} copies, one Message-ID {copies[0][0]}")


def test_kill_mid_batch_delivery_records_every_reward_and_sends_each_email_once(
    committed_tenant, killable_workers, smtp_server
):
    """The fulfilment drain sends a batch's emails in one transaction. Killed after the 8th of 20 (each accepted
    email noted at once, nothing of the batch committed): after the lease runs out every reward is delivered and
    recorded once, the 8 sent ones are not sent again, the 12 others go out once, one capture each."""
    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.models import RewardEvent
    from orders.planning import RewardInput

    pool = killable_workers
    tag = uuid.uuid4().hex[:8]
    addresses = [f"batch{i}.{tag}@{DOMAIN}" for i in range(20)]
    shop = make_shop()
    fault_arm("deliver.noted", times=1, after=7)
    with tenant_context(committed_tenant):
        funds_deposit(currency="USD", amount="200.00")
        _, body, _ = order_create(
            order_type="digital",
            rewards=[RewardInput(product_id=str(shop.coffee_usd.id), amount=Decimal("10.00"), currency="USD",
                                 delivery_method="email", recipient={"name": "Batch", "email": address})
                     for address in addresses],
            idempotency_key=None,
            body_hash=request_hash({"tag": tag}),
            render=lambda order: {"id": str(order.id), "rewards": [{"id": str(r.id)} for r in order.rewards.all()]},
        )  # fmt: skip
    connection.set_schema_to_public()
    reward_ids = [reward["id"] for reward in body["rewards"]]
    assert wait_until(lambda: any_dead(pool), timeout=60), "the worker never reached deliver.noted"
    pool.kill()
    assert fault_kills("deliver.noted", armed=1) == 1
    sent_before = {a for m in smtp_server.messages for a in m["to"] if a in addresses}
    assert len(sent_before) == 8  # the batch's first 8 emails went out; nothing of the batch was recorded
    restart(pool)

    def delivered() -> bool:
        fulfilment_sweep.apply()  # beat's job: the batch's leases run out, each reward is queued again
        with tenant_context(committed_tenant):
            return Reward.objects.filter(pk__in=reward_ids, status="delivered").count() == len(reward_ids)

    assert wait_until(delivered, timeout=90, interval=1.0)
    copies: dict[str, list[str]] = defaultdict(list)
    for text, message in zip(smtp_server.texts(), smtp_server.messages, strict=True):
        for address in message["to"]:
            if address in addresses:
                copies[address].append(text)
    with tenant_context(committed_tenant):
        rewards = {str(r.id): r for r in Reward.objects.select_related("hold").filter(pk__in=reward_ids)}
        for reward_id, address in zip(reward_ids, addresses, strict=True):
            assert len(copies[address]) == 1, (address, len(copies[address]))  # never sent twice, never lost
            assert crypto.decrypt(rewards[reward_id].code_encrypted) in copies[address][0]
            assert rewards[reward_id].code_disclosed_at is not None
        assert RewardEvent.objects.filter(reward_id__in=reward_ids, to_status="delivered").count() == 20
        assert Event.objects.filter(type="reward.delivered", data__id__in=reward_ids).count() == 20
        captures = Counter(LedgerTransaction.objects.filter(kind="capture", reference__in=[
            r.hold.reference for r in rewards.values()]).values_list("reference", flat=True))  # fmt: skip
        assert len(captures) == 20 and set(captures.values()) == {1}
        assert Order.objects.get(pk=body["id"]).status == "completed"
        assert ledger_invariant_violations() == []
    print(f"\nkill mid-batch: {len(sent_before)} of 20 emails out before the kill; after recovery 20 recipients, "
          f"1 copy each")  # fmt: skip
