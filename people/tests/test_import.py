"""People import over the API: a CSV upserted by external_id through the bulk machinery (preview, row errors,
confirm, progress, results), re-importable, isolated per tenant."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from batches.processing import batch_process
from people.models import Person
from testsupport.batches import csv_bytes
from testsupport.problems import assert_problem

COLUMNS = ["external_id", "name", "email", "timezone", "birthday", "hire_date", "department", "status",
           "attributes.cost_center"]  # fmt: skip


def people_upload(api, data: bytes, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    form = {"file": SimpleUploadedFile("people.csv", data, content_type="text/csv"), **fields}
    return api._client.post("/api/v1/people/import", form)


def csv_text(response) -> str:
    return b"".join(response.streaming_content).decode() if response.streaming else response.content.decode()


def test_preview_then_apply_creates_and_updates(api_a, tenant_a):
    known = api_a.post("/api/v1/people", {"external_id": "e1", "name": "Old Name", "email": "old@example.com",
                                          "phone": "+60123456789", "attributes": {"team": "blue"}}).json()  # fmt: skip
    rows = [
        {"external_id": "e1", "name": "New Name", "department": "Sales", "attributes.cost_center": "CC-1"},
        {"external_id": "e2", "name": "Bea", "email": "bea@example.com", "timezone": "Europe/Berlin",
         "birthday": "02-29", "hire_date": "2020-03-01"},
        {"external_id": "e3", "name": "Cy", "status": "left"},
        {"external_id": "e4", "name": "", "email": "x@example.com"},  # a new person needs a name
        {"external_id": "e5", "name": "Dee", "timezone": "Nowhere/Land"},
        {"external_id": "e2", "name": "Twice"},
        {"external_id": "e6", "name": "=HYPERLINK()"},
    ]  # fmt: skip
    preview = people_upload(api_a, csv_bytes(rows, columns=COLUMNS))
    assert preview.status_code == 201, preview.content
    batch = preview.json()
    assert (batch["kind"], batch["status"], batch["rows"], batch["valid_rows"]) == ("people", "validated", 7, 3)
    assert batch["people"] == {"create": 2, "update": 1} and batch["total_cost"] == {}
    errors = csv_text(api_a.get(batch["errors_url"]))
    for expected in (
        "row 5: name: Required.",  # the error file: each refused row as uploaded, plus what is wrong with it
        "row 6: timezone:",
        "row 7: external_id: Used by an earlier row",
        "row 8: name: Cells may",
    ):
        assert expected in errors, errors
    with tenant_context(tenant_a):
        assert Person.objects.count() == 1  # a preview changes nothing

    assert api_a.post(f"/api/v1/batches/{batch['id']}/confirm").status_code == 202
    with tenant_context(tenant_a):
        assert batch_process(batch_id=batch["id"]) == "done"
    done = api_a.get(f"/api/v1/batches/{batch['id']}").json()
    assert done["status"] == "completed" and done["progress"] == {"done": 3, "total": 3, "failed": 0, "percent": 100}
    updated = api_a.get(f"/api/v1/people/{known['id']}").json()
    assert (updated["name"], updated["department"], updated["email"], updated["phone"]) == (
        "New Name", "Sales", "old@example.com", "+60123456789")  # fmt: skip
    assert updated["attributes"] == {"team": "blue", "cost_center": "CC-1"}
    [bea] = api_a.get("/api/v1/people", {"external_id": "e2"}).json()["results"]
    assert (bea["timezone"], bea["birthday"], bea["hire_date"], bea["status"]) == (
        "Europe/Berlin", "02-29", "2020-03-01", "active")  # fmt: skip
    [cy] = api_a.get("/api/v1/people", {"external_id": "e3"}).json()["results"]
    assert cy["status"] == "left" and cy["left_at"]
    results = csv_text(api_a.get(done["results_url"]))
    assert '"2","","updated","e1"' in results and '"3","","created","e2"' in results

    # The same file again is an upsert, not a duplicate send: accepted, and it changes nothing new.
    again = people_upload(api_a, csv_bytes(rows, columns=COLUMNS), dry_run="false")
    assert again.status_code == 201 and again.json()["people"] == {"create": 0, "update": 3}
    with tenant_context(tenant_a):
        batch_process(batch_id=again.json()["id"])
        assert Person.objects.count() == 3


def test_bad_files_are_refused_whole(api_a, tenant_a):
    assert_problem(people_upload(api_a, b"name,email\r\nAda,a@example.com\r\n"), 422, "missing_columns")
    body = assert_problem(people_upload(api_a, b"external_id,name,shoe_size\r\ne1,Ada,42\r\n"), 422, "unknown_columns")
    assert "attributes.<name>" in body["detail"]
    assert_problem(people_upload(api_a, b"external_id,name\r\ne1,\r\n"), 422, "no_valid_rows")
    template = api_a.get("/api/v1/people/import/template.csv")
    assert template.status_code == 200 and template.content.decode().startswith('"external_id","name","email"')
    with tenant_context(tenant_a):
        assert Person.objects.count() == 0
    # The template itself is a valid file: two people to create.
    assert people_upload(api_a, template.content).json()["people"] == {"create": 2, "update": 0}


def test_import_stays_in_its_tenant(api_a, api_b, tenant_a, tenant_b):
    rows = [{"external_id": "shared", "name": "Alpha's"}]
    batch = people_upload(api_a, csv_bytes(rows, columns=COLUMNS), dry_run="false").json()
    assert_problem(api_b.get(f"/api/v1/batches/{batch['id']}"), 404)
    assert_problem(api_b.post(f"/api/v1/batches/{batch['id']}/confirm"), 404)
    with tenant_context(tenant_a):
        batch_process(batch_id=batch["id"])
        assert Person.objects.get().name == "Alpha's"
    with tenant_context(tenant_b):
        assert Person.objects.count() == 0
