"""The cross-tenant matrix, generated from the URL configuration.

Every `/api/v1/` route is found by walking the resolver, and each must derive from the tenant base view
(api.views.TenantAPIMixin: credential, tenant and scope checks), the token exchange and schema excepted.
Each route with a path parameter needs an entry in ID_ROUTES (how to point it at an object of the owner
tenant, and a valid body per non-safe method, so a 404 cannot hide behind a 422); each route without one
needs an entry in LIST_ROUTES. A route added without an entry fails
`test_every_api_route_has_a_registry_entry` with the exact entry to add.

For every (owner, intruder) pair — another tenant, the owner's sandbox twin, and the other way round —
the intruder calls every id-route with every method it allows: 404 problem+json, and not one row of the
owner's schema changed (a fingerprint of every table). A partner-only route (the shipment tracking callback)
refuses the intruder's tenant key outright (403) and is tried with the intruder's fulfilment-partner key.
Every list the intruder reads is exactly what it was before the owner created anything. The owner, with the
same paths, does get its objects (so the 404s are isolation, not typos). Finally a read-only key of the owner
is refused (403 `forbidden`) on every non-safe method of every route, and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from testsupport.problems import assert_problem
from testsupport.urls import api_v1_routes

from .world import World, build_world, schema_fingerprint

PUBLIC_API_ROUTES = {"token-create", "api-schema"}  # no tenant credential by design (tenants/middleware.py)
SAFE = {"GET"}
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@dataclass(frozen=True)
class IdRoute:
    """How to aim a route with path parameters at the owner's object."""

    kwargs: Callable[[World], dict[str, str]]
    bodies: dict[str, dict] = field(default_factory=dict)  # per non-safe method: a body valid for the owner
    global_object: str = ""  # non-empty: the object is global (public schema); why another tenant may see it
    partner_only: bool = False  # tenant keys are refused (403) whatever the id: the intruder's partner key tries it


def _since() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).isoformat()


