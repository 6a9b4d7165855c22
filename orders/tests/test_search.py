"""Finding one reward among many: by part of a name or email, its reference, a bulk row's external id, a metadata
value or an id; only in the caller's own schema; the references are short and distinct."""

import re

from django_tenants.utils import tenant_context

from funds.services import funds_deposit
from orders.models import Reward
from testsupport.orders import digital_order
from testsupport.problems import assert_problem

REFERENCE = re.compile(r"RW-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{2}")


def _order(api, product, name, email, **reward_fields):
    body = digital_order(product, "10.00")
    body["rewards"][0]["recipient"] = {"name": name, "email": email}
    body["rewards"][0].update(reward_fields)
    response = api.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_search_finds_a_reward_by_what_people_remember(api_a, funded_a, shop, django_assert_max_num_queries):
    target = _order(
        api_a, shop.coffee_usd, "Katherine Johnson", "kj@nasa.example", external_id="hr-77",
        metadata={"department": "Flight Research"},
    )["rewards"][0]  # fmt: skip
    for index in range(5):
        _order(api_a, shop.coffee_usd, f"Someone Else {index}", f"other{index}@example.com")
    assert REFERENCE.fullmatch(target["reference"]) and target["metadata"] == {"department": "Flight Research"}
    for q in ["therine", "KJ@NASA", "Johnson katherine", target["reference"], "hr-77", "flight res", target["id"]]:
        with django_assert_max_num_queries(6):  # the exact-match probe, then the trigram read
            results = api_a.get("/api/v1/rewards", {"q": q}).json()["results"]
        assert [r["id"] for r in results] == [target["id"]], q
    assert (
        api_a.get("/api/v1/rewards", {"reference": target["reference"].lower()}).json()["results"][0]["id"]
        == (target["id"])
    )
    orders = api_a.get("/api/v1/orders", {"q": "katherine"}).json()["results"]
    assert [o["id"] for o in orders] == [target["order_id"]]
    assert len(api_a.get("/api/v1/rewards", {"q": "someone else"}).json()["results"]) == 5


def test_a_reference_is_found_whole_with_or_without_its_prefix_never_by_a_part(api_a, funded_a, shop):
    """The trigram index leaves references out (orders 0026): a whole reference matches, alone or beside other
    words, in any case and without `RW-`; a part of its random code matches nothing."""
    target = _order(api_a, shop.coffee_usd, "Mary Jackson", "mj@nasa.example")["rewards"][0]
    other = _order(api_a, shop.coffee_usd, "Christine Darden", "cd@nasa.example")["rewards"][0]
    reference = target["reference"]
    for q in [reference.lower(), reference[3:], f"jackson {reference}", f"{reference[3:].lower()} nasa"]:
        assert [r["id"] for r in api_a.get("/api/v1/rewards", {"q": q}).json()["results"]] == [target["id"]], q
    assert api_a.get("/api/v1/rewards", {"q": f"darden {reference}"}).json()["results"] == []
    assert api_a.get("/api/v1/rewards", {"q": reference[3:7]}).json()["results"] == []
    orders = api_a.get("/api/v1/orders", {"q": f"{reference} nasa"}).json()["results"]
    assert [o["id"] for o in orders] == [target["order_id"]] and other["order_id"] != target["order_id"]


def test_references_are_distinct_and_short(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "10.00")
    body["rewards"][0]["quantity"] = 40
    response = api_a.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    order = response.json()
    references = {reward["reference"] for reward in order["rewards"]}
    assert len(references) == 40 and all(REFERENCE.fullmatch(ref) for ref in references)
    # The ids share their time prefix; the references do not share a common first half.
    assert len({ref[:7] for ref in references}) > 30
    with tenant_context(funded_a):
        assert set(Reward.objects.values_list("reference", flat=True)) == references


def test_search_stays_in_the_callers_schema(api_a, api_b, funded_a, tenant_b, shop):
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="100")
    mine = _order(api_a, shop.coffee_usd, "Dorothy Vaughan", "dv@example.com")["rewards"][0]
    assert api_b.get("/api/v1/rewards", {"q": "vaughan"}).json()["results"] == []
    assert api_b.get("/api/v1/rewards", {"q": mine["reference"]}).json()["results"] == []
    assert api_b.get("/api/v1/orders", {"q": mine["order_id"]}).json()["results"] == []
    assert [r["id"] for r in api_a.get("/api/v1/rewards", {"q": "vaughan"}).json()["results"]] == [mine["id"]]


