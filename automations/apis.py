"""Automations API: POST/GET /api/v1/automations, GET|PATCH|DELETE /api/v1/automations/{id},
GET /api/v1/automations/{id}/preview?days=30 and GET /api/v1/automations/{id}/runs."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.params import choice_param
from api.views import TenantAPIView, TenantListAPIView
from core.errors import ApplicationError

from .models import RunStatus, TriggerType
from .running import run_render
from .selectors import (
    MAX_PREVIEW_DAYS,
    automation_get,
    automation_list,
    automation_preview,
    automation_render,
    automation_run_list,
)
from .services import automation_create, automation_delete, automation_update

EXAMPLE_AUTOMATION_REQUEST = {
    "name": "Birthday gift",
    "trigger": {"type": "birthday"},
    "audience": {"department": ["Engineering", "Sales"], "country": ["MY"]},
    "reward": {"product_id": "5b0c7c1e-8f6a-4f7e-9a55-2f1f3c2b9d10", "amount": "25.00", "currency": "USD",
               "delivery_method": "email", "message": "Happy birthday, {first_name}!"},
    "send_time": "09:00",
    "days_offset": 0,
    "program": "spot-awards",
    "enabled": True,
}  # fmt: skip
EXAMPLE_AUTOMATION = {
    "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    **EXAMPLE_AUTOMATION_REQUEST,
    "created_at": "2026-12-06T09:00:00Z",
    "updated_at": "2026-12-06T09:00:00Z",
}
EXAMPLE_PREVIEW = {
    "items": [{"person_id": "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "name": "Siti Aminah", "occurs_on": "2026-12-09",
               "send_at": "2026-12-09T01:00:00Z", "years": None, "amount": "25.00", "currency": "USD"}],
    "total": {"amount": "25.00", "currency": "USD"},
}  # fmt: skip
EXAMPLE_RUN = {
    "id": "1d2e3f4a-5b6c-4d7e-8f90-a1b2c3d4e5f6",
    "automation_id": EXAMPLE_AUTOMATION["id"],
    "person_id": "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
    "occurs_on": "2026-12-09",
    "occurrence": "2026-12-09",
    "send_at": "2026-12-09T01:00:00Z",
    "status": "failed",
    "order_id": None,
    "points_award_id": None,
    "failure_code": "insufficient_funds",
    "failure_reason": "Available USD funds do not cover 25.00 USD.",
    "attempts": 1,
}


class AutomationInput(serializers.Serializer):
    """The shape of an automation in a request; its rules are automations.services'."""

    name = serializers.CharField(max_length=200, required=False)
    trigger = serializers.DictField(required=False, help_text="type, years, attribute, activity_type")
    audience = serializers.DictField(required=False, allow_null=True, help_text="department[], country[], attributes{}")
    reward = serializers.DictField(
        required=False,
        help_text="product_id, amount, currency, delivery_method, message; or points, program (a points program), "
        "message",
    )
    send_time = serializers.CharField(max_length=5, required=False, help_text="HH:MM, local to the person")
    days_offset = serializers.IntegerField(required=False, min_value=-60, max_value=60)
    program = serializers.CharField(max_length=60, required=False, allow_null=True, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class AutomationOutput(serializers.Serializer):
    """Documentation of automations.selectors.automation_render."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    trigger = serializers.DictField()
    audience = serializers.DictField()
    reward = serializers.DictField()
    send_time = serializers.CharField()
    days_offset = serializers.IntegerField()
    program = serializers.CharField(allow_null=True)
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return automation_render(instance)


class RunOutput(serializers.Serializer):
    """Documentation of automations.running.run_render."""

    id = serializers.UUIDField()
    automation_id = serializers.UUIDField()
    person_id = serializers.UUIDField(allow_null=True)
    occurs_on = serializers.DateField()
    occurrence = serializers.CharField()
    send_at = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=RunStatus.values)
    order_id = serializers.UUIDField(allow_null=True)
    points_award_id = serializers.UUIDField(allow_null=True)
    failure_code = serializers.CharField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)
    attempts = serializers.IntegerField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return run_render(instance)


def _data(request: Any) -> dict[str, Any]:
    serializer = AutomationInput(data=request.data, partial=True)
    serializer.is_valid(raise_exception=True)
    return {name: value for name, value in serializer.validated_data.items() if name in request.data}


class AutomationListCreateApi(TenantListAPIView):
    serializer_class = AutomationOutput

    @extend_schema(
        operation_id="automations_list",
        summary="List automations",
        parameters=[OpenApiParameter("enabled", bool), OpenApiParameter("trigger", str, enum=TriggerType.values)],
        examples=[OpenApiExample("A page", value={"next": None, "previous": None, "results": [EXAMPLE_AUTOMATION]},
                                 response_only=True)],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        enabled = choice_param(self.request, "enabled", ["true", "false"])
        return automation_list(
            enabled=None if enabled is None else enabled == "true",
            trigger=choice_param(self.request, "trigger", TriggerType.values),
        )

    @extend_schema(
        operation_id="automations_create",
        summary="Create an automation (birthday, work anniversary, a date attribute, or an activity)",
        description="Sends exactly one reward per person and occurrence, at `send_time` in the person's time "
        "zone (else the tenant's), `days_offset` days after the occurrence. 29 February falls on 28 February in "
        "other years. An occurrence missed through downtime is sent later the same local day, never after.",
        request=AutomationInput,
        responses={201: AutomationOutput, 422: OpenApiResponse(description="validation_error")},
        examples=[OpenApiExample("Birthday", value=EXAMPLE_AUTOMATION_REQUEST, request_only=True),
                  OpenApiExample("Created", value=EXAMPLE_AUTOMATION, response_only=True, status_codes=["201"])],
    )  # fmt: skip
    def post(self, request):
        automation = automation_create(actor=self.actor, data=_data(request))
        return Response(automation_render(automation), status=201)


class AutomationDetailApi(TenantAPIView):
    @extend_schema(operation_id="automations_retrieve", summary="Get an automation", responses={200: AutomationOutput},
                   examples=[OpenApiExample("One", value=EXAMPLE_AUTOMATION, response_only=True)])  # fmt: skip
    def get(self, request, automation_id):
        return Response(automation_render(automation_get(automation_id=automation_id)))

    @extend_schema(operation_id="automations_update", summary="Change an automation", request=AutomationInput,
                   responses={200: AutomationOutput},
                   examples=[OpenApiExample("Pause", value={"enabled": False}, request_only=True)])  # fmt: skip
    def patch(self, request, automation_id):
        automation = automation_get(automation_id=automation_id)
        return Response(
            automation_render(automation_update(actor=self.actor, automation=automation, data=_data(request)))
        )

    @extend_schema(operation_id="automations_delete", summary="Delete an automation (what it sent stays)",
                   responses={204: None})  # fmt: skip
    def delete(self, request, automation_id):
        automation_delete(actor=self.actor, automation=automation_get(automation_id=automation_id))
        return Response(status=204)


class AutomationPreviewApi(TenantAPIView):
    @extend_schema(
        operation_id="automations_preview",
        summary="Who the automation will send to, when, and at what cost",
        parameters=[
            OpenApiParameter(
                "days",
                {"type": "integer", "minimum": 1, "maximum": MAX_PREVIEW_DAYS},
                description=f"1 to {MAX_PREVIEW_DAYS} (default 30)",
            )
        ],
        examples=[OpenApiExample("Next 30 days", value=EXAMPLE_PREVIEW, response_only=True)],
    )
    def get(self, request, automation_id):
        raw = request.query_params.get("days", "30")
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PREVIEW_DAYS:
            raise ApplicationError(f"days must be a whole number from 1 to {MAX_PREVIEW_DAYS}.",
                                   code="validation_error", errors={"days": ["Out of range."]})  # fmt: skip
        automation = automation_get(automation_id=automation_id)
        return Response(automation_preview(automation=automation, now=timezone.now(), days=int(raw)))


class AutomationRunListApi(TenantListAPIView):
    serializer_class = RunOutput

    @extend_schema(
        operation_id="automations_runs",
        summary="What the automation sent, or why it could not (newest first)",
        parameters=[OpenApiParameter("status", str, enum=RunStatus.values)],
        examples=[OpenApiExample("A page", value={"next": None, "previous": None, "results": [EXAMPLE_RUN]},
                                 response_only=True)],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        automation = automation_get(automation_id=self.kwargs["automation_id"])
        return automation_run_list(automation_id=automation.id,
                                   status=choice_param(self.request, "status", RunStatus.values))  # fmt: skip
