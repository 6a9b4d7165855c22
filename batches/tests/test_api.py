"""Bulk CSV over the API: template, validation preview, refused files, confirm, CSV exports, isolation."""

import re
from decimal import Decimal

import pytest
from django_tenants.utils import tenant_context

from batches.csvfile import ALL_COLUMNS
from batches.models import Batch, BatchRow, BatchRowError
from batches.processing import batch_process
from batches.selectors import RESULT_HEADER
from funds.models import Hold, LedgerTransaction
from funds.selectors import balance_get, ledger_invariant_violations
from funds.services import funds_deposit
from orders.models import Order, Reward
from testsupport.batches import csv_bytes, digital_rows, upload
from testsupport.exports import csv_export_rows


def _csv(response) -> list[list[str]]:
    return csv_export_rows(response)


def _named_cells(error_file: list[list[str]]) -> set[tuple[int, str]]:
    """(row, column) of every problem the error file's `error` cells name ("row 7: amount: …; currency: …")."""
    named = set()
    for line in error_file[1:]:
        where, _, problems = line[-1].partition(": ")
        for problem in re.split(r"; (?=[a-z_.]+: )", problems):  # a message may hold "; " itself
            named.add((int(where.removeprefix("row ")), problem.split(":", 1)[0]))
    return named


def _nothing_stored(tenant) -> bool:
    with tenant_context(tenant):
        return not (Batch.objects.exists() or BatchRow.objects.exists() or BatchRowError.objects.exists())


def test_template_lists_every_column_and_parses_as_a_preview(api_a, shop):
    response = api_a.get("/api/v1/batches/template.csv")
    rows = _csv(response)
    assert rows[0] == ALL_COLUMNS and len(rows) == 3
    assert "+14155550123" in rows[2]  # a phone number is left as it is: a number is not a formula


def test_thousand_rows_with_three_bad_ones_preview_exactly_those_errors(api_a, funded_a, shop):
    rows = digital_rows(shop.coffee_usd, 1000, amount="25")
    rows[9]["recipient_email"] = "not-an-email"  # spreadsheet row 11
    rows[499]["amount"] = "30"  # not a denomination: row 501
    rows[997]["recipient_name"] = '=HYPERLINK("http://x","y")'  # row 999
    response = upload(api_a, csv_bytes(rows), dry_run=True, name="December")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "validated"
    assert (body["rows"], body["valid_rows"], body["error_rows"]) == (1000, 997, 3)
    assert body["total_cost"] == {"USD": "24925.00"}
    assert body["available_funds"] == {"USD": "1000.00"} and body["funds_sufficient"] is False
    assert body["progress"] == {"done": 0, "total": 997, "failed": 0, "percent": 0}
    errors = _csv(api_a.get(body["errors_url"]))
    assert errors[0] == [*ALL_COLUMNS, "error"]  # the file's own header: fixed, it uploads again as it is
    assert [line[-1].split(":")[:2] for line in errors[1:]] == [
        ["row 11", " recipient_email"],
        ["row 501", " amount"],
        ["row 999", " recipient_name"],
    ]
    assert errors[1][1] == "not-an-email" and errors[2][ALL_COLUMNS.index("amount")] == "30"
    assert "formula" in errors[3][-1] and "'" not in errors[3][-1]  # readable in the errors CSV, not mangled by it
    with tenant_context(funded_a):
        assert BatchRow.objects.count() == 997
        assert Order.objects.count() == 0 and Hold.objects.count() == 0  # a preview holds and sends nothing


def _refused(response, code: str, status: int = 422) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code and body["detail"]
    return body


