"""No input makes the API answer 500 or HTML: bad cursors and limits on every list, bodies too deep, too large or
malformed on every write, Django's own refusals under /api/. The routes come from the URLconf, so a new
endpoint is covered the day it is added."""

from __future__ import annotations

import inspect
import json
from base64 import b64encode
from dataclasses import dataclass

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import get_resolver, path, reverse
from django_tenants.utils import tenant_context
from rest_framework.mixins import ListModelMixin
from rest_framework.parsers import JSONParser, MultiPartParser

from security.tests.world import build_world, schema_fingerprint
from tenants.models import PARTNER_SCOPE, PARTNER_SCOPES
from testsupport.problems import assert_problem
from testsupport.urls import api_v1_routes

WRITE_METHODS = ("POST", "PUT", "PATCH")
NESTED = '{"grant_type": ' + "[" * 5000 + "]" * 5000 + "}"  # the issue's probe: 5,000 levels


def _b64(text: str) -> str:
    return b64encode(text.encode()).decode()


BAD_CURSORS = {
    "garbage": "garbage!!",
    "not base64": "%%%",
    "base64 of junk": _b64("hello"),
    "unknown token": _b64("x=1"),
    "bad offset": _b64("o=abc"),
    "negative offset": _b64("o=-5"),
    "bad direction": _b64("r=2"),
    "NUL position": _b64("p=\x00"),
    "repeated token": _b64("o=1&o=2"),
    "not ascii": "é",
}
BAD_LIMITS = ["²", "-1", "0", "abc", "10**30", "1.5", "", " 5", "0x10"]


@dataclass(frozen=True)
class Route:
    name: str
    route: str
    params: tuple[str, ...]
    view_class: type

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m.upper() for m in self.view_class.http_method_names if hasattr(self.view_class, m))

    @property
    def paginates(self) -> bool:
        """A GET that answers a cursor page: a DRF list view, or a get() that calls paginate_queryset."""
        if not hasattr(self.view_class, "get") or getattr(self.view_class, "pagination_class", None) is None:
            return False
        return issubclass(self.view_class, ListModelMixin) or "paginate_queryset" in inspect.getsource(
            self.view_class.get
        )


def api_routes() -> list[Route]:
    return [
        Route(url.pattern.name or url.route, url.route, tuple(url.pattern.pattern.converters), url.view_class)
        for url in api_v1_routes()
        if url.view_class is not None
    ]


# URL parameter -> the World field holding an object of that kind (security/tests/world.py)
WORLD_FIELDS = {
    "transaction_id": "transaction_id",
    "endpoint_id": "endpoint_id",
    "event_id": "event_id",
    "product_id": "product_id",
    "slug": "program_slug",
    "order_id": "order_id",
    "reward_id": "reward_id",
    "shipment_id": "shipment_id",
    "batch_id": "batch_id",
    "person_id": "person_id",
    "award_id": "award_id",
    "rule_id": "rule_id",
    "automation_id": "automation_id",
}


def _url(route: Route, world) -> str:
    missing = [p for p in route.params if p not in WORLD_FIELDS]
    assert not missing, f"/{route.route}: add {missing} to WORLD_FIELDS in core/tests/test_api_input.py"
    return reverse(route.name, kwargs={p: getattr(world, WORLD_FIELDS[p]) for p in route.params})


@pytest.fixture
def world(tenant_a, api_a, shop):
    return build_world(tenant_a, api_a, shop)


def _client(api) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api.raw_key}", raise_request_exception=False)


def test_the_issue_probes(api_a, funded_a, shop):
    """Issue 12, finding 4, as reported."""
    client = _client(api_a)
    body = assert_problem(client.get("/api/v1/orders?cursor=cD0yMDI2"), {400}, "validation_error", "p=2026")
    assert "cursor" in body["errors"]
    body = assert_problem(client.get("/api/v1/orders?limit=%C2%B2"), {400}, "validation_error", "limit=²")
    assert "limit" in body["errors"]
    for path_ in ("/api/v1/orders", "/api/v1/tokens"):
        nested = client.post(path_, NESTED, content_type="application/json")
        assert_problem(nested, {400}, "malformed_request", f"{path_} nested 5,000 deep")
        big = client.post(path_, json.dumps({"x": "a" * 3_000_000}), content_type="application/json")
        assert_problem(big, {413}, "payload_too_large", f"{path_} 3 MB")
    unauthenticated = Client(raise_request_exception=False).post(
        "/api/v1/tokens", NESTED, content_type="application/json"
    )
    assert assert_problem(unauthenticated, {400}, "malformed_request", "tokens")["error"] == "invalid_request"


def test_every_list_refuses_bad_cursors_and_limits(api_a, world):
    client = _client(api_a)
    lists = [route for route in api_routes() if route.paginates]
    assert {"order-list", "reward-list", "transaction-list", "event-list", "webhook-endpoint-deliveries"} <= {
        route.name for route in lists
    }, [route.name for route in lists]
    failures, typed_positions = [], 0
    for route in lists:
        url = _url(route, world)
        first = client.get(url, {"limit": 1})
        if first.status_code != 200:
            failures.append(f"{url}?limit=1: {first.status_code} {first.content[:200]!r}")
            continue
        for what, cursor in BAD_CURSORS.items():
            response = client.get(url, {"cursor": cursor})
            try:
                assert "cursor" in assert_problem(response, {400}, "validation_error", f"{url} {what}")["errors"]
            except AssertionError as exc:
                failures.append(str(exc))
        for limit in BAD_LIMITS:
            response = client.get(url, {"limit": limit})
            try:
                assert (
                    "limit" in assert_problem(response, {400}, "validation_error", f"{url} limit={limit!r}")["errors"]
                )
            except AssertionError as exc:
                failures.append(str(exc))
        # a position the ordering field cannot hold: 400 unless that field is text (then it is a position)
        position = client.get(url, {"cursor": _b64("p=2026")})
        if position.status_code == 400:
            typed_positions += 1
        elif position.status_code != 200:
            failures.append(f"{url} p=2026: {position.status_code} {position.content[:200]!r}")
        # a huge limit is capped, as documented, and a real `next` link still works
        capped = client.get(url, {"limit": "9" * 5000})
        if capped.status_code != 200:
            failures.append(f"{url} limit=9…9: {capped.status_code}")
        next_link = first.json().get("next")
        if next_link and client.get(next_link).status_code != 200:
            failures.append(f"{url}: its own next link {next_link} was refused")
    assert not failures, "\n".join(failures)
    assert typed_positions >= 5  # the lists ordered by a timestamp


