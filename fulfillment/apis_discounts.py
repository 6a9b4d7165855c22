"""Discount redemption reports (`POST /api/v1/discounts/redemptions`): the merchant's partner key only."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from api.permissions import HasTenantCredential
from api.views import TenantAPIView
from core.errors import ApplicationError
from core.money import parse_amount, parse_currency
from orders.report_apis import PERIOD_PARAMETERS, REPORT_RESPONSES, ReportApi
from orders.reports import report_period

from .discount_reports import DISCOUNT_GROUPS, discount_report, discount_report_table
from .discounts import discount_redemption_render, discount_redemption_report


class DiscountPartnerOnly(BasePermission):
    """Redemption reports: only a merchant partner key (`discounts:report`), whatever scopes a tenant key has."""

    partner_only = True  # tests that walk the URLconf use a partner key on these routes
    partner_scope = "discounts:report"
    message = (
        "Discount redemptions are reported by the merchant, with a partner key the platform operator issues "
        "(scope discounts:report); tenant API keys cannot report them."
    )

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "api_key", None)
        return key is not None and key.reports_discounts


class RedemptionInput(serializers.Serializer):
    code = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    reward_id = serializers.UUIDField(required=False, allow_null=True, default=None)
    order_amount = serializers.CharField(max_length=40, required=False, allow_null=True, default=None)
    order_currency = serializers.CharField(max_length=3, required=False, allow_blank=True, default="")
    redeemed_at = serializers.DateTimeField(required=False, allow_null=True, default=None, help_text="ISO 8601")


class RedemptionOutput(serializers.Serializer):
    reward_id = serializers.UUIDField()
    reference = serializers.CharField()
    code_last4 = serializers.CharField()
    status = serializers.CharField()
    order_amount = serializers.CharField(allow_null=True)
    order_currency = serializers.CharField(allow_null=True)
    redeemed_at = serializers.DateTimeField()
    reported_at = serializers.DateTimeField()


REDEMPTION_EXAMPLE = {
    "reward_id": "0e9c1a2b-7d4f-4c3e-8b2a-1f0e9d8c7b6a",
    "reference": "RW-7K3Q-92",
    "code_last4": "X3WA",
    "status": "redeemed",
    "order_amount": "84.50",
    "order_currency": "MYR",
    "redeemed_at": "2026-12-06T14:03:00Z",
    "reported_at": "2026-12-06T14:03:02Z",
}


class DiscountRedemptionApi(TenantAPIView):
    permission_classes = [HasTenantCredential, DiscountPartnerOnly]

    @extend_schema(
        operation_id="discounts_redemptions_create",
        summary="Report that a discount code was used (merchant partner key only)",
        description=(
            "**Merchants only.** Authenticate with the partner key the platform operator issued for this tenant "
            "(`manage.py partner_key_create --scope discounts:report`); a tenant API key of any scope answers "
            "403 `forbidden`. Name the discount by its `code` (as the shopper typed it) or its `reward_id`.\n\n"
            "201: recorded; the reward becomes `redeemed` and the tenant receives `discount.redeemed`. The same "
            "report again (same key, order amount, currency and time) answers 200 with the first record, so "
            "retries are safe. Any other report about a redeemed discount answers 409 `already_redeemed`. A code "
            "this tenant never issued, or another tenant's, answers 404 `not_found`."
        ),
        request=RedemptionInput,
        responses={
            201: RedemptionOutput,
            200: OpenApiResponse(RedemptionOutput, description="a replay of the report that redeemed it"),
            403: OpenApiResponse(description="forbidden: not a merchant partner key"),
            404: OpenApiResponse(description="not_found: no discount with this code or id in this tenant"),
            409: OpenApiResponse(description="already_redeemed, or invalid_state_transition (not delivered)"),
        },
        examples=[
            OpenApiExample(
                "Used at checkout",
                request_only=True,
                value={
                    "code": "DSC-8H2K-4M9P-Q7RT-X3WA",
                    "order_amount": "84.50",
                    "order_currency": "MYR",
                    "redeemed_at": "2026-12-06T14:03:00Z",
                },
            ),
            OpenApiExample("Recorded", response_only=True, value=REDEMPTION_EXAMPLE, status_codes=["201", "200"]),
        ],
    )
    def post(self, request):
        data = RedemptionInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        currency = parse_currency(values["order_currency"], field="order_currency") if values["order_currency"] else ""
        amount = values["order_amount"]
        if amount is not None and not currency:
            raise ApplicationError(
                "An order amount needs its currency.",
                code="validation_error",
                errors={"order_currency": ["Required with order_amount."]},
            )
        result = discount_redemption_report(
            partner_key_id=request.api_key.key_id,
            reward_id=values["reward_id"],
            code=values["code"],
            order_amount=None if amount is None else parse_amount(amount, currency, field="order_amount"),
            order_currency=currency,
            redeemed_at=values["redeemed_at"],
        )
        return Response(discount_redemption_render(result.redemption), status=201 if result.created else 200)


DISCOUNT_REPORT_EXAMPLE = {
    "from": "2026-11-01", "to": "2026-11-30", "timezone": "Asia/Kuala_Lumpur", "group_by": "product",
    "rows": [{"key": "4a2e9c71-5b3d-5e08-9f6a-1c7d2b8e4f90", "label": "Kedai Kopi 20% off", "issued": 120,
              "redeemed": 41, "sales": [{"currency": "MYR", "amount": "3464.50"}]}],
    "totals": {"issued": 120, "redeemed": 41},
}  # fmt: skip


class DiscountReportApi(ReportApi):
    @extend_schema(
        operation_id="reports_discounts",
        summary="Discounts issued and redeemed (as the merchants reported) over a period, per program or product",
        description="`issued`: discount rewards first delivered on the period's days; `redeemed`: the merchants' "
        "redemption reports timed on those days; `sales`: the order amounts the merchants reported, per currency.",
        parameters=[*PERIOD_PARAMETERS, OpenApiParameter("group_by", str, enum=DISCOUNT_GROUPS,
                                                          description="Default: program")],
        responses=REPORT_RESPONSES,
        examples=[OpenApiExample("Discounts by product", value=DISCOUNT_REPORT_EXAMPLE, response_only=True)],
    )  # fmt: skip
    def get(self, request):
        self.check_format(request)
        since, until = report_period(since=request.query_params.get("from"), until=request.query_params.get("to"))
        report = discount_report(since=since, until=until, group_by=request.query_params.get("group_by") or "program")
        return self.respond(request, report=report, table=discount_report_table(report),
                            name=f"discounts-by-{report['group_by']}")  # fmt: skip
