"""Points from a CSV in the portal: upload → preview (points, their value, every bad row) → confirm → awarded, or
held for a second person's approval when the file's value reaches the policy; a discarded preview awards nothing;
another tenant's file is a 404."""

from __future__ import annotations

from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from batches.processing import batch_process
from funds.selectors import ledger_invariant_violations
from points.models import PointsAward
from points.selectors import points_invariant_violations
from points.tests.conftest import KUDOS, make_person
from programs.services import program_create
from tenants.policies import approval_policy_set
from testsupport.funds import balances

CSV = (
    "person_external_id,points,reason,external_id\n"
    "E-1,1500,<script>alert(1)</script> launch,q4-1\nE-2,250,,\nnobody,10,,\nE-1,-5,,\n=cmd(),40,,\n"
)


def _upload(client, text: str = CSV, **fields):
    file = SimpleUploadedFile("kudos-q4.csv", text.encode(), content_type="text/csv")
    return client.post("/points/import/", {"program": "kudos", "file": file, **fields})


def test_upload_preview_errors_and_confirm(signed_in, funded_a, tenant_a, tenant_b):
    with tenant_context(tenant_a):
        program_create(slug="kudos", name="Kudos", points=KUDOS)
    make_person(tenant_a, "E-1", name="Ana Tan")
    make_person(tenant_a, "E-2", name="Bo Lim")
    client, _ = signed_in("manager")
    assert "Award from a CSV file" in client.get("/points/").content.decode()
    assert "person_external_id, points, reason, external_id" in client.get("/points/import/").content.decode()
    template = client.get("/points/import/template.csv")
    assert template.content.decode().startswith('"person_external_id","points"')

    uploaded = _upload(client)
    assert uploaded.status_code == 302, uploaded.content
    preview_url = uploaded["Location"]
    page = client.get(preview_url).content.decode()
    assert 'data-testid="valid-rows">2<' in page and 'data-testid="error-rows">3<' in page
    assert 'data-testid="points-total">1750<' in page and 'data-testid="points-value">17.50 USD<' in page
    assert "No active person has this id." in page and "formula character" in page
    assert "Award 1750 Kudos (hold 17.50 USD)" in page
    with tenant_context(tenant_a):
        assert balances("USD")[1] == 0  # a preview holds nothing
    batch_id = preview_url.rstrip("/").rsplit("/", 1)[1]
    assert client.post(f"/points/import/{batch_id}/confirm").status_code == 302
    with tenant_context(tenant_a):
        assert balances("USD")[1] == Decimal("17.50")
        assert batch_process(batch_id=batch_id) == "done"
        assert dict(PointsAward.objects.values_list("person__external_id", "points")) == {"E-1": 1500, "E-2": 250}
    done = client.get(preview_url).content.decode()
    assert "100 %" in done and "See the awards" in done
    assert "&lt;script&gt;alert(1)&lt;/script&gt; launch" in client.get("/points/").content.decode()

    again = _upload(client)  # the same file again: refused at the upload, next to the file field
    assert again.status_code == 422 and "already sent as batch" in again.content.decode()
    with tenant_context(tenant_a):
        assert PointsAward.objects.count() == 2
        assert ledger_invariant_violations() == [] and points_invariant_violations() == []

    from testsupport.portal import make_staff, portal_client, sign_in

    other = portal_client(tenant_b)
    sign_in(other, make_staff(tenant_b, "admin@beta.test").email)
    assert other.get(preview_url).status_code == 404
    assert other.post(f"/points/import/{batch_id}/confirm").status_code == 404


def test_a_file_worth_the_threshold_waits_for_someone_else(signed_in, funded_a, tenant_a):
    with tenant_context(tenant_a):
        program_create(slug="kudos", name="Kudos", points=KUDOS)
    approval_policy_set(tenant=tenant_a, policy={"thresholds": {"USD": "10.00"}}, actor=None)
    make_person(tenant_a, "E-1", name="Ana Tan")
    maker, _ = signed_in("manager")
    url = _upload(maker, "person_external_id,points\nE-1,1500\n")["Location"]
    batch_id = url.rstrip("/").rsplit("/", 1)[1]
    page = maker.post(f"/points/import/{batch_id}/confirm", follow=True).content.decode()
    assert "wait for approval by someone else" in page and 'data-testid="points-import-waiting"' in page
    with tenant_context(tenant_a):
        assert balances("USD")[1] == Decimal("15.00") and not PointsAward.objects.exists()
    other = _upload(maker, "person_external_id,points\nE-1,100\n")["Location"]
    other_id = other.rstrip("/").rsplit("/", 1)[1]
    assert maker.post(f"/points/import/{other_id}/discard")["Location"] == "/points/import/"
    assert (
        "Only a preview can be discarded."
        in maker.post(f"/points/import/{batch_id}/discard", follow=True).content.decode()
    )
    with tenant_context(tenant_a):
        assert balances("USD")[1] == Decimal("15.00")  # the discarded preview held nothing
    checker, _ = signed_in("finance")
    queue = checker.get("/approvals/").content.decode()
    assert "Points file “kudos-q4.csv”, 1 award" in queue and f"/points/import/{batch_id}/" in queue
    assert checker.get(f"/points/import/{batch_id}/").status_code in (200, 403)
