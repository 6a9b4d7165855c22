"""GET /api/v1/shipments/{id} — a physical reward's shipment: status, carrier, tracking, events."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.api.views import TenantAPIView

from .models import ShipmentStatus
from .selectors import shipment_get, shipment_render
from .services import reward_resend, reward_reveal


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


class ShipmentDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="shipments_retrieve",
        summary="Get a shipment",
        responses={200: ShipmentOutput},
        examples=[
            OpenApiExample(
                "Shipped",
                response_only=True,
                value={
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
                },
            )
        ],
    )
    def get(self, request, shipment_id):
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
        examples=[OpenApiExample("Code", response_only=True, value={"code": "ABCD-EFGH-JKLM-NPQR", "pin": "4821"})],
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
        responses={202: None},
        examples=[OpenApiExample("Corrected address", request_only=True, value={"email": "ada@new.example"})],
    )
    def post(self, request, reward_id):
        data = ResendInput(data=request.data)
        data.is_valid(raise_exception=True)
        reward_resend(
            reward_id=reward_id, email=data.validated_data.get("email"), phone=data.validated_data.get("phone")
        )
        return Response({"status": "queued"}, status=202)
