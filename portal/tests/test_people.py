"""The People pages: find someone, add and edit with refusals next to fields, mark as left, their rewards, import
a CSV with a preview; managers yes, viewers no."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from audit.actors import Actor
from batches.processing import batch_process
from people.models import Person
from people.services import person_create

FORM = {"external_id": "emp-1", "name": "Siti Aminah", "email": "siti@example.com", "department": "Engineering",
        "birthday": "03-14", "hire_date": "2021-06-01", "timezone": "Asia/Kuala_Lumpur", "country": "MY",
        "locale": "ms", "attributes": "cost_center = R&D\ncertified_on = 2024-02-01"}  # fmt: skip


def test_manager_adds_finds_edits_and_marks_left(signed_in, tenant_a, django_assert_max_num_queries):
    client, _ = signed_in("manager")
    response = client.post("/people/new/", FORM)
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(tenant_a):
        person = Person.objects.get()
        for index in range(30):
            person_create(actor=Actor.cli(), fields={"external_id": f"x{index}", "name": f"Other {index}",
                                                        "department": "Sales"})  # fmt: skip
    assert person.attributes == {"cost_center": "R&D", "certified_on": "2024-02-01"} and person.locale == "ms"
    listing = client.get("/people/", {"q": "siti"}).content.decode()
    assert "Siti Aminah" in listing and "Other 1" not in listing
    assert "Siti Aminah" not in client.get("/people/", {"department": "Sales"}).content.decode()
    with django_assert_max_num_queries(15):
        client.get("/people/")
    page = client.get(f"/people/{person.id}/").content.decode()
    assert "emp-1" in page and "R&amp;D" in page and "No rewards sent to this person yet." in page
    edit = client.post(f"/people/{person.id}/edit/", {**FORM, "department": "Sales", "timezone": "Moon/Base"})
    assert edit.status_code == 422 and 'id="id_timezone_error"' in edit.content.decode()
    assert client.post(f"/people/{person.id}/edit/", {**FORM, "department": "Sales"}).status_code == 302
    assert client.post(f"/people/{person.id}/status", {"status": "left"}).status_code == 302
    with tenant_context(tenant_a):
        person.refresh_from_db()
    assert (person.department, person.status) == ("Sales", "left")
    assert "Mark as active again" in client.get(f"/people/{person.id}/").content.decode()


def test_import_with_preview(signed_in, tenant_a):
    client, _ = signed_in("admin")
    data = b"external_id,name,email,attributes.team\r\ne1,Ada,ada@example.com,blue\r\ne2,,b@example.com,red\r\n"
    upload = client.post("/people/import/", {"file": SimpleUploadedFile("hr.csv", data, content_type="text/csv")})
    assert upload.status_code == 302, upload.content.decode()[:2000]
    preview = client.get(upload["Location"]).content.decode()
    assert 'data-testid="creates">1<' in preview and "Required." in preview and "Import: add 1, update 0" in preview
    batch_id = upload["Location"].rstrip("/").split("/")[-1]
    assert client.post(f"/people/import/{batch_id}/confirm").status_code == 302
    with tenant_context(tenant_a):
        batch_process(batch_id=batch_id)
        assert list(Person.objects.values_list("name", "attributes")) == [("Ada", {"team": "blue"})]
    assert "Download results (CSV)" in client.get(upload["Location"]).content.decode()


def test_viewers_cannot_open_people(signed_in):
    client, _ = signed_in("viewer")
    assert client.get("/people/").status_code == 403
    assert client.post("/people/new/", FORM).status_code == 403