ID_ROUTES: dict[str, IdRoute] = {
    "transaction-detail": IdRoute(lambda w: {"transaction_id": w.transaction_id}),
    "product-detail": IdRoute(
        lambda w: {"product_id": w.product_id},
        global_object="the catalogue is global (public schema); curation only narrows it",
    ),
    "program-detail": IdRoute(lambda w: {"slug": w.program_slug}, {"PATCH": {"name": "Renamed by an intruder"}}),
    "order-detail": IdRoute(lambda w: {"order_id": w.order_id}),
    "order-cancel": IdRoute(lambda w: {"order_id": w.order_id}, {"POST": {}}),
    "order-approve": IdRoute(lambda w: {"order_id": w.order_id}, {"POST": {}}),
    "order-reject": IdRoute(lambda w: {"order_id": w.order_id}, {"POST": {"reason": "intruder"}}),
    "reward-detail": IdRoute(lambda w: {"reward_id": w.reward_id}),
    "reward-cancel": IdRoute(lambda w: {"reward_id": w.reward_id}, {"POST": {}}),
    "reward-reveal": IdRoute(lambda w: {"reward_id": w.reward_id}, {"POST": {}}),
    "reward-resend": IdRoute(lambda w: {"reward_id": w.reward_id}, {"POST": {"email": "new@example.com"}}),
    "shipment-detail": IdRoute(lambda w: {"shipment_id": w.shipment_id}),
    "shipment-tracking": IdRoute(
        lambda w: {"shipment_id": w.shipment_id},
        {"POST": {"status": "shipped", "tracking_number": "PW1"}},
        partner_only=True,
    ),
    "webhook-endpoint-detail": IdRoute(
        lambda w: {"endpoint_id": w.endpoint_id},
        {"PATCH": {"enabled": False, "description": "hijacked"}, "DELETE": {}},
    ),
    "webhook-endpoint-rotate-secret": IdRoute(
        lambda w: {"endpoint_id": w.endpoint_id}, {"POST": {"previous_secret_expires_in": 0}}
    ),
    "webhook-endpoint-test": IdRoute(lambda w: {"endpoint_id": w.endpoint_id}, {"POST": {}}),
    "webhook-endpoint-deliveries": IdRoute(lambda w: {"endpoint_id": w.endpoint_id}),
    "webhook-endpoint-redeliver-failed": IdRoute(
        lambda w: {"endpoint_id": w.endpoint_id}, {"POST": {"since": _since()}}
    ),
    "event-detail": IdRoute(lambda w: {"event_id": w.event_id}),
    "event-deliveries": IdRoute(lambda w: {"event_id": w.event_id}),
    "event-redeliver": IdRoute(lambda w: {"event_id": w.event_id}, {"POST": {}}),
    "batch-detail": IdRoute(lambda w: {"batch_id": w.batch_id}),
    "batch-confirm": IdRoute(lambda w: {"batch_id": w.batch_id}, {"POST": {"force": False}}),
    "batch-cancel": IdRoute(lambda w: {"batch_id": w.batch_id}, {"POST": {}}),
    "batch-approve": IdRoute(lambda w: {"batch_id": w.batch_id}, {"POST": {}}),
    "batch-reject": IdRoute(lambda w: {"batch_id": w.batch_id}, {"POST": {"reason": "intruder"}}),
    "batch-errors-csv": IdRoute(lambda w: {"batch_id": w.batch_id}),
    "batch-results-csv": IdRoute(lambda w: {"batch_id": w.batch_id}),
    "automation-detail": IdRoute(
        lambda w: {"automation_id": w.automation_id}, {"PATCH": {"name": "Mallory"}, "DELETE": {}}
    ),
    "automation-preview": IdRoute(lambda w: {"automation_id": w.automation_id}),
    "automation-runs": IdRoute(lambda w: {"automation_id": w.automation_id}),
    "batch-errors-xlsx": IdRoute(lambda w: {"batch_id": w.batch_id}),
    "batch-results-xlsx": IdRoute(lambda w: {"batch_id": w.batch_id}),
    "person-export": IdRoute(lambda w: {"person_id": w.person_id}),
    "person-detail": IdRoute(lambda w: {"person_id": w.person_id}, {"PATCH": {"name": "Mallory"}, "DELETE": {}}),
    "person-points": IdRoute(lambda w: {"person_id": w.person_id}),
    "person-points-history": IdRoute(lambda w: {"person_id": w.person_id}),
    "person-points-redeem": IdRoute(
        lambda w: {"person_id": w.person_id},
        {
            "POST": {
                "program": "security-matrix",
                "product_id": "00000000-0000-0000-0000-000000000000",
                "amount": "10.00",
                "currency": "USD",
            }
        },
    ),
    "points-award-reverse": IdRoute(lambda w: {"award_id": w.award_id}, {"POST": {}}),
    "earning-rule-detail": IdRoute(lambda w: {"rule_id": w.rule_id}, {"PATCH": {"enabled": False}, "DELETE": {}}),
}


@dataclass(frozen=True)
class ListRoute:
    """A route without path parameters: query strings to read it with, the owner's ids it must list,
    and a valid body per non-safe method (for the scope test)."""

    queries: Callable[[World], list[dict[str, str]]] = lambda w: [{}]
    owner_sees: tuple[str, ...] = ()  # World.ids() kinds the owner's read must contain
    bodies: dict[str, dict] = field(default_factory=dict)


