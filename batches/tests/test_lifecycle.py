"""The batch state machine: every status change goes through batches.lifecycle.batch_transition, checked against
BATCH_TRANSITIONS. Each move the services make (upload, confirm, chunks, finish, cancel) is in the table; a move
the table does not allow is refused and changes nothing; an unchanged status writes nothing."""

import io

import pytest
from django_tenants.utils import tenant_context

from audit.actors import Actor
from batches import lifecycle, processing, upload
from batches.approvals import batch_approve, batch_reject
from batches.lifecycle import batch_cancel, batch_confirm, batch_transition
from batches.models import BATCH_TRANSITIONS, Batch, BatchStatus
from batches.processing import batch_process, batch_process_chunk
from batches.upload import batch_upload
from catalog.models import Product
from core.errors import ApplicationError
from funds.selectors import ledger_invariant_violations
from tenants.policies import approval_policy_set
from testsupport.batches import csv_bytes, digital_rows

S = BatchStatus


def _file(shop, count: int, **extra) -> io.BytesIO:
    return io.BytesIO(csv_bytes(digital_rows(shop.coffee_usd, count, **extra)))


def _stored(batch) -> str:
    return Batch.objects.values_list("status", flat=True).get(pk=batch.pk)


def test_every_move_the_services_make_is_in_the_table(funded_a, shop, monkeypatch):
    moves: set[tuple[str, str]] = set()
    original = lifecycle.batch_transition

    def recording(*, batch, to, fields=()):
        before = batch.status
        result = original(batch=batch, to=to, fields=fields)
        if before != to:
            moves.add((before, to))
        return result

    for module in (lifecycle, processing, upload):  # each module calls it by the name it imported
        monkeypatch.setattr(module, "batch_transition", recording)

    with tenant_context(funded_a):
        preview = batch_upload(file=_file(shop, 2), dry_run=True)  # validating -> validated
        assert batch_cancel(batch_id=preview.id).status == S.CANCELED  # a preview dropped

        sent = batch_upload(file=_file(shop, 3, domain="a.example"), dry_run=True)
        batch_confirm(batch_id=sent.id)
        assert [batch_process_chunk(batch_id=sent.id, chunk=2) for _ in range(3)] == ["more", "more", "done"]
        assert _stored(sent) == S.COMPLETED

        stopped = batch_upload(file=_file(shop, 3, domain="b.example"), dry_run=False)  # uploaded and confirmed
        assert batch_process_chunk(batch_id=stopped.id, chunk=1) == "more"
        assert _stored(stopped) == S.PROCESSING
        assert batch_cancel(batch_id=stopped.id).status == S.CANCELED  # stopped mid-way

        unsent = batch_upload(file=_file(shop, 2, domain="c.example"), dry_run=False)
        assert batch_cancel(batch_id=unsent.id).status == S.CANCELED  # stopped before any chunk ran

        approval_policy_set(tenant=funded_a, policy={"thresholds": {"USD": "10"}}, actor=None)
        maker, checker = Actor.staff("maker@alpha.test"), Actor.staff("checker@alpha.test")
        waiting = batch_upload(file=_file(shop, 1, domain="e.example"), dry_run=True)
        assert batch_confirm(batch_id=waiting.id, actor=maker).status == S.PENDING_APPROVAL
        assert batch_approve(batch_id=waiting.id, actor=checker).status == S.CONFIRMED
        refused = batch_upload(file=_file(shop, 1, domain="f.example"), dry_run=True)
        batch_confirm(batch_id=refused.id, actor=maker)
        assert batch_reject(batch_id=refused.id, actor=checker).status == S.CANCELED
        approval_policy_set(tenant=funded_a, policy={}, actor=None)

        withdrawn = batch_upload(file=_file(shop, 2, domain="d.example"), dry_run=False)
        Product.objects.filter(pk=shop.coffee_usd.id).update(is_orderable=False)
        assert batch_process(batch_id=withdrawn.id) == "done"
        assert _stored(withdrawn) == S.FAILED  # no row could be sent
        assert ledger_invariant_violations() == []

    assert moves == {
        (S.VALIDATING, S.VALIDATED),
        (S.VALIDATED, S.CANCELED),
        (S.VALIDATED, S.CONFIRMED),
        (S.CONFIRMED, S.PROCESSING),
        (S.PROCESSING, S.COMPLETED),
        (S.PROCESSING, S.CANCELED),
        (S.CONFIRMED, S.CANCELED),
        (S.PROCESSING, S.FAILED),
        (S.VALIDATED, S.PENDING_APPROVAL),
        (S.PENDING_APPROVAL, S.CONFIRMED),
        (S.PENDING_APPROVAL, S.CANCELED),
    }
    assert all(to in BATCH_TRANSITIONS[before] for before, to in moves)


def test_the_table_names_every_status_and_finished_batches_stay_finished():
    assert set(BATCH_TRANSITIONS) == set(BatchStatus.values)
    assert all(to in BatchStatus.values for targets in BATCH_TRANSITIONS.values() for to in targets)
    assert BATCH_TRANSITIONS[S.COMPLETED] == BATCH_TRANSITIONS[S.FAILED] == BATCH_TRANSITIONS[S.CANCELED] == set()


def test_an_illegal_move_is_refused_and_changes_nothing(funded_a, shop):
    with tenant_context(funded_a):
        preview = batch_upload(file=_file(shop, 2), dry_run=True)
        with pytest.raises(ApplicationError) as refused:
            batch_transition(batch=Batch.objects.get(pk=preview.id), to=S.PROCESSING, fields=["rows_done"])
        assert (refused.value.code, refused.value.status) == ("invalid_state", 409)
        assert _stored(preview) == S.VALIDATED

        done = batch_upload(file=_file(shop, 1, domain="a.example"), dry_run=False)
        assert batch_process(batch_id=done.id) == "done"
        for to in (S.CONFIRMED, S.PROCESSING, S.CANCELED, S.VALIDATED):
            with pytest.raises(ApplicationError, match="A completed batch cannot become"):
                batch_transition(batch=Batch.objects.get(pk=done.id), to=to)
        assert _stored(done) == S.COMPLETED
        with pytest.raises(ApplicationError, match="cannot be canceled"):  # what the API answers with 409
            batch_cancel(batch_id=done.id)
        assert _stored(done) == S.COMPLETED and ledger_invariant_violations() == []


def test_an_unchanged_status_writes_nothing(funded_a, shop, django_assert_num_queries):
    with tenant_context(funded_a):
        preview = Batch.objects.get(pk=batch_upload(file=_file(shop, 1), dry_run=True).id)
        with django_assert_num_queries(0):
            assert batch_transition(batch=preview, to=S.VALIDATED) is preview
