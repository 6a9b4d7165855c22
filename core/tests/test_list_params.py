"""List filters: an unknown enum value is a 422 problem naming the allowed values, not an empty page."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("path", "name", "good"),
    [
        ("/api/v1/transactions", "kind", "deposit"),
        ("/api/v1/events", "type", "order.created"),
        ("/api/v1/orders", "status", "pending"),
        ("/api/v1/batches", "status", "validated"),
        ("/api/v1/rewards", "status", "delivered"),
        ("/api/v1/shipments", "status", "shipped"),
    ],
)
def test_unknown_filter_value_is_a_validation_problem(api_a, funded_a, path, name, good):
    refused = api_a.get(path, {name: "no-such-value"})
    assert refused.status_code == 422, refused.content
    assert refused["Content-Type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["code"] == "validation_error"
    assert name in problem["errors"]
    assert good in problem["detail"]  # the message lists what is allowed

    assert api_a.get(path, {name: good}).status_code == 200
    assert api_a.get(path, {name: ""}).status_code == 200  # empty means no filter


def test_unknown_delivery_status_is_a_validation_problem(api_a):
    endpoint = api_a.post("/api/v1/webhook-endpoints", {"url": "https://hooks.example.com/in"}).json()
    path = f"/api/v1/webhook-endpoints/{endpoint['id']}/deliveries"
    refused = api_a.get(path, {"status": "delivered-ish"})
    assert refused.status_code == 422
    assert "status" in refused.json()["errors"]
    assert api_a.get(path, {"status": "succeeded"}).status_code == 200
