"""Bulk files people can act on: the error file is the refused rows as uploaded plus an `error` column and, fixed,
uploads again as it is; XLSX works like CSV both ways; the results file names each recipient and carries claim
links only for keys that may send."""

import csv
import io

from django_tenants.utils import tenant_context
from openpyxl import Workbook, load_workbook

from batches.processing import batch_process
from testsupport.batches import csv_bytes, digital_rows, upload


def _csv(response) -> list[list[str]]:
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))


def _csv_file(lines: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(lines)
    return out.getvalue().encode()


def test_the_error_file_fixed_uploads_again_as_it_is(api_a, funded_a, shop):
    columns = ["recipient_name", "recipient_email", "sku", "amount", "external_id", "metadata.department"]
    rows = digital_rows(shop.coffee_usd, 5, sku=shop.coffee_usd.sku)
    for row in rows:
        row["metadata.department"] = "Sales"
    rows[1]["recipient_email"] = "not-an-email"
    rows[3]["amount"] = "30"
    first = upload(api_a, csv_bytes(rows, columns=columns)).json()
    assert (first["valid_rows"], first["error_rows"]) == (3, 2)
    errors = _csv(api_a.get(first["errors_url"]))
    assert errors[0] == [*columns, "error"]
    assert [line[:-1] for line in errors[1:]] == [[row[c] for c in columns] for row in (rows[1], rows[3])]
    assert errors[1][-1].startswith("row 3: recipient_email:") and errors[2][-1].startswith("row 5: amount:")
    errors[1][1], errors[2][3] = "fixed@example.com", "25"  # fixed in the spreadsheet, nothing else touched
    again = upload(api_a, _csv_file(errors), name="fixed.csv").json()
    assert (again["rows"], again["valid_rows"], again["error_rows"]) == (2, 2, 0)

    workbook = load_workbook(io.BytesIO(api_a.get(f"/api/v1/batches/{first['id']}/errors.xlsx").content))
    assert [cell.value for cell in workbook.active[1]] == [*columns, "error"]


def test_an_xlsx_file_is_read_like_its_csv(api_a, funded_a, shop):
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["recipient_name", "recipient_email", "sku", "amount", "external_id"])
    sheet.append(["Ada Lovelace", "ada@example.com", shop.coffee_usd.sku, 25, "x-1"])
    sheet.append(["Grace Hopper", "grace@example.com", shop.coffee_usd.sku, 25.0, "x-2"])
    sheet.append(["Bad Amount", "bad@example.com", shop.coffee_usd.sku, 30, "x-3"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    body = upload(api_a, buffer.getvalue(), name="december.xlsx").json()
    assert (body["rows"], body["valid_rows"], body["error_rows"]) == (3, 2, 1)
    assert body["total_cost"] == {"USD": "50.00"}
    refused = upload(api_a, b"PK\x03\x04 not really a workbook", name="broken.xlsx")
    assert refused.status_code == 422 and refused.json()["code"] == "invalid_file"


def test_results_name_each_recipient_and_links_go_only_to_keys_that_send(
    api_a, funded_a, shop, tenant_a, make_api_client
):
    rows = digital_rows(shop.coffee_usd, 3, delivery_method="link")
    body = upload(api_a, csv_bytes(rows), dry_run=False).json()
    with tenant_context(funded_a):
        assert batch_process(batch_id=body["id"]) == "done"
    results = _csv(api_a.get(f"/api/v1/batches/{body['id']}/results.csv"))
    header = results[0]
    by_row = [dict(zip(header, line, strict=True)) for line in results[1:]]
    assert [(r["recipient_name"], r["recipient_email"], r["external_id"]) for r in by_row] == [
        (f"Recipient {i}", f"r{i}@example.com", f"ext-{i}") for i in range(3)
    ]
    assert all(r["reference"].startswith("RW-") and "/r/" in r["claim_url"] for r in by_row)
    reader = make_api_client(tenant_a, scopes=["read"])
    read_only = _csv(reader.get(f"/api/v1/batches/{body['id']}/results.csv"))
    assert {line[header.index("claim_url")] for line in read_only[1:]} == {""}
    sheet = load_workbook(io.BytesIO(api_a.get(f"/api/v1/batches/{body['id']}/results.xlsx").content)).active
    assert [cell.value for cell in sheet[1]] == header and sheet.max_row == 4


def test_erasing_a_person_scrubs_their_refused_row_from_the_error_file(api_a, funded_a, shop):
    rows = digital_rows(shop.coffee_usd, 2)
    rows[1].update(recipient_name="Erin Erased", recipient_email="erin@example.com", amount="30")  # refused
    batch = upload(api_a, csv_bytes(rows)).json()
    person = api_a.post("/api/v1/people", {"external_id": "erin", "name": "Erin Erased", "email": "erin@example.com"})
    assert person.status_code == 201, person.content
    assert "erin@example.com" in str(_csv(api_a.get(batch["errors_url"])))
    assert api_a.delete(f"/api/v1/people/{person.json()['id']}").status_code == 204
    scrubbed = str(_csv(api_a.get(batch["errors_url"])))
    assert "erin@example.com" not in scrubbed and "Erin Erased" not in scrubbed
