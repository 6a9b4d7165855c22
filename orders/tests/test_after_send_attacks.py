"""The attacker review of search, reports and approvals (REVIEWS.md §2) with a valid account: another tenant's ids,
read-only keys on decisions, odd and hostile query strings, huge limits and periods. Each is refused cleanly
(a 4xx problem, never a 500), finds nothing of another tenant, and leaves the ledger balanced."""

import pytest
from django_tenants.utils import tenant_context

from funds.selectors import ledger_invariant_violations
from tenants.policies import approval_policy_set
from testsupport.orders import digital_order
from testsupport.portal import make_staff, portal_client, sign_in
from testsupport.problems import assert_problem

ODD_QUERIES = [
    "%",
    "_",
    "%%%%",
    "\\",
    "a\\%b",
    "'; DROP TABLE orders_reward; --",
    "<script>alert(1)</script>",
    "<b>x</b>",
    "x" * 5000,
    "ąčę ñ 漢字 🎁",
    "RW-",
    "rw-0000-00",
    "00000000-0000-0000-0000-000000000000",
    "   ",
    "a b c d e f g h i j k",
    "row-1-1 OR 1=1",
    "\u202e\u200b",
    "١٢٣",
]


@pytest.fixture
def rewards_a(api_a, funded_a, shop):
    body = digital_order(shop.coffee_usd, "10.00")
    body["rewards"][0]["recipient"] = {"name": "Grace Hopper", "email": "grace@navy.example"}
    body["rewards"][0]["external_id"] = "hr-1"
    response = api_a.post("/api/v1/orders", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_odd_search_text_is_answered_never_a_500(api_a, funded_a, rewards_a):
    viewer = make_staff(funded_a, "viewer@alpha.test", "viewer")
    client = portal_client(funded_a)
    assert sign_in(client, viewer.email).status_code == 302
    for q in ODD_QUERIES:
        response = api_a.get("/api/v1/rewards", {"q": q})
        assert response.status_code in (200, 400, 422), (q, response.status_code)
        if response.status_code == 200 and q != "RW-":  # every reference starts so: that one finds Grace's
            assert response.json()["results"] == [], q  # nothing of Grace matches these
        assert api_a.get("/api/v1/orders", {"q": q}).status_code in (200, 400, 422), q
        page = client.get("/search/", {"q": q})
        assert page.status_code == 200, q
        assert "<script>alert(1)</script>" not in page.content.decode()
        assert client.get("/orders/", {"recipient": q}).status_code in (200, 422), q
    # A NUL byte (PostgreSQL refuses it in text) is a problem, not a 500.
    for path in ("/api/v1/rewards", "/api/v1/orders"):
        assert api_a.get(path, {"q": "gra\x00ce"}).status_code in (400, 422)
    assert client.get("/search/", {"q": "gra\x00ce"}).status_code in (200, 400, 422)
    # Wildcards are literal: "%" and "_" never match every reward.
    assert api_a.get("/api/v1/rewards", {"q": "gr_ce"}).json()["results"] == []
    assert [r["id"] for r in api_a.get("/api/v1/rewards", {"q": "grace hop"}).json()["results"]] == [
        rewards_a["rewards"][0]["id"]
    ]


def test_search_never_finds_another_tenants_rewards(api_a, api_b, rewards_a, tenant_b):
    reward = rewards_a["rewards"][0]
    for q in ("grace", reward["reference"], reward["id"], rewards_a["id"], "hr-1", "grace@navy.example"):
        assert api_b.get("/api/v1/rewards", {"q": q}).json()["results"] == [], q
        assert api_b.get("/api/v1/orders", {"q": q}).json()["results"] == [], q
    assert api_b.get("/api/v1/rewards", {"reference": reward["reference"]}).json()["results"] == []
    assert_problem(api_b.get(f"/api/v1/rewards/{reward['id']}"), 404, "not_found")


@pytest.mark.parametrize("limit", ["1000000000", "1e400", "-1", "0", "NaN", "²", "50.5", "9" * 400])
def test_huge_or_odd_limits_are_capped_or_refused(api_a, rewards_a, limit):
    response = api_a.get("/api/v1/rewards", {"q": "grace", "limit": limit})
    if response.status_code == 200:
        assert len(response.json()["results"]) <= 200
    else:
        assert_problem(response, 400, "validation_error")


@pytest.mark.parametrize(
    "params",
    [
        {"from": "0001-01-01", "to": "9999-12-31"},
        {"from": "2026-13-01"},
        {"from": "2026-02-30"},
        {"from": "tomorrow"},
        {"to": "1e400"},
        {"group_by": "program; DROP TABLE x"},
        {"group_by": "id"},
        {"format": "../../etc/passwd"},
        {"format": "XLSX", "from": "2026-01-01", "to": "2025-01-01"},
    ],
)
def test_odd_report_parameters_are_problems(api_a, funded_a, params):
    for path in ("/api/v1/reports/spend", "/api/v1/reports/rewards"):
        response = api_a.get(path, params)
        if path.endswith("rewards") and set(params) == {"group_by"}:
            assert response.status_code == 200  # rewards has no grouping: the parameter is ignored
            continue
        assert_problem(response, 400, "validation_error")


def test_decisions_need_the_approve_scope_and_the_right_tenant(api_a, funded_a, make_api_client, tenant_b, shop):
    approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "10.00"}}, actor=None)
    order = api_a.post("/api/v1/orders", digital_order(shop.coffee_usd, "10.00")).json()
    assert order["status"] == "pending_approval"
    read_only = make_api_client(funded_a, scopes=["read"])
    sandbox_approver = make_api_client(funded_a.sandbox, scopes=["approve"])
    other_approver = make_api_client(tenant_b, scopes=["approve"])
    for action in ("approve", "reject"):
        url = f"/api/v1/orders/{order['id']}/{action}"
        assert_problem(read_only.post(url), 403, "forbidden")
        assert_problem(sandbox_approver.post(url), 404, "not_found")
        assert_problem(other_approver.post(url), 404, "not_found")
        assert_problem(other_approver.post(f"/api/v1/orders/{'0' * 8}-0000-0000-0000-{'0' * 12}/{action}"), 404,
                       "not_found")  # fmt: skip
        assert_problem(other_approver.post(f"/api/v1/batches/{order['id']}/{action}"), 404, "not_found")
    approver = make_api_client(funded_a, scopes=["approve"])
    odd = approver.post(f"/api/v1/orders/{order['id']}/reject", {"reason": "x" * 5000})
    assert odd.status_code in (200, 422)
    with tenant_context(funded_a):
        assert ledger_invariant_violations() == []