def test_every_write_refuses_deep_large_and_malformed_bodies(
    tenant_a, make_api_client, make_partner_client, world, settings
):
    """Every POST/PUT/PATCH, with the owner's key holding every tenant scope (and the token exchange, with none): a
    body nested
    5,000 deep, one over DATA_UPLOAD_MAX_MEMORY_SIZE (JSON and multipart), malformed JSON. Each is a 4xx
    problem+json, and nothing in the tenant's schema changes."""
    from funds.selectors import ledger_invariant_violations

    owner = make_api_client(tenant_a, scopes=["read", "write", "approve"])  # approve: the approval decisions
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024  # the same path as 2.5 MB, with less to send
    oversize = json.dumps({"x": "a" * (65 * 1024)})
    writes = [(route, method) for route in api_routes() for method in route.methods if method in WRITE_METHODS]
    assert len(writes) >= 15 and any(route.name == "token-create" for route, _ in writes), writes
    before = schema_fingerprint(tenant_a)
    failures = []
    # partner-only routes refuse a tenant key (and another partner's) before reading the body
    partners = {scope: make_partner_client(tenant_a, name=scope, scope=scope) for scope in PARTNER_SCOPES}
    for route, method in writes:
        if route.name == "token-create":
            client = Client(raise_request_exception=False)
        else:
            partner_scope = next(
                (getattr(p, "partner_scope", PARTNER_SCOPE) for p in route.view_class.permission_classes
                 if getattr(p, "partner_only", False)),
                None,
            )  # fmt: skip
            client = _client(partners[partner_scope] if partner_scope else owner)
        url, send = _url(route, world), getattr(client, method.lower())
        parsers = route.view_class.parser_classes
        takes_json = any(issubclass(parser, JSONParser) for parser in parsers)
        cases = [
            ("nested 5,000", NESTED, "application/json", {400} if takes_json else {415}),
            ("oversize JSON", oversize, "application/json", {413} if takes_json else {415}),
            ("malformed JSON", "{not json", "application/json", {400} if takes_json else {415}),
        ]
        if any(issubclass(parser, MultiPartParser) for parser in parsers):
            boundary, field = "BoUnDaRy", "a" * 65 * 1024
            multipart = f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n{field}\r\n--{boundary}--\r\n'
            cases.append(("oversize multipart", multipart, f"multipart/form-data; boundary={boundary}", {413}))
        for what, body, content_type, statuses in cases:
            try:
                response = send(url, body, content_type=content_type)
                problem = assert_problem(response, statuses, None, f"{method} {url} {what}")
                if route.name == "token-create" and response.status_code != 405:
                    assert problem["error"] == "invalid_request", problem
            except AssertionError as exc:
                failures.append(str(exc))
    assert not failures, "\n".join(failures)
    assert schema_fingerprint(tenant_a) == before, "a refused request changed the tenant's data"
    with tenant_context(tenant_a):
        assert ledger_invariant_violations() == []


# --- Django's own error paths under /api/ -------------------------------------------------------------------


def _raises(exc: Exception):
    def view(request):
        raise exc

    return view


urlpatterns = [
    path("api/v1/test-suspicious", _raises(SuspiciousOperation("bad"))),
    path("api/v1/test-forbidden", _raises(PermissionDenied())),
    path("api/v1/test-crash", _raises(RuntimeError("boom"))),
    path("api/v1/test-body", lambda request: HttpResponse(request.body)),  # reads the body outside DRF
    path("test-suspicious", _raises(SuspiciousOperation("bad"))),
    *get_resolver("rewards_portal.urls").url_patterns,
]
handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"


# One override for both: pytest-django's `settings` fixture, used inside an override_settings, restores the
# overridden settings object at teardown and leaks ROOT_URLCONF into later tests.
@override_settings(ROOT_URLCONF=__name__, DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_django_error_pages_under_api_are_problem_json(db):
    client = Client(raise_request_exception=False)
    assert_problem(client.get("/api/v1/test-suspicious"), {400}, "malformed_request", "SuspiciousOperation")
    assert_problem(client.get("/api/v1/test-forbidden"), {403}, "forbidden", "PermissionDenied")
    assert_problem(client.get("/api/v1/test-crash"), {500}, "internal_error", "unexpected exception")
    big = client.post("/api/v1/test-body", "x" * 2048, content_type="text/plain")
    assert_problem(big, {413}, "payload_too_large", "a body over the limit read outside DRF")
    assert_problem(client.get("/api/v1/no-such-route"), {404}, "not_found", "unknown route")
    assert_problem(client.put("/api/v1/tokens"), {405}, "method_not_allowed", "PUT /tokens")
    # the portal keeps its HTML pages
    page = client.get("/test-suspicious")
    assert page.status_code == 400 and page["Content-Type"].startswith("text/html")
