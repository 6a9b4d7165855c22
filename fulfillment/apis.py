"""Fulfilment API: shipments (list, detail, the partner's manifest and tracking callback), reveal and resend.

Who may do what with shipments: the tenant's keys read them (`read`); the fulfilment partner's key (scope
`shipments:report`, issued by the operator with `manage.py partner_key_create`) reads them and reports their
tracking. Shipment status is the partner's word, never the tenant's: a returned gift refunds the tenant, so a
tenant key of any scope is refused (403 `forbidden`) on the tracking callback.
"""

from __future__ import annotations

import json

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import renderers, serializers
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from api.params import choice_param
from api.permissions import HasScope, HasTenantCredential
from api.views import TenantAPIView, TenantListAPIView
from core.csv_export import csv_text

from .manifests import MANIFEST_COLUMNS, shipment_manifest
from .models import ShipmentStatus
from .selectors import shipment_get, shipment_list, shipment_render
from .services import reward_resend, reward_reveal
from .shipments import TRACKING_STATUSES, shipment_tracking_update


class ShipmentReadScope(HasScope):
    """Reading shipments: a tenant key with `read`, or the tenant's fulfilment partner (its manifest, its reports)."""

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "api_key", None)
        return key is not None and (key.reports_shipments or super().has_permission(request, view))


class FulfilmentPartnerOnly(BasePermission):
    """Tracking and status reports: only the partner's key, whatever scopes a tenant key has."""

    partner_only = True  # tests that walk the URLconf use a partner key on these routes
    message = (
        "Shipment tracking and status are reported by the fulfilment partner, with a partner key the platform "
        "operator issues; tenant API keys can read shipments but not report on them."
    )

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "api_key", None)
        return key is not None and key.reports_shipments


SHIPMENT_READ_PERMISSIONS = [HasTenantCredential, ShipmentReadScope]
READ_DESCRIPTION = "Readable with a tenant key (`read` scope) or the tenant's fulfilment partner key."


class ShipmentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    reward_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=ShipmentStatus.values)
    carrier = serializers.CharField()
    shipping_method = serializers.DictField()
    tracking_number = serializers.CharField(allow_null=True)
    address = serializers.DictField()
    events = serializers.ListField(child=serializers.DictField())
    created_at = serializers.DateTimeField()


SHIPMENT_EXAMPLE = {
    "id": "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
    "reward_id": "0e9c1a2b-7d4f-4c3e-8b2a-1f0e9d8c7b6a",
    "status": "in_transit",
    "carrier": "Parcelway",
    "shipping_method": {"id": "0f5d3c0e-4b1d-4c59-8d2a-7d8c6e5f4a31", "name": "Standard"},
    "tracking_number": "PW123456789US",
    "address": {
        "name": "Grace Hopper",
        "line1": "1 Navy Way",
        "city": "Arlington",
        "state": "VA",
        "postal_code": "22202",
        "country": "US",
        "line2": "",
    },
    "events": [
        {
            "status": "shipped",
            "description": "Picked up",
            "location": "Reno, NV",
            "occurred_at": "2026-11-23T09:00:00Z",
        }
    ],
    "created_at": "2026-11-22T10:00:00Z",
}


class ShipmentDetailApi(TenantAPIView):
    permission_classes = SHIPMENT_READ_PERMISSIONS

    @extend_schema(
        operation_id="shipments_retrieve",
        summary="Get a shipment",
        description=READ_DESCRIPTION,
        responses={200: ShipmentOutput},
        examples=[
            OpenApiExample(
                "Shipped",
                response_only=True,
                value=SHIPMENT_EXAMPLE,
            )
        ],
    )
    def get(self, request, shipment_id):
        return Response(shipment_render(shipment_get(shipment_id=shipment_id)))


