"""Points from a CSV through the bulk machinery: a preview with per-row errors, one hold for the file's value,
awards in chunks whose holds are split out of it, a resent file refused; the books balance."""

from __future__ import annotations

from decimal import Decimal

from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from batches.processing import batch_process
from points.models import PointsAward
from testsupport.funds import balances
from testsupport.problems import assert_problem

from .conftest import make_person


def upload(api, text: str, **fields):
    file = SimpleUploadedFile("kudos.csv", text.encode(), content_type="text/csv")
    return api._client.post("/api/v1/points/awards/import", {"file": file, "program": "kudos", **fields})


def test_points_csv_preview_confirm_and_award(tenant_a, api_a, kudos, ana):
    make_person(tenant_a, "E-2", name="Bo Lim")
    csv = ("person_external_id,points,reason,external_id\n"
           "E-1,1500,Q4 launch,q4-1\nE-2,250,,\nnobody,10,,\nE-1,-5,,\nE-2,40,,q4-1\n")  # fmt: skip
    preview = upload(api_a, csv)
    assert preview.status_code == 201, preview.content
    body = preview.json()
    assert (body["rows"], body["valid_rows"], body["error_rows"]) == (5, 2, 3)
    assert body["total_cost"] == {"USD": "17.50"}
    confirmed = api_a.post(f"/api/v1/batches/{body['id']}/confirm", {})
    assert confirmed.status_code in (200, 202), confirmed.content
    with tenant_context(tenant_a):
        assert batch_process(batch_id=body["id"], max_seconds=30) == "done"
        awards = dict(PointsAward.objects.values_list("person__external_id", "points"))
        assert awards == {"E-1": 1500, "E-2": 250}
        assert balances("USD")[1] == Decimal("17.50")  # held for the points, nothing left on the batch hold
    assert api_a.get(f"/api/v1/people/{ana.id}/points").json()["programs"][0]["balance"] == 1500
    assert api_a.get(f"/api/v1/batches/{body['id']}").json()["status"] == "completed"
    assert_problem(upload(api_a, csv, dry_run="false"), 409)  # the same file again: refused, nobody twice
