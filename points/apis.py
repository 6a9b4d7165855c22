"""Points over the API: awards (idempotent by external_id), reversal, a person's balances and history, and
redemption of points for a reward (`/api/v1/points/…`, `/api/v1/people/{id}/points…`)."""

from __future__ import annotations

from datetime import date, datetime

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from api.params import choice_param
from api.views import TenantAPIView, TenantListAPIView
from batches.apis import BatchListCreateApi, BatchOutput, FormBoolean
from batches.models import BatchKind, BatchStatus
from batches.selectors import batch_list, batch_render
from batches.upload import batch_upload
from core.errors import ApplicationError
from core.money import format_amount, parse_amount, parse_currency
from orders.apis import OrderOutput, may_send
from orders.report_apis import ReportApi
from orders.reports import report_bounds, report_zone
from people.selectors import person_find, person_get
from programs.selectors import program_get

from .models import PointsAward, PointsTransaction
from .redemptions import points_redeem
from .selectors import person_points, person_points_history, points_report, points_report_table
from .services import award_render, person_balance, points_award, points_award_reverse


class AwardInput(serializers.Serializer):
    person_id = serializers.CharField(required=False, allow_blank=True)
    person_external_id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    program = serializers.CharField(max_length=60)
    points = serializers.JSONField(help_text="A whole number of points, 1 to 100,000,000.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    external_id = serializers.CharField(
        required=False, allow_blank=True, max_length=100,
        help_text="Your id for the award: the same id again returns the same award.",
    )  # fmt: skip


class AwardOutput(serializers.Serializer):
    id = serializers.UUIDField()
    external_id = serializers.CharField(allow_null=True)
    person_id = serializers.UUIDField(allow_null=True)
    program = serializers.CharField()
    points = serializers.IntegerField()
    remaining = serializers.IntegerField()
    reason = serializers.CharField()
    expires_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    balance = serializers.IntegerField(help_text="The person's balance in the program after the award.")


AWARD_EXAMPLE = {
    "id": "9b2f0c8e-3c1d-4a51-9d2e-2b7d8f1e6a10", "external_id": "kudos-2026-114", "person_id":
    "5f1c7c1e-0d7a-4a4b-8f8e-4f0c2a9b7e21", "program": "kudos", "points": 500, "remaining": 500,
    "reason": "Shipped the release", "expires_at": "2027-12-06T09:00:00Z", "created_at": "2026-12-06T09:00:00Z",
    "balance": 1250,
}  # fmt: skip


class AwardCreateApi(TenantAPIView):
    @extend_schema(
        operation_id="points_awards_create",
        summary="Award points to a person (holds the points' value in the program's funding currency)",
        request=AwardInput,
        responses={
            201: AwardOutput,
            200: OpenApiResponse(AwardOutput, description="The award with this external_id, made before"),
            402: OpenApiResponse(description="insufficient_funds: the points' value is not available to hold"),
            422: OpenApiResponse(description="validation_error / unknown_person"),
        },
        examples=[
            OpenApiExample("Award", value={"person_external_id": "E-114", "program": "kudos", "points": 500,
                           "reason": "Shipped the release", "external_id": "kudos-2026-114"}, request_only=True),
            OpenApiExample("Awarded", value=AWARD_EXAMPLE, response_only=True),
        ],
    )  # fmt: skip
    def post(self, request):
        data = AwardInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        person = person_find(person_id=values.get("person_id"), external_id=values.get("person_external_id"))
        program = program_get(slug=values["program"])
        award, created = points_award(
            program=program, person=person, points=values["points"], reason=values["reason"],
            external_id=values.get("external_id") or None, actor=self.actor,
        )  # fmt: skip
        body = award_render(award, balance=person_balance(program=award.program, person_id=award.person_id))
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ReverseInput(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)


class AwardReverseApi(TenantAPIView):
    @extend_schema(
        operation_id="points_awards_reverse",
        summary="Take back what is left of an award (spent points stay spent); releases its money",
        request=ReverseInput,
        responses={200: AwardOutput},
    )
    def post(self, request, award_id):
        data = ReverseInput(data=request.data)
        data.is_valid(raise_exception=True)
        if not PointsAward.objects.filter(pk=award_id).exists():
            from core.errors import NotFoundError

            raise NotFoundError("No such award.")
        award, reversed_points = points_award_reverse(
            award_id=award_id, reason=data.validated_data["reason"], actor=self.actor
        )
        body = award_render(award, balance=person_balance(program=award.program, person_id=award.person_id))
        return Response({**body, "points_reversed": reversed_points})