@pytest.mark.parametrize(
    ("data", "code", "needle"),
    [
        ("recipient_name,product_id,amount\r\nJosé,{pid},10\r\n".encode("latin-1"), "invalid_encoding", "Line 2"),
        (b"recipient_name,amount\r\nAda,10\r\n", "missing_columns", "product_id"),
        (b"recipient_name,product_id,amount,colour\r\nAda,{pid},10,red\r\n", "unknown_columns", "colour"),
        (b"recipient_name,product_id,amount\r\n", "empty_file", "no rows"),
        (b"", "empty_file", "empty"),
        (b'recipient_name,product_id,amount\r\n"Ada' + b"x" * 40_000 + b'",{pid},10\r\n', "row_too_large", "Line 2"),
        (b'recipient_name,product_id,amount\r\n"=HYPERLINK(""http://x"",""y"")",{pid},10\r\n', "no_valid_rows",
         "row"),
        (b'recipient_name,product_id,amount\r\n"Ada,{pid},10\r\n', "malformed_csv", "Line"),
    ],
    ids=["encoding", "missing-columns", "unknown-column", "no-rows", "zero-bytes", "huge-row", "formula", "quote"],
)  # fmt: skip
def test_bad_files_are_refused_clearly_and_store_nothing(api_a, funded_a, shop, data, code, needle):
    data = data.replace(b"{pid}", str(shop.coffee_usd.id).encode())
    body = _refused(upload(api_a, data), code)
    assert needle in body["detail"]
    if code == "no_valid_rows":
        assert list(body["errors"]) == ["rows[2].recipient_name"]
    assert _nothing_stored(funded_a)


def test_bom_and_blank_lines_are_accepted(api_a, funded_a, shop):
    data = csv_bytes(digital_rows(shop.coffee_usd, 2), bom=True).replace(b"\r\n", b"\r\n\r\n", 1)
    body = upload(api_a, data).json()
    assert (body["rows"], body["valid_rows"]) == (2, 2)


def test_a_file_over_the_size_limit_is_refused(api_a, funded_a, shop, settings):
    settings.BATCH_MAX_FILE_BYTES = 1000
    _refused(upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 50))), "file_too_large", status=413)
    settings.BATCH_MAX_FILE_BYTES = 10_000_000
    settings.BATCH_MAX_ROWS = 10
    _refused(upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 11))), "too_many_rows")
    assert _nothing_stored(funded_a)


def test_row_errors_cover_catalogue_phone_date_and_cell_length(api_a, funded_a, shop):
    base = digital_rows(shop.coffee_usd, 1)[0]
    rows = [
        {**base, "product_id": "0b7c1e2a-0000-4000-8000-000000000000"},  # 2: unknown product
        {**base, "currency": "EUR"},  # 3
        {**base, "delivery_method": "sms", "recipient_phone": "0415555"},  # 4: not E.164
        {**base, "deliver_at": "2001-01-01T00:00:00Z"},  # 5: in the past
        {**base, "deliver_at": "2099-01-01T00:00:00"},  # 6: no time zone
        {**base, "message": "x" * 2001},  # 7
        {**base, "recipient_phone": "+14155550123", "delivery_method": "sms"},  # 8: fine
        {**base, "product_id": str(shop.hamper_usd.id), "amount": "50", "delivery_method": ""},  # 9: no address
        {**base},  # 10: repeats row 8's external_id
        {**base, "sender_name": "@boss"},  # 11
    ]
    for number, row in enumerate(rows, start=2):
        row["external_id"] = f"x-{number}"
    rows[8]["external_id"] = "x-8"  # row 10 repeats row 8's external_id
    response = upload(api_a, csv_bytes(rows))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["valid_rows"], body["error_rows"]) == (1, 9)
    errors = _named_cells(_csv(api_a.get(body["errors_url"])))
    assert {(2, "product_id"), (3, "currency"), (4, "recipient_phone"), (5, "deliver_at"), (6, "deliver_at"),
            (7, "message"), (9, "address_line1"), (9, "shipping_method_id"), (10, "external_id"),
            (11, "sender_name")} <= errors  # fmt: skip
    assert not any(row == 8 for row, _ in errors)


