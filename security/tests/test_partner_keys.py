"""A fulfilment partner's key, walked over every route of the URL configuration: it reads its tenant's
shipments and reports their tracking, and every other route answers 403 `forbidden` and changes nothing
(orders, funds, rewards and their codes, webhooks, batches, reports — today's routes and tomorrow's)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.test import Client
from django.urls import reverse

from .test_cross_tenant import ID_ROUTES, LIST_ROUTES, _call, _path, api_routes
from .world import build_world, schema_fingerprint

PARTNER_ROUTES = {"shipment-list", "shipment-detail", "shipment-manifest", "shipment-tracking"}


def test_a_partner_key_reaches_only_its_tenants_shipments(tenant_a, make_api_client, make_partner_client, shop):
    partner = make_partner_client(tenant_a)
    world = build_world(tenant_a, make_api_client(tenant_a), shop)
    fingerprint = schema_fingerprint(tenant_a)
    allowed = refused = 0
    for route in api_routes():
        path = _path(route.name, world) if route.params else reverse(route.name)
        bodies = ID_ROUTES[route.name].bodies if route.params else LIST_ROUTES[route.name].bodies
        query = {} if route.params else (LIST_ROUTES[route.name].queries(world) or [{}])[0]
        for method in route.methods:
            response = _call(partner, method, path, bodies.get(method), query)
            what = f"{method} {path} with a partner key: {response.status_code} {response.content[:300]!r}"
            if route.name in PARTNER_ROUTES:
                assert response.status_code == 200, what
                fingerprint = schema_fingerprint(tenant_a)  # a tracking report does change the shipment
                allowed += 1
                continue
            assert response.status_code == 403, what
            assert response["Content-Type"] == "application/problem+json", what
            assert response.json()["code"] == "forbidden", what
            assert schema_fingerprint(tenant_a) == fingerprint, f"{what} changed data"
            refused += 1
    assert allowed == len(PARTNER_ROUTES) and refused >= 25
    assert _call(partner, "GET", _path("shipment-detail", world)).json()["status"] == "shipped"

    # Its access token carries the same scope and the same limits.
    exchanged = Client().post(
        "/api/v1/tokens",
        urlencode(
            {"grant_type": "client_credentials", "client_id": partner.key.key_id, "client_secret": partner.raw_key}
        ),
        content_type="application/x-www-form-urlencoded",  # RFC 6749's form
    )
    assert exchanged.status_code == 200 and exchanged.json()["scope"] == "shipments:report"
    bearer = Client(HTTP_AUTHORIZATION=f"Bearer {exchanged.json()['access_token']}")
    assert bearer.get(_path("shipment-detail", world)).status_code == 200
    assert bearer.get(reverse("balance-list")).json()["code"] == "forbidden"
    assert bearer.post(_path("reward-reveal", world), {}, content_type="application/json").status_code == 403