ORDER_BODY = {
    "type": "digital",
    "rewards": [
        {
            "product_id": "00000000-0000-0000-0000-000000000000",
            "amount": "10.00",
            "recipient": {"name": "Mallory", "email": "m@example.com"},
        }
    ],
}
LIST_ROUTES: dict[str, ListRoute] = {
    "balance-list": ListRoute(),
    "transaction-list": ListRoute(owner_sees=("transaction",)),
    "product-list": ListRoute(),
    "shipping-method-list": ListRoute(),
    "fx-rate-list": ListRoute(),
    "logo-upload": ListRoute(lambda w: [], bodies={"POST": {}}),  # POST only: stores an image, lists nothing
    "program-list": ListRoute(owner_sees=("program",), bodies={"POST": {"slug": "mallory", "name": "Mallory"}}),
    "earning-rule-list": ListRoute(
        owner_sees=("earning_rule",),
        bodies={"POST": {"program": "security-matrix", "activity_type": "x", "points_fixed": 1}},
    ),
    "points-award-create": ListRoute(  # POST only: nothing to read
        lambda w: [], bodies={"POST": {"person_external_id": "emp-1", "program": "security-matrix", "points": 1}}
    ),
    "report-points": ListRoute(owner_sees=("program",)),
    "report-breakage": ListRoute(),  # totals per currency: no ids to leak
    "report-discounts": ListRoute(lambda w: [{}, {"group_by": "product"}, {"format": "csv"}]),  # counts only
    "points-award-import": ListRoute(bodies={"POST": {"dry_run": "true", "program": "security-matrix"}}),
    # aggregates of the caller's own schema: another tenant's spend and rewards never count in them
    "report-spend": ListRoute(lambda w: [{}, {"group_by": "product"}, {"group_by": "department", "format": "csv"}]),
    "report-rewards": ListRoute(lambda w: [{}, {"format": "csv"}]),
    "order-list": ListRoute(
        lambda w: [{}, {"program": w.program_slug}, {"status": "pending"}],
        owner_sees=("order", "physical_order"),
        bodies={"POST": ORDER_BODY},
    ),
    "reward-list": ListRoute(
        lambda w: [{}, {"order_id": w.order_id}, {"recipient_email": "ada@example.com"}, {"q": "ada@example"}],
        owner_sees=("reward", "physical_reward"),
    ),
    "shipment-list": ListRoute(owner_sees=("shipment",)),
    # POST only, a merchant partner key's (a tenant key is refused: the read-key test); a code or reward of
    # another tenant is 404 (fulfillment/tests/test_discount_redemptions.py)
    "discount-redemptions": ListRoute(lambda w: [], bodies={"POST": {"code": "DSC-UNKNOWN"}}),
    "shipment-manifest": ListRoute(
        lambda w: [{"day": datetime.now(UTC).date().isoformat(), "carrier": w.carrier}], owner_sees=("shipment",)
    ),
    "webhook-endpoint-list": ListRoute(
        owner_sees=("endpoint",), bodies={"POST": {"url": "http://127.0.0.1:9/evil", "events": ["*"]}}
    ),
    "event-list": ListRoute(owner_sees=("event",)),
    "batch-list": ListRoute(owner_sees=("batch",), bodies={"POST": {"dry_run": "true"}}),
    "batch-template": ListRoute(),  # the CSV template: the same for everyone
    # the credential's own tenant's settings: nothing of another tenant to name (tenants/tests/test_tenant_settings.py)
    "tenant-settings": ListRoute(bodies={"PATCH": {"timezone": "Asia/Kuala_Lumpur"}}),
    "person-list": ListRoute(
        lambda w: [{}, {"external_id": "emp-1"}, {"email": "ada@example.com"}, {"q": "Ada"}],
        owner_sees=("person",),
        bodies={"POST": {"external_id": "mallory-1", "name": "Mallory"}},
    ),
    "automation-list": ListRoute(
        owner_sees=("automation",),
        bodies={
            "POST": {
                "name": "Mallory",
                "trigger": {"type": "birthday"},
                "reward": {"product_id": "00000000-0000-0000-0000-000000000000", "amount": "1"},
            }
        },
    ),
    "privacy-settings": ListRoute(bodies={"PATCH": {"recipient_retention_days": 30}}),
    "people-import": ListRoute(bodies={"POST": {"dry_run": "true"}}),
    "people-import-template": ListRoute(),
    "activity-list": ListRoute(
        owner_sees=("activity",),
        bodies={
            "POST": {
                "external_id": "act-1",
                "person_external_id": "emp-1",
                "type": "deal.closed",
                "occurred_at": "2026-12-06T08:00:00Z",
            }
        },
    ),
}


# --- walking the URL configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRoute:
    route: str
    name: str
    params: tuple[str, ...]
    methods: tuple[str, ...]  # the HTTP methods the view implements (OPTIONS/HEAD left out)
    view_class: type


def api_routes() -> list[ApiRoute]:
    routes = []
    for url in api_v1_routes():
        if url.pattern.name in PUBLIC_API_ROUTES:
            continue
        assert url.view_class is not None, f"{url.route}: not a class-based view"
        methods = tuple(
            m.upper()
            for m in url.view_class.http_method_names
            if m not in ("options", "head") and hasattr(url.view_class, m)
        )
        routes.append(
            ApiRoute(url.route, url.pattern.name or "", tuple(url.pattern.pattern.converters), methods, url.view_class)
        )
    return routes


