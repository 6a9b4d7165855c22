"""/api/v1/programs and /api/v1/programs/{slug}: the tenant's reward programs (list, create, read, change)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from api.views import TenantListAPIView, TenantRetrieveAPIView
from catalog.images import absolute, logo_path
from core.money import format_amount

from .models import BudgetPeriod, Program
from .selectors import program_detail_get, program_list
from .services import program_create, program_update


class ProgramFilterInput(serializers.Serializer):
    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)


class BudgetOutput(serializers.Serializer):
    amount = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    period = serializers.ChoiceField(choices=BudgetPeriod.values)


class BrandingOutput(serializers.Serializer):
    logo = serializers.CharField(required=False, help_text="Id of the uploaded logo (POST /api/v1/logos)")
    logo_url = serializers.CharField(required=False, help_text="Where the uploaded logo is served")
    primary_color = serializers.CharField(required=False)


class PointsCurrency(serializers.Serializer):
    name = serializers.CharField(help_text="What the points are called, e.g. Kudos.")
    points_per_unit = serializers.IntegerField(help_text="Points worth one unit of `currency`; divides 10000.")
    currency = serializers.CharField(help_text="The funding currency awards hold money in. Fixed once set.")
    expire_after_days = serializers.IntegerField(allow_null=True, required=False)
    self_redeem = serializers.BooleanField(required=False, help_text="Recipients may spend points themselves.")


class BudgetInput(serializers.Serializer):
    amount = serializers.CharField(allow_null=True, required=False)
    currency = serializers.CharField(allow_blank=True, required=False)
    period = serializers.CharField(required=False)


class ProgramUpdateInput(serializers.Serializer):
    """Every field optional; the service checks values (so its messages are the portal's too)."""

    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    budget = BudgetInput(required=False, allow_null=True)
    allowed_product_ids = serializers.ListField(child=serializers.CharField(), required=False, max_length=1000)
    default_message = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    sender_name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    branding = serializers.DictField(required=False, allow_null=True)
    default_locale = serializers.CharField(required=False, allow_blank=True)
    points = serializers.JSONField(required=False, allow_null=True, help_text="A PointsCurrency object or null.")
    is_active = serializers.BooleanField(required=False)
    claim_days = serializers.JSONField(
        required=False, allow_null=True, help_text="Days a recipient has to claim a link (null: the default, 365)"
    )
    on_expiry = serializers.CharField(required=False, help_text="release | keep: what expiry does with unclaimed value")
    reminders = serializers.JSONField(
        required=False, allow_null=True, help_text='{"after_days": [3, 7], "before_expiry_days": [7]}; {} = none'
    )
    verification = serializers.CharField(
        required=False, help_text="off | email | sms: a one-time code before a code shows in a new browser"
    )
    track_email_opens = serializers.BooleanField(
        required=False,
        help_text="Reward emails carry an open pixel (the funnel's `opened`); nothing about the reader is kept",
    )

    def to_internal_value(self, data):
        # `allowed_products` is the contract's name (docs/api.md); `allowed_product_ids` is what the response shows.
        if isinstance(data, dict) and "allowed_products" in data and "allowed_product_ids" not in data:
            data = {**data, "allowed_product_ids": data["allowed_products"]}
        return super().to_internal_value(data)


class ProgramCreateInput(ProgramUpdateInput):
    slug = serializers.CharField(max_length=200)
    name = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ProgramOutput(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    budget = serializers.SerializerMethodField()
    allowed_product_ids = serializers.ListField(child=serializers.UUIDField())
    default_message = serializers.CharField()
    sender_name = serializers.CharField()
    branding = serializers.SerializerMethodField()
    default_locale = serializers.CharField()
    points = serializers.SerializerMethodField()
    claim_days = serializers.IntegerField(allow_null=True, help_text="null: the installation's default (365)")
    on_expiry = serializers.CharField()
    reminders = serializers.JSONField()
    verification = serializers.CharField(source="claim_verification")
    track_email_opens = serializers.BooleanField()
    is_active = serializers.BooleanField()
    created_at = serializers.DateTimeField()

    @extend_schema_field(PointsCurrency(allow_null=True))
    def get_points(self, program: Program) -> dict | None:
        if not program.has_points:
            return None
        return {
            "name": program.points_name,
            "points_per_unit": program.points_per_unit,
            "currency": program.points_currency,
            "expire_after_days": program.points_expire_after_days,
            "self_redeem": program.points_self_redeem,
        }

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
        branding = {key: value for key, value in program.branding.items() if key in ("logo_url", "primary_color")}
        if program.branding.get("logo"):  # an uploaded logo is the one recipients see
            branding["logo"] = program.branding["logo"]
            branding["logo_url"] = absolute(logo_path(str(program.branding["logo"])))
        return branding


PROGRAM_EXAMPLE = {
    "slug": "spot-awards",
    "name": "Spot awards",
    "budget": {"amount": "5000.00", "currency": "USD", "period": "monthly"},
    "allowed_product_ids": [],
    "default_message": "Thank you for going the extra mile!",
    "sender_name": "The People Team",
    "branding": {"logo_url": "https://example.com/logo.png", "primary_color": "#1A73E8"},
    "default_locale": "en",
    "points": {
        "name": "Kudos",
        "points_per_unit": 100,
        "currency": "USD",
        "expire_after_days": 365,
        "self_redeem": True,
    },
    "claim_days": 90,
    "on_expiry": "release",
    "reminders": {"after_days": [3, 7], "before_expiry_days": [7]},
    "verification": "off",
    "track_email_opens": True,
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

    @extend_schema(
        operation_id="programs_create",
        summary="Create a program (optionally with a points currency)",
        request=ProgramCreateInput,
        responses={201: ProgramOutput},
        examples=[
            OpenApiExample(
                "A program with points",
                value={"slug": "kudos", "name": "Kudos", "budget": {"amount": "5000.00", "currency": "USD",
                       "period": "monthly"}, "default_locale": "en", "points": PROGRAM_EXAMPLE["points"]},
                request_only=True,
            ),
            OpenApiExample("Created", value=PROGRAM_EXAMPLE, response_only=True),
        ],
    )  # fmt: skip
    def post(self, request):
        data = ProgramCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        budget = values.pop("budget", None) or {}
        program = program_create(
            **values,
            budget_amount=budget.get("amount"),
            budget_currency=budget.get("currency", ""),
            budget_period=budget.get("period") or BudgetPeriod.NONE,
            actor=self.actor,
        )
        return Response(ProgramOutput(program).data, status=status.HTTP_201_CREATED)


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

    @extend_schema(
        operation_id="programs_update",
        summary="Change a program (only the fields sent; the slug and a set points rate stay)",
        request=ProgramUpdateInput,
        responses={200: ProgramOutput},
        examples=[OpenApiExample("Raise the budget", value={"budget": {"amount": "8000.00", "currency": "USD",
                                 "period": "monthly"}}, request_only=True)],
    )  # fmt: skip
    def patch(self, request, slug: str):
        data = ProgramUpdateInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        # A field this endpoint does not change (the slug: orders and links name it) is refused, not ignored.
        changes.update({key: None for key in request.data if key not in data.fields and key != "allowed_products"})
        program = program_update(program=self.get_object(), changes=changes, actor=self.actor)
        return Response(ProgramOutput(program).data)
