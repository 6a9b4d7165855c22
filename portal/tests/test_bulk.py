"""Bulk CSV pages with the Django client: preview, bad files, funds, confirm and results, roles, isolation."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from batches.models import Batch
from batches.processing import batch_process
from funds.models import Hold
from funds.services import funds_deposit
from testsupport.batches import csv_bytes, digital_rows
from testsupport.exports import csv_export_rows
from testsupport.portal import make_staff, portal_client, sign_in


def _post(client, data: bytes, *, name: str = "batch.csv", **fields):
    return client.post("/bulk/", {"file": SimpleUploadedFile(name, data, content_type="text/csv"), **fields})


def _three_bad(shop, count: int = 40) -> list[dict]:
    rows = digital_rows(shop.coffee_usd, count, amount="25")
    rows[9]["recipient_email"] = "not-an-email"  # spreadsheet row 11
    rows[19]["amount"] = "30"  # not a denomination: row 21
    rows[29]["recipient_name"] = '=HYPERLINK("http://x","y")'  # row 31
    return rows


def _batch_id(response) -> str:
    assert response.status_code == 302, response.content.decode()[:2000]
    return response["Location"].strip("/").split("/")[-1]


def _csv(response) -> list[list[str]]:
    return csv_export_rows(response)


def test_upload_shows_the_preview_with_row_errors_and_cost_against_funds(signed_in, funded_a, shop):
    client, user = signed_in("manager")
    page = client.get("/bulk/").content.decode()
    assert 'href="/bulk/template.csv"' in page and 'enctype="multipart/form-data"' in page
    template = client.get("/bulk/template.csv")
    assert template["Content-Disposition"].endswith('"rewards-batch-template.csv"')
    assert _csv(template)[0][:2] == ["recipient_name", "recipient_email"]

    batch_id = _batch_id(_post(client, csv_bytes(_three_bad(shop)), name="december.csv"))
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert 'data-testid="valid-rows">37<' in page and 'data-testid="error-rows">3<' in page
    for row, column in (("11", "recipient_email"), ("21", "amount"), ("31", "recipient_name")):
        assert f'<td class="nowrap">{row}</td><td><code>{column}</code>' in page
    assert "925.00 USD" in page and "1,000.00 USD" in page  # 37 x 25.00 against 1,000.00 available
    assert "Covered" in page and 'data-testid="funds-short"' not in page
    assert f'href="/bulk/{batch_id}/errors.csv"' in page
    confirm = page.split('data-testid="confirm"')[1].split(">")[0]
    assert "disabled" not in confirm
    errors = _csv(client.get(f"/bulk/{batch_id}/errors.csv"))
    assert errors[0][-1] == "error" and [r[-1].split(":")[:2] for r in errors[1:]] == [
        ["row 11", " recipient_email"], ["row 21", " amount"], ["row 31", " recipient_name"]]  # fmt: skip
    with tenant_context(funded_a):
        assert Batch.objects.get(pk=batch_id).created_by_email == user.email
        assert AuditEvent.objects.filter(action="batch.upload", object_id=batch_id).exists()
        assert not Hold.objects.exists()  # a preview holds nothing
    listing = client.get("/bulk/").content.decode()
    assert "december.csv" in listing and "Preview" in listing and user.email in listing


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ("recipient_name,product_id,amount\r\nJosé,{pid},10\r\n".encode("latin-1"), "is not valid UTF-8"),
        (b"recipient_name,amount\r\nAda,10\r\n", "product_id"),
        (b"recipient_name,product_id,amount\r\n", "The file has a header but no rows."),
        (b'recipient_name,product_id,amount\r\n"Ada' + b"x" * 40_000 + b'",{pid},10\r\n', "Line 2 is 40"),
        (b'recipient_name,product_id,amount\r\n"=HYPERLINK(""http://x"",""y"")",{pid},10\r\n',
         "Row 2, column recipient_name: Cells may not begin with a formula character"),
    ],
    ids=["encoding", "missing-columns", "no-rows", "huge-row", "formula"],
)  # fmt: skip
def test_bad_files_show_the_reason_next_to_the_file_field(signed_in, funded_a, shop, data, needle):
    client, _ = signed_in("manager")
    response = _post(client, data.replace(b"{pid}", str(shop.coffee_usd.id).encode()))
    assert response.status_code == 422
    page = response.content.decode()
    field = page.split('id="id_file_error"')[1].split("</ul>")[0]
    assert needle in field, field
    assert 'class="field has-error"' in page
    with tenant_context(funded_a):
        assert not Batch.objects.exists()


def test_missing_file_is_a_field_error(signed_in, funded_a):
    client, _ = signed_in("manager")
    response = client.post("/bulk/", {"name": "x"})
    assert response.status_code == 422
    assert "This field is required." in response.content.decode().split('id="id_file_error"')[1]


def test_short_funds_disable_confirm_and_a_forced_confirm_changes_nothing(signed_in, funded_a, shop):
    client, _ = signed_in("manager")
    batch_id = _batch_id(_post(client, csv_bytes(digital_rows(shop.coffee_usd, 41, amount="25"))))
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert 'data-testid="funds-short"' in page and "Short by 25.00 USD" in page
    assert "disabled" in page.split('data-testid="confirm"')[1].split(">")[0]
    response = client.post(f"/bulk/{batch_id}/confirm", follow=True)
    assert "do not cover" in response.content.decode()
    with tenant_context(funded_a):
        assert Batch.objects.get(pk=batch_id).status == "validated" and not Hold.objects.exists()


def test_confirm_holds_shows_progress_then_results(signed_in, funded_a, shop):
    from fulfillment.drain import fulfil_drain

    client, _ = signed_in("admin")
    batch_id = _batch_id(_post(client, csv_bytes(_three_bad(shop))))
    response = client.post(f"/bulk/{batch_id}/confirm")
    assert response.status_code == 302 and response["Location"] == f"/bulk/{batch_id}/"
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert 'role="progressbar"' in page and 'aria-valuenow="0"' in page and 'http-equiv="refresh"' in page
    assert client.get(f"/bulk/{batch_id}/progress.json").json() == {
        "status": "confirmed", "done": 0, "total": 37, "failed": 0, "percent": 0, "finished": False,
        "delivery": {"total": 37, "delivered": 0, "failed": 0, "canceled": 0, "pending": 37, "percent": 0,
                     "eta_seconds": None},
        "delivering": True,
    }  # fmt: skip
    with tenant_context(funded_a):
        assert Hold.objects.get(reference=f"batch:{batch_id}").amount == 925  # 37 x 25.00, held at once
        assert AuditEvent.objects.filter(action="batch.confirm", object_id=batch_id).exists()
        assert batch_process(batch_id=batch_id) == "done"
    assert client.get(f"/bulk/{batch_id}/progress.json").json()["percent"] == 100
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert 'aria-valuenow="100"' in page and f'href="/bulk/{batch_id}/results.csv"' in page
    # every row is a reward now, but none has reached its recipient yet: the page keeps watching the delivery
    assert "0 delivered, 0 failed, 37 pending of 37" in page and "http-equiv" in page
    with tenant_context(funded_a):
        fulfil_drain()
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert "37 delivered, 0 failed, 0 pending of 37" in page
    assert "http-equiv" not in page
    results = _csv(client.get(f"/bulk/{batch_id}/results.csv"))
    assert results[0][:7] == ["row", "recipient_name", "recipient_email", "external_id", "reward_id", "reference",
                              "status"]  # fmt: skip
    assert len(results) == 38 and all(len(r[4]) == 36 and r[5].startswith("RW-") for r in results[1:])
    again = client.post(f"/bulk/{batch_id}/confirm")  # a second confirm changes nothing
    assert again.status_code == 302


@pytest.mark.parametrize("role", ["viewer", "finance"])
def test_roles_without_bulk_get_the_403_page(signed_in, funded_a, shop, role):
    manager, _ = signed_in("manager")
    batch_id = _batch_id(_post(manager, csv_bytes(digital_rows(shop.coffee_usd, 2))))
    manager.post("/logout/")
    client, _ = signed_in(role)
    for path in ("/bulk/", "/bulk/template.csv", f"/bulk/{batch_id}/", f"/bulk/{batch_id}/progress.json",
                 f"/bulk/{batch_id}/errors.csv"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 403, path
    assert _post(client, csv_bytes(digital_rows(shop.coffee_usd, 2))).status_code == 403
    assert client.post(f"/bulk/{batch_id}/confirm").status_code == 403
    assert 'href="/bulk/"' not in client.get("/").content.decode()


def test_tenant_a_never_sees_tenant_b_batches(signed_in, funded_a, tenant_b, shop):
    with tenant_context(tenant_b):
        funds_deposit(currency="USD", amount="500.00")
    other = portal_client(tenant_b)
    assert sign_in(other, make_staff(tenant_b, "boss@beta.test", "admin").email).status_code == 302
    b_batch = _batch_id(_post(other, csv_bytes(digital_rows(shop.coffee_usd, 2)), name="beta-secret.csv"))
    client, _ = signed_in("admin")
    for path in (f"/bulk/{b_batch}/", f"/bulk/{b_batch}/progress.json", f"/bulk/{b_batch}/errors.csv",
                 f"/bulk/{b_batch}/results.csv"):  # fmt: skip
        assert client.get(path).status_code == 404, path
    assert client.post(f"/bulk/{b_batch}/confirm").status_code == 404
    assert "beta-secret.csv" not in client.get("/bulk/").content.decode()
    with tenant_context(tenant_b):
        assert Batch.objects.get(pk=b_batch).status == "validated"


def test_sandbox_mode_uploads_into_the_sandbox_twin(signed_in, funded_a, shop):
    with tenant_context(funded_a.sandbox):
        funds_deposit(currency="USD", amount="100.00")
    client, _ = signed_in("manager")
    client.post("/mode/", {"mode": "sandbox", "next": "/bulk/"})
    batch_id = _batch_id(_post(client, csv_bytes(digital_rows(shop.coffee_usd, 2)), name="test-run.csv"))
    page = client.get(f"/bulk/{batch_id}/").content.decode()
    assert "100.00 USD" in page and 'data-testid="sandbox-banner"' in page
    assert client.post(f"/bulk/{batch_id}/confirm").status_code == 302
    with tenant_context(funded_a.sandbox):
        assert Batch.objects.get(pk=batch_id).status == "confirmed"
        assert Hold.objects.get(reference=f"batch:{batch_id}").amount == 20
    with tenant_context(funded_a):
        assert not Batch.objects.exists() and not Hold.objects.exists()
    client.post("/mode/", {"mode": "live", "next": "/bulk/"})
    assert client.get(f"/bulk/{batch_id}/").status_code == 404  # a sandbox batch is not in live
    assert "test-run.csv" not in client.get("/bulk/").content.decode()


def test_reupload_of_a_sent_file_is_refused_unless_forced(signed_in, funded_a, shop):
    client, _ = signed_in("manager")
    data = csv_bytes(digital_rows(shop.coffee_usd, 3))
    first = _batch_id(_post(client, data))
    assert client.post(f"/bulk/{first}/confirm").status_code == 302
    response = _post(client, data)
    assert response.status_code == 409
    page = response.content.decode()
    assert f"This file was already sent as batch {first}" in page.split('id="id_file_error"')[1]
    assert 'name="force"' in page  # the way out is offered next to the error
    second = _batch_id(_post(client, data, force="on"))
    page = client.get(f"/bulk/{second}/").content.decode()
    assert "The same file was uploaded before" in page and f'href="/bulk/{first}/"' in page


def test_a_preview_can_be_discarded_and_a_confirmed_batch_stopped(signed_in, funded_a, shop):
    client, _ = signed_in("manager")
    preview = _batch_id(_post(client, csv_bytes(digital_rows(shop.coffee_usd, 2))))
    assert client.post(f"/bulk/{preview}/cancel").status_code == 302
    sent = _batch_id(_post(client, csv_bytes(digital_rows(shop.coffee_usd, 4, domain="other.example"))))
    client.post(f"/bulk/{sent}/confirm")
    assert "Stop sending" in client.get(f"/bulk/{sent}/").content.decode()
    page = client.post(f"/bulk/{sent}/cancel", follow=True).content.decode()
    assert "Batch canceled" in page and "Canceled" in page
    with tenant_context(funded_a):
        assert {b.status for b in Batch.objects.all()} == {"canceled"}
        assert Hold.objects.get(reference=f"batch:{sent}").status == "released"
        assert AuditEvent.objects.filter(action="batch.cancel").count() == 2
