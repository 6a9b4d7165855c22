"""People API: POST/GET /api/v1/people, GET|PATCH|DELETE /api/v1/people/{id}, and POST /api/v1/activities."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.params import choice_param, uuid_param
from api.views import TenantAPIView, TenantListAPIView

from .erasure import person_erase
from .export import person_export
from .models import PersonStatus
from .selectors import (
    activity_list,
    person_get,
    person_list,
    person_render,
    privacy_settings_get,
    privacy_settings_render,
)
from .services import activity_record, person_create, person_update, privacy_settings_update

EXAMPLE_PERSON = {
    "id": "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
    "external_id": "emp-0042",
    "name": "Siti Aminah",
    "email": "siti@example.com",
    "phone": "+60123456789",
    "locale": "ms",
    "timezone": "Asia/Kuala_Lumpur",
    "country": "MY",
    "birthday": "03-14",
    "hire_date": "2021-06-01",
    "department": "Engineering",
    "manager_email": "lead@example.com",
    "attributes": {"cost_center": "R&D", "certified_on": "2024-02-01"},
    "status": "active",
    "left_at": None,
    "created_at": "2026-12-06T09:00:00Z",
    "updated_at": "2026-12-06T09:00:00Z",
}
EXAMPLE_PERSON_REQUEST = {key: EXAMPLE_PERSON[key] for key in (
    "external_id", "name", "email", "phone", "locale", "timezone", "country", "birthday", "hire_date", "department",
    "manager_email", "attributes")}  # fmt: skip
EXAMPLE_ACTIVITY_REQUEST = {
    "external_id": "deal-9001",
    "person_external_id": "emp-0042",
    "type": "deal.closed",
    "occurred_at": "2026-12-06T08:30:00Z",
    "amount": "12000.00",
    "currency": "USD",
    "attributes": {"region": "APAC"},
}
EXAMPLE_ACTIVITY = {
    "id": "0b7e6d5c-4b3a-4291-8f7e-6d5c4b3a2910",
    "external_id": "deal-9001",
    "person_id": EXAMPLE_PERSON["id"],
    "type": "deal.closed",
    "occurred_at": "2026-12-06T08:30:00Z",
    "amount": "12000.00",
    "currency": "USD",
    "attributes": {"region": "APAC"},
    "reverses": None,
    "points_earned": 0,
    "cashback": None,
    "created_at": "2026-12-06T08:30:01Z",
}


class PersonInput(serializers.Serializer):
    """The shape of a person in a request; the rules (formats, time zones, dates) are people.validation's."""

    external_id = serializers.CharField(max_length=100, required=False, allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    email = serializers.CharField(max_length=254, required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True, allow_null=True)
    locale = serializers.CharField(max_length=16, required=False, allow_blank=True, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    country = serializers.CharField(max_length=64, required=False, allow_blank=True, allow_null=True)
    birthday = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True,
                                     help_text="MM-DD, or YYYY-MM-DD when the year is known")  # fmt: skip
    hire_date = serializers.CharField(max_length=32, required=False, allow_blank=True, allow_null=True,
                                      help_text="YYYY-MM-DD")  # fmt: skip
    department = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
    manager_email = serializers.CharField(max_length=254, required=False, allow_blank=True, allow_null=True)
    attributes = serializers.DictField(required=False, allow_null=True, help_text="Custom fields and dates")
    status = serializers.ChoiceField(choices=PersonStatus.values, required=False)


class PersonOutput(serializers.Serializer):
    """Documentation of the person shape rendered by people.selectors.person_render."""

    id = serializers.UUIDField()
    external_id = serializers.CharField()
    name = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    locale = serializers.CharField(allow_null=True)
    timezone = serializers.CharField(allow_null=True)
    country = serializers.CharField(allow_null=True)
    birthday = serializers.CharField(allow_null=True)
    hire_date = serializers.DateField(allow_null=True)
    department = serializers.CharField(allow_null=True)
    manager_email = serializers.CharField(allow_null=True)
    attributes = serializers.DictField()
    status = serializers.ChoiceField(choices=PersonStatus.values)
    left_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return person_render(instance)


def _fields(request: Any) -> dict[str, Any]:
    """The fields the client sent (and only those: a PATCH leaves the others alone), shape-checked."""
    serializer = PersonInput(data=request.data, partial=True)
    serializer.is_valid(raise_exception=True)
    return {name: value for name, value in serializer.validated_data.items() if name in request.data}


class PersonListCreateApi(TenantListAPIView):
    serializer_class = PersonOutput

    @extend_schema(
        operation_id="people_list",
        summary="List people",
        parameters=[
            OpenApiParameter("external_id", str),
            OpenApiParameter("email", str),
            OpenApiParameter("q", str, description="Part of the name, email or external_id"),
            OpenApiParameter("department", str),
            OpenApiParameter("status", str, enum=PersonStatus.values),
        ],
        examples=[
            OpenApiExample(
                "A page of people", value={"next": None, "previous": None, "results": [EXAMPLE_PERSON]},
                response_only=True,
            )
        ],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return person_list(
            external_id=params.get("external_id"),
            email=params.get("email"),
            q=params.get("q"),
            department=params.get("department"),
            status=choice_param(self.request, "status", PersonStatus.values),
        )

    @extend_schema(
        operation_id="people_create",
        summary="Add a person",
        request=PersonInput,
        responses={
            201: PersonOutput,
            409: OpenApiResponse(description="duplicate_external_id"),
            422: OpenApiResponse(description="validation_error"),
        },
        examples=[
            OpenApiExample("A person", value=EXAMPLE_PERSON_REQUEST, request_only=True),
            OpenApiExample("Created", value=EXAMPLE_PERSON, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request):
        person = person_create(actor=self.actor, fields=_fields(request))
        return Response(person_render(person), status=201)


class PersonDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="people_retrieve",
        summary="Get a person",
        responses={200: PersonOutput},
        examples=[OpenApiExample("A person", value=EXAMPLE_PERSON, response_only=True)],
    )
    def get(self, request, person_id):
        return Response(person_render(person_get(person_id=person_id)))

    @extend_schema(
        operation_id="people_update",
        summary="Change a person's fields (`status: left` marks them as left)",
        request=PersonInput,
        responses={200: PersonOutput, 409: OpenApiResponse(description="duplicate_external_id")},
        examples=[OpenApiExample("Mark as left", value={"status": "left"}, request_only=True)],
    )
    def patch(self, request, person_id):
        person = person_update(actor=self.actor, person=person_get(person_id=person_id), fields=_fields(request))
        return Response(person_render(person))

    @extend_schema(
        operation_id="people_erase",
        summary="Erase a person: the person and the personal fields of their rewards, events and logs",
        description="Amounts and the funds ledger stay whole. A second DELETE is a 404.",
        responses={204: None, 404: OpenApiResponse(description="not_found")},
    )
    def delete(self, request, person_id):
        person_erase(actor=self.actor, person=person_get(person_id=person_id))
        return Response(status=204)


class PersonExportApi(TenantAPIView):
    @extend_schema(
        operation_id="people_export",
        summary="Everything held about a person, as JSON (profile, activities, rewards and their timelines, "
        "automation runs); never codes or claim links",
        responses={200: OpenApiResponse(description="The export document")},
        examples=[OpenApiExample("An export", value={"exported_at": "2026-12-06T10:00:00Z", "person": EXAMPLE_PERSON,
                                                     "activities": [], "rewards": [], "automation_runs": []},
                                 response_only=True)],
    )  # fmt: skip
    def get(self, request, person_id):
        return Response(person_export(person=person_get(person_id=person_id)))


class PrivacySettingsInput(serializers.Serializer):
    recipient_retention_days = serializers.IntegerField(allow_null=True, help_text="Days after delivery; null: keep")


class PrivacySettingsApi(TenantAPIView):
    @extend_schema(
        operation_id="privacy_retrieve",
        summary="The tenant's privacy settings",
        responses={200: OpenApiResponse(description="recipient_retention_days, updated_at")},
        examples=[OpenApiExample("Settings", value={"recipient_retention_days": 365, "updated_at": None},
                                 response_only=True)],
    )  # fmt: skip
    def get(self, request):
        return Response(privacy_settings_render(privacy_settings_get()))

    @extend_schema(
        operation_id="privacy_update",
        summary="Anonymise rewards' recipient details N days after delivery (null: keep them until erasure)",
        request=PrivacySettingsInput,
        responses={200: OpenApiResponse(description="The settings")},
        examples=[OpenApiExample("A year", value={"recipient_retention_days": 365}, request_only=True)],
    )
    def patch(self, request):
        serializer = PrivacySettingsInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        days = serializer.validated_data["recipient_retention_days"]
        return Response(
            privacy_settings_render(privacy_settings_update(actor=self.actor, recipient_retention_days=days))
        )


class ActivityInput(serializers.Serializer):
    external_id = serializers.CharField(max_length=100)
    person_id = serializers.UUIDField(required=False, allow_null=True)
    person_external_id = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    type = serializers.CharField(max_length=100)
    occurred_at = serializers.DateTimeField()
    amount = serializers.CharField(max_length=40, required=False, allow_null=True)
    currency = serializers.CharField(max_length=3, required=False, allow_null=True, allow_blank=True)
    attributes = serializers.DictField(required=False, allow_null=True)
    reverses = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)


class ActivityOutput(serializers.Serializer):
    """Documentation of the activity shape (people.selectors.activity_render, plus what reactions earned)."""

    id = serializers.UUIDField()
    external_id = serializers.CharField()
    person_id = serializers.UUIDField(allow_null=True)
    type = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    amount = serializers.CharField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    attributes = serializers.DictField()
    reverses = serializers.CharField(allow_null=True)
    points_earned = serializers.IntegerField()
    cashback = serializers.DictField(allow_null=True)
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        return dict(instance.response_body)


class ActivityListCreateApi(TenantListAPIView):
    serializer_class = ActivityOutput

    @extend_schema(
        operation_id="activities_list",
        summary="List recorded activities",
        parameters=[OpenApiParameter("person_id", OpenApiTypes.UUID), OpenApiParameter("type", str),
                    OpenApiParameter("external_id", str)],
        examples=[OpenApiExample("A page of activities", value={"next": None, "previous": None,
                                                                "results": [EXAMPLE_ACTIVITY]}, response_only=True)],
    )  # fmt: skip
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return activity_list(
            person_id=uuid_param(self.request, "person_id"),
            type=params.get("type"),
            external_id=params.get("external_id"),
        )

    @extend_schema(
        operation_id="activities_create",
        summary="Record an activity (idempotent by external_id)",
        description="201 with what it earned; the same external_id again is a 200 with the first response.",
        request=ActivityInput,
        responses={201: OpenApiResponse(description="The activity and what it earned"),
                   200: OpenApiResponse(description="Replayed: this external_id was recorded before")},
        examples=[
            OpenApiExample("Deal closed", value=EXAMPLE_ACTIVITY_REQUEST, request_only=True),
            OpenApiExample("Recorded", value=EXAMPLE_ACTIVITY, response_only=True, status_codes=["201", "200"]),
        ],
    )  # fmt: skip
    def post(self, request):
        serializer = ActivityInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        body, created = activity_record(
            actor=self.actor,
            external_id=data["external_id"],
            type=data["type"],
            occurred_at=data["occurred_at"],
            person_id=data.get("person_id"),
            person_external_id=data.get("person_external_id") or None,
            amount=data.get("amount"),
            currency=data.get("currency") or None,
            attributes=data.get("attributes"),
            reverses=data.get("reverses") or None,
        )
        return Response(body, status=201 if created else 200)
