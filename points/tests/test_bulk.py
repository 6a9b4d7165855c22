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


def test_each_bulk_award_announces_itself_once_with_the_balance_after_it(tenant_a, api_a, kudos, ana):
    from webhooks.models import Event

    make_person(tenant_a, "E-2", name="Bo Lim")
    csv = "person_external_id,points,reason,external_id\nE-1,100,<b>Q4</b>,ev-1\nE-2,250,,\nE-1,50,,ev-3\n"
    body = upload(api_a, csv, dry_run="false").json()
    with tenant_context(tenant_a):
        assert batch_process(batch_id=body["id"], max_seconds=30) == "done"
        assert batch_process(batch_id=body["id"], max_seconds=30) == "idle"  # a second run emits nothing
        events = [e.data for e in Event.objects.filter(type="points.awarded").order_by("created_at", "id")]
        awards = {str(a.id): a for a in PointsAward.objects.all()}
    assert sorted((e["external_id"], e["points"], e["balance"]) for e in events) == [
        (f"batch:{body['id']}:3", 250, 250), ("ev-1", 100, 100), ("ev-3", 50, 150)]  # fmt: skip
    assert {e["id"] for e in events} == set(awards) and all(e["program"] == "kudos" for e in events)
    assert [e["reason"] for e in events if e["external_id"] == "ev-1"] == ["<b>Q4</b>"]  # data, escaped by readers
    listed = api_a.get("/api/v1/events", {"type": "points.awarded"}).json()["results"]
    assert len(listed) == 3
    # The same awards again in a new file (force): their rows fail as already awarded and announce nothing.
    again = upload(api_a, csv.replace("E-2,250,,\n", ""), dry_run="false", force="true").json()
    with tenant_context(tenant_a):
        assert batch_process(batch_id=again["id"], max_seconds=30) == "done"
        assert Event.objects.filter(type="points.awarded").count() == 3


def test_a_points_file_worth_the_approval_threshold_waits_with_its_value_held(
    tenant_a, api_a, kudos, ana, make_api_client
):
    from batches.models import Batch
    from tenants.policies import approval_policy_set

    approval_policy_set(tenant=tenant_a, policy={"thresholds": {"USD": "20.00"}}, actor=None)
    checker = make_api_client(tenant_a, scopes=["approve"])
    small = upload(api_a, "person_external_id,points\nE-1,500\n", dry_run="false")  # 5.00 USD: under it
    assert small.status_code == 201 and small.json()["status"] == "confirmed"
    big = upload(api_a, "person_external_id,points,external_id\nE-1,2500,big-1\n", dry_run="false").json()
    assert big["status"] == "pending_approval" and big["approval"]["status"] == "pending"
    with tenant_context(tenant_a):
        assert balances("USD")[1] == Decimal("30.00")  # both files' value held; nothing awarded from the big one
        assert batch_process(batch_id=big["id"]) == "idle"
    assert_problem(api_a.post(f"/api/v1/batches/{big['id']}/approve"), 403, "forbidden")
    rejected = checker.post(f"/api/v1/batches/{big['id']}/reject", {"reason": "Too generous"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "canceled"
    with tenant_context(tenant_a):
        assert balances("USD")[1] == Decimal("5.00")  # the big file's 25.00 released
        assert not PointsAward.objects.filter(external_id="big-1").exists()
    again = upload(api_a, "person_external_id,points,external_id\nE-1,2500,big-2\n", dry_run="false").json()
    approved = checker.post(f"/api/v1/batches/{again['id']}/approve")
    assert approved.status_code == 200 and approved.json()["status"] == "confirmed", approved.content
    with tenant_context(tenant_a):
        assert batch_process(batch_id=again["id"]) == "done"
        assert PointsAward.objects.get(external_id="big-2").points == 2500
        assert Batch.objects.get(pk=again["id"]).approval_status == "approved"


def test_a_negative_number_of_points_gets_one_error_that_says_what_to_write(tenant_a, api_a, kudos, ana):
    """Review: "-50" was told "Cells may not begin with a formula character (= + - @)" as well as the range."""
    preview = upload(api_a, "person_external_id,points,reason,external_id\nE-1,10,,n0\nE-1,-50,Oops,n1\nE-1,=1+1,,n2\n")
    assert preview.status_code == 201, preview.content
    response = api_a.get(f"/api/v1/batches/{preview.json()['id']}/errors.csv")
    errors = b"".join(response.streaming_content).decode()
    lines = errors.strip().splitlines()
    assert len(lines) == 3, errors
    for line in lines[1:]:
        assert "points: A whole number of points from 1 to 100000000." in line, line
        assert "formula" not in line, line
