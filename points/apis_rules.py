"""Earning rules over the API: `POST|GET /api/v1/earning-rules`, `GET|PATCH|DELETE /api/v1/earning-rules/{id}`."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from api.views import TenantAPIView, TenantListAPIView

from .earning import earning_rule_create, earning_rule_delete, earning_rule_get, earning_rule_update
from .models import EarningRule


class EarningRuleOutput(serializers.Serializer):
    id = serializers.UUIDField()
    program = serializers.CharField(source="program.slug")
    activity_type = serializers.CharField()
    points_fixed = serializers.IntegerField(allow_null=True)
    points_per_unit = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True, coerce_to_string=True)
    cashback_percent = serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True, coerce_to_string=True)
    cap_per_activity = serializers.IntegerField(allow_null=True)
    cap_per_period = serializers.IntegerField(allow_null=True)
    period = serializers.CharField()
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()


RULE_EXAMPLE = {
    "id": "3d0f1a52-8c7e-4c1b-a0b5-52e8f4f9f3a1", "program": "kudos", "activity_type": "purchase",
    "points_fixed": None, "points_per_unit": None, "cashback_percent": "2.0000", "cap_per_activity": 5000,
    "cap_per_period": 20000, "period": "monthly", "enabled": True, "created_at": "2026-12-06T09:00:00Z",
}  # fmt: skip
RULE_REQUEST = {"program": "kudos", "activity_type": "purchase", "cashback_percent": "2", "cap_per_activity": 5000,
                "cap_per_period": 20000}  # fmt: skip


def _values(request) -> dict:
    data = request.data
    if not isinstance(data, dict):
        from core.errors import ApplicationError

        raise ApplicationError("A JSON object.", code="validation_error")
    return dict(data)


class EarningRuleListApi(TenantListAPIView):
    serializer_class = EarningRuleOutput

    @extend_schema(operation_id="earning_rules_list", summary="The tenant's earning rules")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return EarningRule.objects.select_related("program")

    @extend_schema(
        operation_id="earning_rules_create",
        summary="Earn points on an activity: fixed, per unit of amount, or cashback percent; with caps",
        request=OpenApiTypes.OBJECT,
        responses={201: EarningRuleOutput},
        examples=[OpenApiExample("Cashback", value=RULE_REQUEST, request_only=True),
                  OpenApiExample("Created", value=RULE_EXAMPLE, response_only=True)],
    )  # fmt: skip
    def post(self, request):
        rule = earning_rule_create(values=_values(request), actor=self.actor)
        return Response(EarningRuleOutput(rule).data, status=status.HTTP_201_CREATED)


class EarningRuleDetailApi(TenantAPIView):
    @extend_schema(operation_id="earning_rules_retrieve", summary="One earning rule",
                   responses={200: EarningRuleOutput})  # fmt: skip
    def get(self, request, rule_id):
        return Response(EarningRuleOutput(earning_rule_get(rule_id=rule_id)).data)

    @extend_schema(operation_id="earning_rules_update", summary="Change an earning rule (fields sent only)",
                   request=OpenApiTypes.OBJECT, responses={200: EarningRuleOutput})  # fmt: skip
    def patch(self, request, rule_id):
        rule = earning_rule_update(rule=earning_rule_get(rule_id=rule_id), values=_values(request), actor=self.actor)
        return Response(EarningRuleOutput(rule).data)

    @extend_schema(operation_id="earning_rules_delete", summary="Delete an earning rule (points earned stay)",
                   responses={204: None})  # fmt: skip
    def delete(self, request, rule_id):
        earning_rule_delete(rule=earning_rule_get(rule_id=rule_id), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