def _missing_entry_message(route: ApiRoute) -> str:
    if route.params:
        kwargs = ", ".join(f'"{p}": w.<id of the object>' for p in route.params)
        unsafe = [m for m in route.methods if m not in SAFE]
        bodies = ", {" + ", ".join(f'"{m}": {{<a body valid for the owner>}}' for m in unsafe) + "}" if unsafe else ""
        return (
            f"/{route.route} (name {route.name!r}, methods {', '.join(route.methods)}) has no cross-tenant entry. "
            f"Add to ID_ROUTES in security/tests/test_cross_tenant.py:\n"
            f'    "{route.name}": IdRoute(lambda w: {{{kwargs}}}{bodies}),\n'
            "and create the object in security/tests/world.py build_world() (a World field holding its id)."
        )
    return (
        f"/{route.route} (name {route.name!r}, methods {', '.join(route.methods)}) has no cross-tenant entry. "
        f"Add to LIST_ROUTES in security/tests/test_cross_tenant.py:\n"
        f'    "{route.name}": ListRoute(owner_sees=(<World.ids() kinds it lists>,)'
        + (", bodies={<method>: <valid body>}" if set(route.methods) - SAFE else "")
        + "),"
    )


def test_every_api_route_uses_the_tenant_base_view():
    """No endpoint may skip credential, tenant and scope checks (the token exchange and the schema excepted)."""
    from api.views import TenantAPIMixin

    skipping = [r.route for r in api_routes() if not issubclass(r.view_class, TenantAPIMixin)]
    assert not skipping, f"these API views do not derive from api.views.TenantAPIMixin: {skipping}"


def test_every_api_route_has_a_registry_entry():
    routes = api_routes()
    assert len(routes) >= 25, [r.route for r in routes]
    unnamed = [r.route for r in routes if not r.name]
    assert not unnamed, f"give these routes a name= (the matrix registry is keyed by it): {unnamed}"
    problems = [
        _missing_entry_message(r)
        for r in routes
        if (r.params and r.name not in ID_ROUTES) or (not r.params and r.name not in LIST_ROUTES)
    ]
    assert not problems, "\n\n".join(problems)
    known = {r.name for r in routes}
    stale = sorted((set(ID_ROUTES) | set(LIST_ROUTES)) - known)
    assert not stale, f"registry entries for routes that no longer exist (remove them): {stale}"
    for r in routes:
        if r.params:
            missing = [m for m in r.methods if m not in SAFE and m not in ID_ROUTES[r.name].bodies]
            assert not missing, f"ID_ROUTES[{r.name!r}] needs a body for {missing} (valid for the owner)"


# --- the matrix ------------------------------------------------------------------------------------------


def _call(client, method: str, path: str, body: dict | None = None, params: dict | None = None):
    if method == "GET":
        return client.get(path, params)
    if method == "DELETE":
        return client.delete(path)
    return getattr(client, method.lower())(path, body or {})


def _path(name: str, world: World) -> str:
    return reverse(name, kwargs=ID_ROUTES[name].kwargs(world))


def _list_reads(client, world: World) -> dict[str, bytes]:
    reads = {}
    for name, entry in LIST_ROUTES.items():
        for query in entry.queries(world):
            response = client.get(reverse(name), query)
            assert response.status_code == 200, (name, query, response.content)
            reads[f"{name}?{json.dumps(query, sort_keys=True)}"] = response.content
    return reads


@pytest.fixture(params=["other-tenant", "sandbox-reads-live", "live-reads-sandbox"])
def crossing(request, tenant_a, tenant_b, make_api_client, shop):
    """(owner, owner's client, intruder's client) for one kind of crossing."""
    owner, intruder = {
        "other-tenant": (tenant_a, tenant_b),
        "sandbox-reads-live": (tenant_a, tenant_a.sandbox),
        "live-reads-sandbox": (tenant_a.sandbox, tenant_a),
    }[request.param]
    # Every scope a tenant can give its keys: the strongest intruder (a missing scope would answer 403 first).
    scopes = ["read", "write", "approve"]
    owner_api, intruder_api = make_api_client(owner, scopes=scopes), make_api_client(intruder, scopes=scopes)
    if request.param != "other-tenant":  # a sandbox/live crossing: one rp_test_ key, one rp_live_ key
        prefixes = {owner_api.raw_key[:8], intruder_api.raw_key[:8]}
        assert prefixes == {"rp_test_", "rp_live_"}, prefixes
    return owner, owner_api, intruder_api