class ShipmentListApi(TenantListAPIView):
    serializer_class = ShipmentOutput
    permission_classes = SHIPMENT_READ_PERMISSIONS

    @extend_schema(
        operation_id="shipments_list",
        summary="List shipments",
        description=READ_DESCRIPTION,
        parameters=[
            OpenApiParameter("status", str, enum=ShipmentStatus.values),
            OpenApiParameter("carrier", str, description="Carrier name, e.g. Parcelway (case-insensitive)"),
        ],
        examples=[
            OpenApiExample(
                "A page of shipments",
                value={"next": None, "previous": None, "results": [SHIPMENT_EXAMPLE]},
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        status = choice_param(self.request, "status", ShipmentStatus.values)
        return shipment_list(status=status, carrier=params.get("carrier"))

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response([shipment_render(shipment) for shipment in page])


class CsvRenderer(renderers.BaseRenderer):
    """Lets clients ask for `Accept: text/csv`; errors still carry a problem+json body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, (str, bytes)):
            return data
        return json.dumps(data).encode()


class ManifestQuery(serializers.Serializer):
    day = serializers.DateField(help_text="The hand-off day, YYYY-MM-DD")
    carrier = serializers.CharField(max_length=100, help_text="Carrier name, e.g. Parcelway")


MANIFEST_EXAMPLE = csv_text(
    MANIFEST_COLUMNS,
    [
        (
            "3c1d2e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", "0e9c1a2b-7d4f-4c3e-8b2a-1f0e9d8c7b6a",
            "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e", "hris-1", "Parcelway", "US Ground", "Grace Hopper",
            "1 Navy Way", "", "Arlington", "VA", "22202", "US", "Harvest Hampers Harvest Hamper", 1,
            "2026-11-22T10:00:00Z",
        )
    ],
)  # fmt: skip


class ShipmentManifestApi(TenantAPIView):
    renderer_classes = [renderers.JSONRenderer, CsvRenderer]
    permission_classes = SHIPMENT_READ_PERMISSIONS

    @extend_schema(
        operation_id="shipments_manifest",
        summary="The day's manifest for a carrier (CSV for the fulfilment partner)",
        description=(
            "Shipments still `submitted` that were handed to fulfilment on `day`, for `carrier`. Cells that a "
            "spreadsheet would read as formulas are prefixed with an apostrophe. " + READ_DESCRIPTION
        ),
        parameters=[ManifestQuery],
        responses={
            (200, "text/csv"): OpenApiResponse(
                response=OpenApiTypes.STR,
                description="The manifest",
                examples=[OpenApiExample("Manifest", value=MANIFEST_EXAMPLE, response_only=True)],
            )
        },
    )
    def get(self, request):
        query = ManifestQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        day, carrier = query.validated_data["day"], query.validated_data["carrier"]
        content, count = shipment_manifest(day=day, carrier=carrier)
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        safe_carrier = "".join(ch for ch in carrier if ch.isalnum() or ch in "-_") or "carrier"
        response["Content-Disposition"] = f'attachment; filename="manifest-{safe_carrier}-{day.isoformat()}.csv"'
        response["X-Shipment-Count"] = str(count)
        response["Cache-Control"] = "no-store"
        return response


class TrackingInput(serializers.Serializer):
    status = serializers.ChoiceField(choices=list(TRACKING_STATUSES))
    tracking_number = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    location = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    occurred_at = serializers.DateTimeField(required=False, allow_null=True, help_text="ISO 8601; default now")


class ShipmentTrackingApi(TenantAPIView):
    """The fulfilment partner's callback: its partner key only (see FulfilmentPartnerOnly)."""

    permission_classes = [HasTenantCredential, FulfilmentPartnerOnly]

    @extend_schema(
        operation_id="shipments_tracking",
        summary="Report a tracking update for a shipment (fulfilment partner key only)",
        description=(
            "**Fulfilment partners only.** Authenticate with the partner key the platform operator issued for "
            "this tenant (`manage.py partner_key_create`, scope `shipments:report`); a tenant API key of any "
            "scope answers 403 `forbidden`, because shipment status is the partner's word (a `returned` "
            "shipment refunds the tenant). A partner key can read shipments and report on them, nothing else.\n\n"
            "Moves the shipment along pending → submitted → shipped → in_transit → delivered | returned "
            "(or exception). A report already recorded (same status, or same status and `occurred_at`) is a "
            "no-op, so retries are safe: a `returned` report refunds the reward's cost once, however often it "
            "is sent. An impossible move answers 409 `invalid_state_transition`."
        ),
        request=TrackingInput,
        responses={
            200: ShipmentOutput,
            403: OpenApiResponse(description="forbidden: not a fulfilment partner key (tenant keys never report)"),
        },
        examples=[
            OpenApiExample(
                "Picked up",
                request_only=True,
                value={
                    "status": "shipped",
                    "tracking_number": "PW123456789US",
                    "description": "Picked up",
                    "location": "Reno, NV",
                    "occurred_at": "2026-11-23T09:00:00Z",
                },
            ),
            OpenApiExample("Updated shipment", value=SHIPMENT_EXAMPLE, response_only=True),
        ],
    )
    def post(self, request, shipment_id):
        data = TrackingInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        shipment_tracking_update(
            shipment_id=shipment_id,
            status=values["status"],
            tracking_number=values.get("tracking_number"),
            description=values.get("description") or "",
            location=values.get("location") or "",
            occurred_at=values.get("occurred_at"),
        )
        return Response(shipment_render(shipment_get(shipment_id=shipment_id)))


class RevealOutput(serializers.Serializer):
    code = serializers.CharField()
    pin = serializers.CharField(allow_null=True)


class ResendInput(serializers.Serializer):
    email = serializers.EmailField(required=False)
    phone = serializers.CharField(required=False, max_length=20)


class RewardRevealApi(TenantAPIView):
    required_scope = "write"  # a reveal is a sensitive, audited act, not a read

    @extend_schema(
        operation_id="rewards_reveal",
        summary="Reveal the code of an API-delivered reward (audited, once per call)",
        request=None,
        responses={200: RevealOutput},
        examples=[OpenApiExample("Code", response_only=True, value={"code": "ABCD-EFGH-JKLM-NPQR", "pin": "48213907"})],
    )
    def post(self, request, reward_id):
        revealed = reward_reveal(reward_id=reward_id, actor=f"api-key:{request.api_key.key_id}")
        response = Response(revealed)
        response["Cache-Control"] = "no-store"
        return response


class RewardResendApi(TenantAPIView):
    @extend_schema(
        operation_id="rewards_resend",
        summary="Send a delivered reward again, optionally to a corrected email or phone",
        request=ResendInput,
        responses={
            202: inline_serializer("ResendQueued", {"status": serializers.CharField()}),
            409: OpenApiResponse(description="not_resendable (only email and SMS rewards can be resent)"),
        },
        examples=[
            OpenApiExample("Corrected address", request_only=True, value={"email": "ada@new.example"}),
            OpenApiExample("Queued", response_only=True, value={"status": "queued"}, status_codes=["202"]),
        ],
    )
    def post(self, request, reward_id):
        data = ResendInput(data=request.data)
        data.is_valid(raise_exception=True)
        reward_resend(
            reward_id=reward_id, email=data.validated_data.get("email"), phone=data.validated_data.get("phone")
        )
        return Response({"status": "queued"}, status=202)