def test_physical_and_cross_currency_rows_are_costed_in_the_funding_currency(api_a, funded_a, shop):
    rows = [
        {"recipient_name": "Grace", "recipient_email": "g@example.com", "product_id": str(shop.hamper_usd.id),
         "amount": "50", "address_line1": "1 Navy Way", "city": "Arlington", "state": "VA", "postal_code": "22202",
         "country": "US", "shipping_method_id": str(shop.ground_us.id)},
        {"recipient_name": "Ada", "recipient_email": "a@example.com", "product_id": str(shop.books_gbp.id),
         "amount": "20", "country": "GB"},
    ]  # fmt: skip
    body = upload(api_a, csv_bytes(rows)).json()
    assert body["valid_rows"] == 2, _csv(api_a.get(body["errors_url"]))
    # 50 + 8 shipping; 20 GBP at 1.25 = 25 USD + 1 % FX fee 0.25
    assert body["total_cost"] == {"USD": "83.25"}
    confirmed = api_a.post(f"/api/v1/batches/{body['id']}/confirm")
    assert confirmed.status_code == 202
    with tenant_context(funded_a):
        assert batch_process(batch_id=body["id"]) == "done"
        rewards = {r.product_id: r for r in Reward.objects.select_related("order", "shipment")}
        assert rewards[shop.hamper_usd.id].order.type == "physical"
        assert rewards[shop.hamper_usd.id].shipment.address["postal_code"] == "22202"
        assert rewards[shop.books_gbp.id].charge_amount == Decimal("25.25")
        assert balance_get(currency="USD").available == Decimal("1000.00") - Decimal("83.25")
        assert ledger_invariant_violations() == []


def test_confirm_with_insufficient_funds_is_402_and_changes_nothing(api_a, funded_a, shop):
    body = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 101))).json()  # 1010.00 > 1000.00
    with tenant_context(funded_a):
        before = (LedgerTransaction.objects.count(), Hold.objects.count())
    _refused(api_a.post(f"/api/v1/batches/{body['id']}/confirm"), "insufficient_funds", status=402)
    assert api_a.get(f"/api/v1/batches/{body['id']}").json()["status"] == "validated"
    with tenant_context(funded_a):
        assert (LedgerTransaction.objects.count(), Hold.objects.count()) == before
        assert balance_get(currency="USD").available == Decimal("1000.00")
    # dry_run=false with the same shortfall: refused, and not even the preview is kept
    _refused(upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 101)), dry_run=False), "insufficient_funds", 402)
    with tenant_context(funded_a):
        assert Batch.objects.count() == 1


def test_confirm_processes_every_row_once_and_results_csv_neutralises_formulas(api_a, funded_a, shop):
    rows = digital_rows(shop.coffee_usd, 30)
    rows[4]["external_id"] = "@SUM(A1)"  # formula-like cells are refused on the way in...
    rows[5]["external_id"] = "ok-5"
    rows[9]["external_id"] = "hr-11;=1+1"  # one cell here, but `=1+1` is a cell of its own in a `;` locale
    body = upload(api_a, csv_bytes(rows), dry_run=False).json()
    assert body["status"] == "confirmed" and body["valid_rows"] == 29
    with tenant_context(funded_a):
        assert balance_get(currency="USD").held == Decimal("290.00")
        assert batch_process(batch_id=body["id"]) == "done"
        assert batch_process(batch_id=body["id"]) == "idle"  # a second run changes nothing
        assert Reward.objects.count() == 29
        assert balance_get(currency="USD").held == Decimal("290.00")  # now held per reward
        assert Hold.objects.get(reference=f"batch:{body['id']}").status == "released"
        assert ledger_invariant_violations() == []
        # ...and anything stored that still looks like a formula is neutralised on the way out
        BatchRow.objects.filter(batch_id=body["id"], row_number=8).update(external_id="=cmd|'/c calc'!A1")
    done = api_a.get(f"/api/v1/batches/{body['id']}").json()
    assert done["status"] == "completed" and done["progress"]["percent"] == 100
    results = _csv(api_a.get(done["results_url"]))
    assert results[0] == RESULT_HEADER
    assert len(results) == 30 and {r[6] for r in results[1:]} == {"pending"}
    assert results[5][:4] == ["7", "Recipient 5", "r5@example.com", "ok-5"]  # row 6 was refused
    assert results[6][3] == "'=cmd|'/c calc'!A1"
    assert {r[0]: r[3] for r in results[1:]}["11"] == "hr-11;'=1+1"
    errors = _csv(api_a.get(done["errors_url"]))
    assert errors[1][-1].startswith("row 6: external_id:")