def test_another_tenants_objects_are_404_and_never_listed(crossing, shop, make_partner_client):
    owner, owner_api, intruder_api = crossing
    intruder_partner = make_partner_client(intruder_api.key.tenant)
    # What the intruder's lists say before the owner has anything (queries need a world: a dummy one).
    placeholder = World(tenant=owner, program_slug="security-matrix", carrier=shop.ground_us.carrier)
    lists_before = _list_reads(intruder_api, placeholder)

    world = build_world(owner, owner_api, shop)

    fingerprint = schema_fingerprint(owner)
    calls = 0
    for route in api_routes():
        if not route.params:
            continue
        entry = ID_ROUTES[route.name]
        path = _path(route.name, world)
        for method in route.methods:
            if entry.partner_only and method not in SAFE:
                refused = _call(intruder_api, method, path, entry.bodies.get(method))
                assert refused.status_code == 403 and refused.json()["code"] == "forbidden", route.name
            client = intruder_partner if entry.partner_only else intruder_api
            response = _call(client, method, path, entry.bodies.get(method))
            calls += 1
            what = f"{method} {path} ({route.name}) with the intruder's {'partner ' if entry.partner_only else ''}key"
            if entry.global_object:
                assert response.status_code == 200, what
                continue
            assert_problem(response, 404, "not_found", what)
            assert schema_fingerprint(owner) == fingerprint, f"{what} changed the owner's data"
    assert calls >= 20

    # Lists: exactly what the intruder saw before, and none of the owner's ids anywhere in them.
    lists_after = _list_reads(intruder_api, placeholder)
    assert lists_after == lists_before
    # …and with the owner's real ids in the filters (an intruder who learnt them still gets nothing).
    for key, content in _list_reads(intruder_api, world).items():
        assert content == lists_before.get(key) or b'"results":[]' in content.replace(b" ", b""), key
    owner_ids = [value for value in world.ids().values() if value]
    for key, content in lists_after.items():
        leaked = [value for value in owner_ids if value.encode() in content]
        assert not leaked, f"{key} read with the intruder's key lists the owner's {leaked}"
    assert schema_fingerprint(owner) == fingerprint

    # The same paths work for the owner: the 404s above are isolation, not bad ids.
    for route in api_routes():
        if route.params and "GET" in route.methods:
            response = owner_api.get(_path(route.name, world))
            assert response.status_code == 200, (route.name, response.content[:300])
    owner_lists = _list_reads(owner_api, world)
    for name, entry in LIST_ROUTES.items():
        seen = b"".join(content for key, content in owner_lists.items() if key.startswith(f"{name}?"))
        for kind in entry.owner_sees:
            assert world.ids()[kind].encode() in seen, f"{name} does not list the owner's own {kind}"


def test_a_read_key_cannot_call_any_non_safe_method(tenant_a, make_api_client, shop):
    owner_api = make_api_client(tenant_a)
    reader = make_api_client(tenant_a, scopes=["read"])
    world = build_world(tenant_a, owner_api, shop)
    fingerprint = schema_fingerprint(tenant_a)
    refused = 0
    for route in api_routes():
        for method in route.methods:
            if method in SAFE:
                continue
            if route.params:
                path, body = _path(route.name, world), ID_ROUTES[route.name].bodies.get(method)
            else:
                path, body = reverse(route.name), LIST_ROUTES[route.name].bodies.get(method)
            response = _call(reader, method, path, body)
            what = f"{method} {path} with a read-only key"
            assert response.status_code == 403, f"{what}: {response.status_code} {response.content[:300]!r}"
            assert response["Content-Type"] == "application/problem+json", what
            assert response.json()["code"] == "forbidden", what
            assert schema_fingerprint(tenant_a) == fingerprint, f"{what} changed data"
            refused += 1
        if "GET" in route.methods:
            path = _path(route.name, world) if route.params else reverse(route.name)
            query = {} if route.params else LIST_ROUTES[route.name].queries(world)[0]
            assert reader.get(path, query).status_code == 200, f"GET {path} with a read key"
    assert refused >= 12
