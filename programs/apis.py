"""GET /api/v1/programs and /api/v1/programs/{slug}: the tenant's reward programs (read only)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers

from api.views import TenantListAPIView, TenantRetrieveAPIView
from core.money import format_amount

from .models import BudgetPeriod, Program
from .selectors import program_detail_get, program_list


class ProgramFilterInput(serializers.Serializer):
    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)


class BudgetOutput(serializers.Serializer):
    amount = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    period = serializers.ChoiceField(choices=BudgetPeriod.values)


class BrandingOutput(serializers.Serializer):
    logo_url = serializers.CharField(required=False)
    primary_color = serializers.CharField(required=False)


class ProgramOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    budget = serializers.SerializerMethodField()
    allowed_product_ids = serializers.ListField(child=serializers.UUIDField())
    default_message = serializers.CharField()
    sender_name = serializers.CharField()
    branding = serializers.SerializerMethodField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(BudgetOutput)
    def get_budget(self, program: Program) -> dict:
        amount = program.budget_amount
        return {
            "amount": None if amount is None else format_amount(amount, program.budget_currency),
            "currency": program.budget_currency or None,
            "period": program.budget_period,
        }

    @extend_schema_field(BrandingOutput)
    def get_branding(self, program: Program) -> dict:
        return {key: value for key, value in program.branding.items() if key in ("logo_url", "primary_color")}


PROGRAM_EXAMPLE = {
    "slug": "spot-awards",
    "name": "Spot awards",
    "budget": {"amount": "5000.00", "currency": "USD", "period": "monthly"},
    "allowed_product_ids": [],
    "default_message": "Thank you for going the extra mile!",
    "sender_name": "The People Team",
    "branding": {"logo_url": "https://example.com/logo.png", "primary_color": "#1A73E8"},
    "is_active": True,
    "created_at": "2025-01-01T09:00:00Z",
}


class ProgramListApi(TenantListAPIView):
    serializer_class = ProgramOutput

    @extend_schema(
        operation_id="programs_list",
        summary="The tenant's reward programs",
        parameters=[OpenApiParameter("is_active", bool)],
        examples=[
            OpenApiExample(
                "Programs", value={"next": None, "previous": None, "results": [PROGRAM_EXAMPLE]}, response_only=True
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = ProgramFilterInput(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        return program_list(**filters.validated_data)


class ProgramDetailApi(TenantRetrieveAPIView):
    serializer_class = ProgramOutput

    @extend_schema(
        operation_id="programs_retrieve",
        summary="One program",
        examples=[OpenApiExample("A program", value=PROGRAM_EXAMPLE, response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self) -> Program:
        return program_detail_get(slug=self.kwargs["slug"])