def test_short_query_and_bad_metadata_are_refused(api_a, funded_a, shop):
    short = api_a.get("/api/v1/rewards", {"q": "ab"})  # too short to be part of anything: whole values only
    assert short.status_code == 200 and short.json()["results"] == []
    for metadata in [{"k": 1}, {"bad key": "x"}, {f"k{i}": "x" for i in range(21)}, {"k": "x" * 501}, ["x"]]:
        body = digital_order(shop.coffee_usd)
        body["metadata"] = metadata
        assert_problem(api_a.post("/api/v1/orders", body), 422, "validation_error")
    body = digital_order(shop.coffee_usd)
    body["rewards"][0]["metadata"] = {"note": "line\nbreak"}
    response = api_a.post("/api/v1/orders", body)
    assert_problem(response, 422, "validation_error")
    assert "rewards[0].metadata" in response.json()["errors"]
    with tenant_context(funded_a):
        assert Reward.objects.count() == 0


def test_a_word_every_reward_shares_does_not_change_what_is_found(api_a, funded_a, shop, monkeypatch):
    """A word in most rewards ("example", a company's domain) is checked on the rows the rarer words find, not read
    from the index (orders.search.common_fragments): the results are exactly those of every word matched."""
    import orders.search as search

    body = digital_order(shop.coffee_usd, "10.00")
    body["rewards"] = [
        {**body["rewards"][0], "recipient": {"name": f"Staff Member {n:02d}", "email": f"m{n:02d}@corp.example"}}
        for n in range(30)
    ]
    assert api_a.post("/api/v1/orders", body).status_code == 201
    target = _order(api_a, shop.coffee_usd, "Mae Jemison", "mae@corp.example")["rewards"][0]
    monkeypatch.setattr(search, "SAMPLE_ROWS", 20)  # the table is "large": the sampling decides the plan
    with tenant_context(funded_a):
        assert search.fragments("m07@corp.example") == ["m07", "corp", "example"]
        assert search.common_fragments(["corp", "example", "jemison", "member"]) == {"corp", "example", "member"}
    expectations = {
        "jemison corp.example": [target["id"]],  # a rare word and a common one
        "mae corp.example": [target["id"]],
        "corp.example": None,  # every reward: the newest page, walked in order
        "member 07": None,  # two common words that together are rare: the index's intersection
        "staff corp.example": None,
        "m07@corp.exam": None,  # a rare fragment (m07) read from the index, the whole word checked on its rows
        "member 07 corp": None,
    }
    for q, expected in expectations.items():
        found = []
        url, params = "/api/v1/rewards", {"q": q, "limit": 7}
        while url:
            page = api_a.get(url, params).json()
            found += [reward["id"] for reward in page["results"]]
            url, params = page["next"], None
        with tenant_context(funded_a):
            words = q.split()
            everything = Reward.objects.order_by("-created_at", "-id")
            matching = [str(r.pk) for r in everything if all(w in f"{r.recipient_name} {r.recipient_email}".lower()
                                                             for w in words)]  # fmt: skip
        assert found == (expected or matching) and found, q


def test_reward_references_are_the_ones_the_first_reference_function_gave(tenant_a):
    """Migration 0016 made orders_reward_reference() cheaper; a reward numbered n still gets the reference the
    function of migration 0009 gave it, past 2^30 (a longer reference) too."""
    import importlib

    from django.db import connection

    previous = importlib.import_module("orders.migrations.0016_reward_reference_faster").PREVIOUS_FUNCTION[0]
    numbers = [1, 2, 31, 32, 1023, 1024, 123_456, 2**30 - 1, 2**30, 2**30 + 1, 2**35 + 77, 2**45 - 3]
    with tenant_context(tenant_a), connection.cursor() as cursor:
        cursor.execute(previous.replace("orders_reward_reference()", "orders_reward_reference_0009()"))
        # setval is not undone by the test's rollback (sequences are not transactional): put the sequence back, or
        # every later test in this schema draws references past 2^30 (longer ones).
        cursor.execute("SELECT last_value, is_called FROM orders_reward_reference_seq")
        last_value, is_called = cursor.fetchone()
        seen = []
        try:
            for n in numbers:
                pair = []
                for function in ("orders_reward_reference", "orders_reward_reference_0009"):
                    cursor.execute("SELECT setval('orders_reward_reference_seq', %s, false)", [n])
                    cursor.execute(f"SELECT {function}()")
                    pair.append(cursor.fetchone()[0])
                seen.append(pair)
        finally:
            cursor.execute("SELECT setval('orders_reward_reference_seq', %s, %s)", [last_value, is_called])
    assert all(new == old for new, old in seen), seen
    assert all(REFERENCE.fullmatch(new) for new, _ in seen[:7]) and len({new for new, _ in seen}) == len(numbers)