class ExpiringOutput(serializers.Serializer):
    award_id = serializers.UUIDField()
    points = serializers.IntegerField()
    expires_at = serializers.DateTimeField()


class ProgramPointsOutput(serializers.Serializer):
    program = serializers.CharField()
    name = serializers.CharField(help_text="What the program calls its points.")
    balance = serializers.IntegerField()
    value = serializers.DictField(help_text='{"amount": "12.50", "currency": "USD"}')
    expiring = ExpiringOutput(many=True, help_text="Points expiring within 30 days, soonest first.")


class PersonPointsOutput(serializers.Serializer):
    programs = ProgramPointsOutput(many=True)


class PersonPointsApi(TenantAPIView):
    @extend_schema(
        operation_id="people_points_retrieve",
        summary="A person's points: balance per program and what expires soon",
        responses={200: PersonPointsOutput},
        examples=[OpenApiExample("Points", response_only=True, value={"programs": [{
            "program": "kudos", "name": "Kudos", "balance": 1250, "value": {"amount": "12.50", "currency": "USD"},
            "expiring": [{"award_id": AWARD_EXAMPLE["id"], "points": 250, "expires_at": "2026-12-20T09:00:00Z"}],
        }]})],
    )  # fmt: skip
    def get(self, request, person_id):
        person = person_get(person_id=person_id)
        programs = [
            {
                "program": row.program.slug,
                "name": row.program.points_name,
                "balance": row.balance,
                "value": {
                    "amount": format_amount(row.value, row.program.points_currency),
                    "currency": row.program.points_currency,
                },
                "expiring": [
                    {"award_id": str(a.id), "points": a.remaining, "expires_at": a.expires_at.isoformat()}
                    for a in row.expiring
                    if a.expires_at
                ],
            }
            for row in person_points(person_id=person.pk)
        ]
        return Response({"programs": programs})


class HistoryOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField(help_text="award, redeem, expire or reverse")
    program = serializers.CharField(source="program.slug")
    points = serializers.SerializerMethodField(help_text="Signed: + awarded, - spent, expired or reversed.")
    reason = serializers.CharField()
    reference = serializers.CharField(help_text='"order:<id>" for a redemption')
    created_at = serializers.DateTimeField()

    def get_points(self, txn: PointsTransaction) -> int:
        return txn.points if txn.kind == "award" else -txn.points