def test_reupload_of_a_sent_file_is_refused_unless_forced(api_a, funded_a, shop):
    data = csv_bytes(digital_rows(shop.coffee_usd, 3))
    first = upload(api_a, data, dry_run=False).json()
    again = upload(api_a, data)
    body = _refused(again, "duplicate_file", status=409)
    assert first["id"] in body["detail"]
    forced = upload(api_a, data, force=True)
    assert forced.status_code == 201 and forced.json()["duplicate_of"] == first["id"]
    # two previews of one file: the second warns; confirming the second once the first is sent is refused
    preview_one = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 2))).json()
    preview_two = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 2))).json()
    assert preview_two["duplicate_of"] == preview_one["id"]
    assert api_a.post(f"/api/v1/batches/{preview_one['id']}/confirm").status_code == 202
    _refused(api_a.post(f"/api/v1/batches/{preview_two['id']}/confirm"), "duplicate_file", status=409)
    assert api_a.post(f"/api/v1/batches/{preview_two['id']}/confirm", {"force": True}).status_code == 202


def test_cancel_releases_what_was_not_sent(api_a, funded_a, shop):
    body = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 5)), dry_run=False).json()
    response = api_a.post(f"/api/v1/batches/{body['id']}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "canceled"
    with tenant_context(funded_a):
        assert batch_process(batch_id=body["id"]) == "idle"
        assert Reward.objects.count() == 0
        assert balance_get(currency="USD").available == Decimal("1000.00")
        assert ledger_invariant_violations() == []
    assert api_a.post(f"/api/v1/batches/{body['id']}/confirm").status_code == 409


def test_tenant_b_cannot_see_or_touch_tenant_a_batches(api_a, api_b, funded_a, shop):
    body = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 2))).json()
    for path in ("", "/errors.csv", "/results.csv"):
        assert api_b.get(f"/api/v1/batches/{body['id']}{path}").status_code == 404
    assert api_b.post(f"/api/v1/batches/{body['id']}/confirm").status_code == 404
    assert api_b.post(f"/api/v1/batches/{body['id']}/cancel").status_code == 404
    assert api_b.get("/api/v1/batches").json()["results"] == []
    assert [b["id"] for b in api_a.get("/api/v1/batches").json()["results"]] == [body["id"]]


def test_list_is_paginated_with_a_query_budget(api_a, funded_a, shop, django_assert_max_num_queries):
    for n in range(3):
        upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 1, domain=f"d{n}.example")))
    with django_assert_max_num_queries(8):
        page = api_a.get("/api/v1/batches", {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert api_a.get("/api/v1/batches", {"status": "validated"}).json()["results"]
    assert api_a.get("/api/v1/batches", {"status": "nope"}).status_code == 422


def test_read_only_key_cannot_upload(make_api_client, tenant_a, shop):
    reader = make_api_client(tenant_a, scopes=["read"])
    assert upload(reader, csv_bytes(digital_rows(shop.coffee_usd, 1))).status_code == 403
    assert reader.get("/api/v1/batches/template.csv").status_code == 200


def test_sandbox_key_uploads_into_the_sandbox_twin(make_api_client, tenant_a, shop):
    sandbox = make_api_client(tenant_a.sandbox)
    with tenant_context(tenant_a.sandbox):
        funds_deposit(currency="USD", amount="100.00")
    body = upload(sandbox, csv_bytes(digital_rows(shop.coffee_usd, 2))).json()
    with tenant_context(tenant_a):
        assert not Batch.objects.filter(pk=body["id"]).exists()
    with tenant_context(tenant_a.sandbox):
        assert Batch.objects.filter(pk=body["id"]).exists()


def test_control_characters_are_row_errors_not_stranded_rewards(api_a, funded_a, shop):
    base = digital_rows(shop.coffee_usd, 1)[0]
    rows = [
        {**base, "sender_name": "Bob\r\nBcc: x@evil.example", "external_id": "cc-2"},
        {**base, "recipient_name": "Ada\u202eecalevoL", "external_id": "cc-3"},
        {**base, "message": "Thanks!\nSee you\x1b[2J", "external_id": "cc-4"},
        {**base, "message": "Thanks!\nSee you Monday.", "external_id": "cc-5"},  # line breaks are fine
    ]
    body = upload(api_a, csv_bytes(rows)).json()
    assert (body["valid_rows"], body["error_rows"]) == (1, 3)
    errors = _named_cells(_csv(api_a.get(body["errors_url"])))
    assert errors == {(2, "sender_name"), (3, "recipient_name"), (4, "message")}


def test_amounts_must_be_written_with_ascii_digits(api_a, funded_a, shop):
    base = digital_rows(shop.coffee_usd, 1)[0]
    rows = [{**base, "amount": amount, "external_id": f"amt-{n}"} for n, amount in enumerate(("٢٥", "1e1", "25"))]
    body = upload(api_a, csv_bytes(rows)).json()
    assert (body["valid_rows"], body["error_rows"]) == (1, 2)
    error_file = _csv(api_a.get(body["errors_url"]))
    assert _named_cells(error_file) == {(2, "amount"), (3, "amount")} and "digits" in error_file[1][-1]


def test_delivery_progress_shows_rewards_reaching_their_recipients(
    api_a, funded_a, shop, django_assert_max_num_queries
):
    from fulfillment.drain import fulfil_drain

    preview = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 6))).json()
    assert preview["delivery"] is None  # nothing is sent before the batch is confirmed
    body = upload(api_a, csv_bytes(digital_rows(shop.coffee_usd, 5, domain="sent.example")), dry_run=False).json()
    with tenant_context(funded_a):
        batch_process(batch_id=body["id"])
        Reward.objects.filter(pk=Reward.objects.order_by("pk").values("pk")[:1]).update(status="canceled")
    waiting = api_a.get(f"/api/v1/batches/{body['id']}").json()["delivery"]
    assert waiting == {"total": 5, "delivered": 0, "failed": 0, "canceled": 1, "pending": 4, "percent": 20,
                       "eta_seconds": None}  # fmt: skip
    with tenant_context(funded_a):
        fulfil_drain()
    done = api_a.get(f"/api/v1/batches/{body['id']}").json()["delivery"]
    assert done == {"total": 5, "delivered": 4, "failed": 0, "canceled": 1, "pending": 0, "percent": 100,
                    "eta_seconds": 0}  # fmt: skip
    with django_assert_max_num_queries(9):  # one query for the page's deliveries, however many batches
        page = api_a.get("/api/v1/batches").json()["results"]
    assert {b["id"]: b["delivery"] for b in page} == {preview["id"]: None, body["id"]: done}


