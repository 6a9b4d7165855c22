"""Finding one reward among a batch's many in the portal, and the Reports page: what staff see, only their own."""

import csv
import io

from django_tenants.utils import tenant_context

from batches.processing import batch_process
from batches.upload import batch_upload
from orders.models import Reward
from testsupport.batches import csv_bytes, digital_rows


def _sent_batch(tenant, shop, count=30):
    rows = digital_rows(shop.coffee_usd, count)
    rows[-1].update(recipient_name="Mary Jackson", recipient_email="mary.jackson@example.com", external_id="emp-1717")
    rows[-1]["metadata.department"] = "Wind Tunnel"
    columns = [*rows[0].keys(), "metadata.department"]
    with tenant_context(tenant):
        batch = batch_upload(file=io.BytesIO(csv_bytes(rows, columns=columns)), file_name="q4.csv", dry_run=False)
        assert batch_process(batch_id=batch.id) == "done"
        return batch, Reward.objects.get(external_id="emp-1717")


def test_find_one_reward_in_a_batch_and_everywhere(signed_in, funded_a, shop, tenant_b):
    client, _ = signed_in("viewer")
    batch, mary = _sent_batch(funded_a, shop)
    assert mary.metadata == {"department": "Wind Tunnel"} and mary.recipient_name == "Mary Jackson"
    for q in ["jackson", "emp-1717", "wind tunnel", mary.reference]:
        page = client.get("/search/", {"q": q}).content.decode()
        assert mary.reference in page and "Recipient 3" not in page, q
        assert "or a whole reference" in page  # a part of a reference finds nothing (orders 0026): the help says so
    manager, _ = signed_in("manager")
    page = manager.get(f"/bulk/{batch.id}/", {"q": "mary"}).content.decode()
    assert 'data-testid="batch-rows"' in page and mary.reference in page and "emp-1717" in page
    assert "r5@example.com" not in page
    unfiltered = manager.get(f"/bulk/{batch.id}/").content.decode()
    assert unfiltered.count('data-testid="row-reward"') == 30
    assert manager.get(f"/bulk/{batch.id}/", {"status": "delivered"}).content.decode().count("row-reward") == 0
    short = manager.get("/search/", {"q": "ma"}).content.decode()
    assert "at least 3 characters" in short.lower() and mary.reference not in short
    export = manager.get("/orders/export.csv", {"recipient": "jackson"})
    lines = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert len(lines) == 31 and mary.reference in {line[17] for line in lines[1:]}
    assert any('"department": "Wind Tunnel"' in line[20] for line in lines[1:])


def test_search_page_is_per_tenant(signed_in, funded_a, shop, tenant_b, staff):
    _sent_batch(funded_a, shop, count=3)
    from testsupport.portal import portal_client, sign_in

    other = portal_client(tenant_b)
    user = staff("admin", tenant=tenant_b)
    sign_in(other, user.email)
    page = other.get("/search/", {"q": "jackson"}).content.decode()
    assert "No rewards match." in page and "Mary Jackson" not in page


def test_reports_page_shows_spend_and_the_funnel(signed_in, funded_a, shop):
    from fulfillment.services import reward_fulfil

    _, mary = _sent_batch(funded_a, shop, count=3)
    with tenant_context(funded_a):
        reward_fulfil(reward_id=mary.id)
    client, _ = signed_in("finance")
    page = client.get("/reports/", {"group_by": "department"}).content.decode()
    assert "Wind Tunnel: 10.00 USD" in page and 'data-testid="spend-total-USD"><strong>10.00' in page
    assert "Delivered: 1" in page and "Sent: 1" in page
    download = client.get("/reports/spend.csv", {"group_by": "department"})
    assert download.status_code == 200 and "Wind Tunnel" in download.content.decode()
    bad = client.get("/reports/", {"since": "2026-12-05", "until": "2026-01-01"}).content.decode()
    assert "from is after to" in bad
    viewer, _ = signed_in("viewer")
    assert viewer.get("/reports/").status_code == 403


def test_a_bulk_file_names_products_by_sku_from_the_catalogue(funded_a, shop, signed_in):
    rows = digital_rows(shop.coffee_usd, 3)
    for row in rows:
        row["sku"] = shop.coffee_usd.sku
        row.pop("product_id")
    with tenant_context(funded_a):
        batch = batch_upload(file=io.BytesIO(csv_bytes(rows)), file_name="skus.csv")
    assert (batch.valid_rows, batch.error_rows) == (3, 0)
    client, _ = signed_in("manager")
    catalogue = list(csv.reader(io.StringIO(client.get("/send/catalogue.csv").content.decode())))
    assert catalogue[0][:2] == ["sku", "product_id"] and shop.coffee_usd.sku in {row[0] for row in catalogue[1:]}
    assert shop.coffee_usd.sku in client.get("/send/").content.decode()
    template = list(csv.reader(io.StringIO(client.get("/bulk/template.csv").content.decode())))
    assert "sku" in template[0] and template[1][template[0].index("sku")].endswith("-usd")


def test_page_titles_are_in_the_staff_members_language(signed_in, funded_a):
    """Find and Reports named their page in English whatever the staff member's language."""
    client, user = signed_in("admin")
    with tenant_context(funded_a):
        user.language = "ms"
        user.save(update_fields=["language"])
    assert "<h1>Cari</h1>" in client.get("/search/").content.decode()
    assert "<h1>Laporan</h1>" in client.get("/reports/").content.decode()