class PersonPointsHistoryApi(TenantListAPIView):
    serializer_class = HistoryOutput

    @extend_schema(operation_id="people_points_history", summary="A person's points history, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        person = person_get(person_id=self.kwargs["person_id"])
        return person_points_history(person_id=person.pk)


class RedemptionInput(serializers.Serializer):
    program = serializers.CharField(max_length=60)
    product_id = serializers.CharField(required=False, allow_blank=True, max_length=100)
    sku = serializers.CharField(required=False, allow_blank=True, max_length=100)
    amount = serializers.CharField(max_length=40)
    currency = serializers.CharField(max_length=3, help_text="The currency of `amount` (the product's).")
    delivery_method = serializers.CharField(required=False, allow_blank=True, max_length=16)


class PersonPointsRedemptionApi(TenantAPIView):
    @extend_schema(
        operation_id="people_points_redeem",
        summary="Spend a person's points on a reward for them: an ordinary order, paid from the points' holds",
        request=RedemptionInput,
        responses={201: OrderOutput, 422: OpenApiResponse(description="insufficient_points / validation_error")},
        examples=[OpenApiExample("Redeem", request_only=True, value={
            "program": "kudos", "product_id": "0b6f…", "amount": "25.00", "currency": "USD",
            "delivery_method": "email"})],
    )  # fmt: skip
    def post(self, request, person_id):
        person = person_get(person_id=person_id)
        data = RedemptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        program = program_get(slug=values["program"])
        product_id = _product_id(values)
        currency = parse_currency(values["currency"])
        amount = parse_amount(values["amount"], currency)
        body, _, _ = points_redeem(
            program=program, person=person, product_id=product_id, amount=amount, currency=currency,
            delivery_method=values.get("delivery_method") or None, actor=self.actor,
            api_key_id=request.api_key.key_id, bearer=may_send(request),
        )  # fmt: skip
        return Response(body, status=status.HTTP_201_CREATED)


def _product_id(values: dict) -> str:
    """`product_id` or `sku`: the order planner takes either (catalog.selectors.product_get_orderable)."""
    product = values.get("product_id") or values.get("sku")
    if not product:
        message = "Name the product: product_id or sku."
        raise ApplicationError(message, code="validation_error", errors={"product_id": [message]})
    return str(product)


class PointsReportRowOutput(serializers.Serializer):
    program = serializers.CharField()
    name = serializers.CharField()
    currency = serializers.CharField()
    issued = serializers.IntegerField()
    redeemed = serializers.IntegerField()
    expired = serializers.IntegerField()
    reversed = serializers.IntegerField()
    outstanding = serializers.IntegerField(help_text="Points held by people now.")
    liability = serializers.CharField(help_text="The money held for the outstanding points, in `currency`.")


class PointsReportOutput(serializers.Serializer):
    results = PointsReportRowOutput(many=True)


class PointsReportApi(ReportApi):
    @extend_schema(
        operation_id="reports_points",
        summary="Points issued, redeemed, expired and reversed per program, and the outstanding liability",
        description="`from`/`to`: days (YYYY-MM-DD, the company's time zone, both included) or ISO 8601 instants "
        "(`to` excluded); without them, all time. `outstanding` and `liability` are as of now. "
        "`format=csv|xlsx` answers with the same figures as a file.",
        # Documented as days (what the portal sends); an ISO 8601 instant is accepted too, as the description says.
        parameters=[OpenApiParameter("from", OpenApiTypes.DATE), OpenApiParameter("to", OpenApiTypes.DATE),
                    OpenApiParameter("format", str, enum=["json", "csv", "xlsx"])],
        responses={200: PointsReportOutput},
        examples=[OpenApiExample("Report", response_only=True, value={"from": "2026-11-01", "to": "2026-11-30",
            "timezone": "UTC", "results": [{
            "program": "kudos", "name": "Kudos", "currency": "USD", "issued": 120000, "redeemed": 80000,
            "expired": 5000, "reversed": 1000, "outstanding": 34000, "liability": "340.00"}]})],
    )  # fmt: skip
    def get(self, request):
        self.check_format(request)
        window: dict[str, datetime] = {}
        shown: dict[str, str | None] = {"from": None, "to": None}
        for name, key in (("from", "since"), ("to", "until")):
            text = (request.query_params.get(name) or "").strip()
            if not text:
                continue
            try:
                day = date.fromisoformat(text) if len(text) == 10 else None
            except ValueError:
                day = None
            if day is not None:
                window[key] = report_bounds(day, day)[0 if name == "from" else 1]
                shown[name] = day.isoformat()
                continue
            try:
                window[key] = serializers.DateTimeField().to_internal_value(text)
            except serializers.ValidationError:
                raise ApplicationError(f"{name} must be a day (YYYY-MM-DD) or an ISO 8601 instant.",
                                       code="validation_error", errors={name: ["Bad date."]}) from None  # fmt: skip
            shown[name] = window[key].isoformat()
        rows = points_report(**window)
        for row in rows:
            row["liability"] = format_amount(row["liability"], row["currency"])
        report = {"from": shown["from"], "to": shown["to"], "timezone": report_zone().key, "results": rows}
        return self.respond(request, report=report, table=points_report_table(report), name="points")


class PointsImportInput(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, help_text="CSV: person_external_id, points, reason, external_id"
    )
    program = serializers.CharField(max_length=60)
    dry_run = FormBoolean(default=True, help_text="true (default): validate and preview only; false: also award")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class PointsImportApi(BatchListCreateApi):
    """GET lists points imports (batches of kind `points`); POST uploads one."""

    def get_queryset(self):
        return batch_list(status=choice_param(self.request, "status", BatchStatus.values), kind=BatchKind.POINTS)

    @extend_schema(operation_id="points_import_list", summary="List points award imports",
                   parameters=[OpenApiParameter("status", str, enum=BatchStatus.values)])  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="points_import",
        summary="Award points from a CSV (a bulk batch of kind `points`), with a dry-run preview",
        description="Columns `person_external_id`, `points`, optional `reason` and `external_id` (the award's "
        "idempotency key). The preview's `total_cost` is the points' value in the program's funding currency; "
        "confirming (POST /batches/{id}/confirm, or dry_run=false) holds it, and workers award the rows in chunks.",
        request={"multipart/form-data": PointsImportInput},
        responses={201: BatchOutput},
        examples=[OpenApiExample("Dry run", value={"file": "(kudos-q4.csv)", "program": "kudos", "dry_run": "true"},
                                 request_only=True)],
    )  # fmt: skip
    def post(self, request):
        serializer = PointsImportInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        upload = data["file"]
        batch = batch_upload(
            kind=BatchKind.POINTS, file=upload, file_name=upload.name or "", size=upload.size,
            dry_run=data["dry_run"], name=data.get("name", ""), program_slug=data["program"],
            api_key_id=request.api_key.key_id,
        )  # fmt: skip
        return Response(batch_render(batch), status=201)