def test_rows_name_the_recipients_language_and_claim_by_in_the_companys_zone(api_a, funded_a, shop):
    from datetime import UTC, datetime

    from audit.actors import Actor
    from people.services import person_create
    from tenants.tenant_settings import tenant_settings_update

    tenant_settings_update(tenant=funded_a, changes={"timezone": "Asia/Kuala_Lumpur", "default_locale": "ms"},
                           actor=None)  # fmt: skip
    with tenant_context(funded_a):
        person_create(actor=Actor.cli(), fields={"external_id": "emp-7", "name": "Siti", "email": "siti@example.com",
                                                 "locale": "en"})  # fmt: skip
    rows = digital_rows(shop.coffee_usd, 7, delivery_method="link")
    rows[6] = {**rows[6], "recipient_name": "", "recipient_email": "", "person_external_id": "emp-7"}
    rows[0].update(locale="en", claim_by="2030-01-31T18:00")  # no offset: 18:00 in Kuala Lumpur (UTC+8)
    rows[1].update(claim_by="2030-02-01")  # a date: the whole of that day there
    rows[2].update(claim_by="2030-02-01T18:00:00Z")
    rows[3]["locale"] = "xx"
    rows[4]["claim_by"] = "2001-01-01"
    rows[5]["claim_by"] = "next week"
    body = upload(api_a, csv_bytes(rows), dry_run=False).json()

    assert body["valid_rows"] == 4
    assert _named_cells(_csv(api_a.get(body["errors_url"]))) == {(5, "locale"), (6, "claim_by"), (7, "claim_by")}
    with tenant_context(funded_a):
        assert batch_process(batch_id=body["id"]) == "done"
        rewards = {r.external_id: r for r in Reward.objects.all()}
    assert (rewards["ext-0"].locale, rewards["ext-1"].locale) == ("en", "ms")  # else the company's default
    assert rewards["ext-6"].locale == "en"  # a person's own language, as an order naming them gets
    assert rewards["ext-0"].claim_expires_at == datetime(2030, 1, 31, 10, 0, tzinfo=UTC)
    assert rewards["ext-1"].claim_expires_at == datetime(2030, 2, 1, 15, 59, 59, tzinfo=UTC)
    assert rewards["ext-2"].claim_expires_at == datetime(2030, 2, 1, 18, 0, tzinfo=UTC)
