"""Developers page and a fulfilment partner's key: shown as the partner's, never granted, rotated or revoked
by the tenant (the operator issues and revokes it; its scope would let the tenant report its own returns)."""

import re

from tenants.models import PARTNER_SCOPE, ApiKey

RAW_KEY = re.compile(r"rp_(?:live|test)_[a-z0-9]{12}_[A-Za-z0-9_-]+")


def test_a_partner_key_is_listed_as_the_partners_and_the_tenant_cannot_touch_it(
    signed_in, tenant_a, make_partner_client
):
    partner = make_partner_client(tenant_a, name="ShipCo")
    client, _ = signed_in("admin")
    page = client.get("/developers/").content.decode()
    row = page[page.index(f'data-testid="api-key-{partner.key.key_id}"') :]
    row = row[: row.index("</tr>")]
    assert "ShipCo" in row and "Fulfilment partner" in row and "Issued and revoked by the platform operator" in row
    assert "<form" not in row  # no rotate or revoke button

    for action in ("rotate", "revoke"):
        response = client.post(f"/developers/keys/{partner.key.key_id}/{action}", follow=True)
        assert response.status_code == 200 and not RAW_KEY.search(response.content.decode())
        assert "managed by the platform operator" in response.content.decode()
    partner.key.refresh_from_db()
    assert partner.key.revoked_at is None
    assert partner.get("/api/v1/shipments").status_code == 200
    assert list(ApiKey.objects.filter(tenant=tenant_a)) == [partner.key]  # no key minted by a rotation

    # Nor can the create form grant the partner's scope.
    data = {"name": "sneaky", "scopes": [PARTNER_SCOPE], "allowed_cidrs": "", "expires_in_days": ""}
    response = client.post("/developers/", data)
    assert response.status_code == 200 and not RAW_KEY.search(response.content.decode())
    assert 'id="id_scopes_error"' in response.content.decode()
    assert list(ApiKey.objects.filter(tenant=tenant_a)) == [partner.key]
