"""Webhook endpoints, events and deliveries over the API (`/api/v1/webhook-endpoints…`, `/api/v1/events…`)."""

from __future__ import annotations

from datetime import timedelta

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response

from api.params import choice_param
from api.views import TenantAPIView, TenantListAPIView

from . import endpoints, redelivery, selectors
from .models import EVENT_TYPES, DeliveryStatus

EVENT_TYPE_CHOICES = ["*", *EVENT_TYPES]

# --- Serializers ---------------------------------------------------------------------------------------


class EndpointCreateInput(serializers.Serializer):
    url = serializers.CharField(max_length=2000)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES), required=False)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    enabled = serializers.BooleanField(required=False, default=True)


class EndpointUpdateInput(serializers.Serializer):
    url = serializers.CharField(max_length=2000, required=False)
    events = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES), required=False)
    description = serializers.CharField(max_length=300, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class EndpointOutput(serializers.Serializer):
    id = serializers.CharField()
    url = serializers.CharField()
    description = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    failing_since = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The signing secret. Shown only in this response; store it now.")


class RotateSecretInput(serializers.Serializer):
    previous_secret_expires_in = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=7 * 24 * 3600,
        help_text="Seconds the previous secret keeps signing (default 86400). 0 stops it at once.",
    )


class RotateSecretOutput(serializers.Serializer):
    endpoint_id = serializers.CharField()
    secret = serializers.CharField(help_text="The new signing secret. Shown only in this response.")
    previous_secret_expires_at = serializers.DateTimeField()


class EventOutput(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    # DRF's metaclass takes declared fields off the class, so Serializer.data stays the property at runtime.
    data = serializers.JSONField()  # type: ignore[assignment]


class AttemptOutput(serializers.Serializer):
    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    url = serializers.CharField()
    request_headers = serializers.DictField(child=serializers.CharField())
    response_status = serializers.IntegerField(allow_null=True)
    response_excerpt = serializers.CharField()
    duration_ms = serializers.IntegerField()
    error = serializers.CharField()
    succeeded = serializers.BooleanField()


class DeliveryOutput(serializers.Serializer):
    id = serializers.CharField(help_text="The `webhook-id` header, the same on every attempt.")
    event_id = serializers.CharField()
    event_type = serializers.CharField(source="event.type")
    endpoint_id = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempt_count = serializers.IntegerField()
    next_attempt_at = serializers.SerializerMethodField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    succeeded_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    attempts = AttemptOutput(many=True)

    def get_next_attempt_at(self, delivery) -> str | None:
        if delivery.status not in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
            return None
        return serializers.DateTimeField().to_representation(delivery.next_attempt_at)


class EventRedeliverInput(serializers.Serializer):
    endpoint_id = serializers.CharField(
        required=False, help_text="Send to this endpoint only (even one the event never went to)."
    )


class RedeliverFailedInput(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField(required=False, allow_null=True, default=None)


RedeliverFailedOutput = inline_serializer("RedeliverFailedOutput", fields={"scheduled": serializers.IntegerField()})

# --- Examples ------------------------------------------------------------------------------------------

_ENDPOINT_EXAMPLE = {
    "id": "ep_0192d3c4e5f6a1b2c3d4e5f6a7b8c9d0",
    "url": "https://hooks.example.com/rewards",
    "description": "CRM sync",
    "events": ["order.completed", "reward.delivered"],
    "enabled": True,
    "disabled_reason": "",
    "failing_since": None,
    "created_at": "2026-01-05T10:00:00Z",
    "updated_at": "2026-01-05T10:00:00Z",
}
_SECRET_EXAMPLE = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_EVENT_EXAMPLE = {
    "id": "evt_0192d3c4e5f6a1b2c3d4e5f6a7b8c9d0",
    "type": "balance.credited",
    "created_at": "2026-01-05T10:00:00.123456Z",
    "data": {"currency": "USD", "amount": "5000.00", "available": "5125.00"},
}
_DELIVERY_EXAMPLE = {
    "id": "msg_0192d3c4e5f6a1b2c3d4e5f6a7b8c9d0",
    "event_id": _EVENT_EXAMPLE["id"],
    "event_type": "balance.credited",
    "endpoint_id": _ENDPOINT_EXAMPLE["id"],
    "status": "succeeded",
    "attempt_count": 2,
    "next_attempt_at": None,
    "last_attempt_at": "2026-01-05T10:00:05Z",
    "last_status_code": 200,
    "last_error": "",
    "succeeded_at": "2026-01-05T10:00:05Z",
    "created_at": "2026-01-05T10:00:00Z",
    "attempts": [
        {
            "number": 1,
            "created_at": "2026-01-05T10:00:00Z",
            "url": "https://hooks.example.com/rewards",
            "request_headers": {
                "webhook-id": "msg_0192d3c4e5f6a1b2c3d4e5f6a7b8c9d0",
                "webhook-timestamp": "1767607200",
            },
            "response_status": 503,
            "response_excerpt": "Service Unavailable",
            "duration_ms": 84,
            "error": "HTTP 503",
            "succeeded": False,
        }
    ],
}


def _page(example: dict) -> dict:
    return {"next": None, "previous": None, "results": [example]}


# --- Endpoints -----------------------------------------------------------------------------------------


class EndpointListCreateApi(TenantListAPIView):
    serializer_class = EndpointOutput

    def get_queryset(self):
        return selectors.endpoint_list()

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="Webhook endpoints",
        examples=[OpenApiExample("Endpoints", value=_page(_ENDPOINT_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Add a webhook endpoint (the signing secret is in this response only)",
        request=EndpointCreateInput,
        responses={201: EndpointCreatedOutput},
        examples=[
            OpenApiExample(
                "New endpoint",
                value={"url": "https://hooks.example.com/rewards", "events": ["order.completed", "reward.delivered"]},
                request_only=True,
            ),
            OpenApiExample("Created", value={**_ENDPOINT_EXAMPLE, "secret": _SECRET_EXAMPLE}, response_only=True),
        ],
    )
    def post(self, request):
        data = _validated(EndpointCreateInput, request.data)
        endpoint, secret = endpoints.webhook_endpoint_create(**data, actor=self.actor)
        body = EndpointOutput(endpoint).data | {"secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)


class EndpointDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        summary="One webhook endpoint",
        responses={200: EndpointOutput},
        examples=[OpenApiExample("Endpoint", value=_ENDPOINT_EXAMPLE, response_only=True)],
    )
    def get(self, request, endpoint_id: str):
        return Response(EndpointOutput(selectors.endpoint_get(endpoint_id=endpoint_id)).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint (re-enabling clears its failure state)",
        request=EndpointUpdateInput,
        responses={200: EndpointOutput},
        examples=[
            OpenApiExample("Re-enable", value={"enabled": True}, request_only=True),
            OpenApiExample("Updated", value=_ENDPOINT_EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request, endpoint_id: str):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id)
        data = _validated(EndpointUpdateInput, request.data, partial=True)
        endpoint = endpoints.webhook_endpoint_update(endpoint=endpoint, **data, actor=self.actor)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        summary="Delete a webhook endpoint with its delivery history",
        responses={204: None},
    )
    def delete(self, request, endpoint_id: str):
        endpoints.webhook_endpoint_delete(endpoint=selectors.endpoint_get(endpoint_id=endpoint_id), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretApi(TenantAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="Rotate the signing secret; the previous one keeps signing for a while (24 h by default)",
        request=RotateSecretInput,
        responses={200: RotateSecretOutput},
        examples=[
            OpenApiExample("Rotate", value={"previous_secret_expires_in": 86400}, request_only=True),
            OpenApiExample(
                "Rotated",
                value={
                    "endpoint_id": _ENDPOINT_EXAMPLE["id"],
                    "secret": _SECRET_EXAMPLE,
                    "previous_secret_expires_at": "2026-01-06T10:00:00Z",
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request, endpoint_id: str):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id)
        data = _validated(RotateSecretInput, request.data)
        seconds = data.get("previous_secret_expires_in")
        secret, expires_at = endpoints.webhook_secret_rotate(
            endpoint=endpoint,
            previous_expires_in=None if seconds is None else timedelta(seconds=seconds),
            actor=self.actor,
        )
        return Response(
            RotateSecretOutput(
                {"endpoint_id": endpoint.pk, "secret": secret, "previous_secret_expires_at": expires_at}
            ).data
        )


class EndpointTestApi(TenantAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_test",
        summary="Send a `webhook.test` event to this endpoint",
        request=None,
        responses={202: DeliveryOutput},
        examples=[
            OpenApiExample(
                "Queued",
                value={**_DELIVERY_EXAMPLE, "status": "pending", "attempt_count": 0, "attempts": []},
                response_only=True,
                status_codes=["202"],
            )
        ],
    )
    def post(self, request, endpoint_id: str):
        delivery = endpoints.webhook_endpoint_test(endpoint=selectors.endpoint_get(endpoint_id=endpoint_id))
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class EndpointDeliveryListApi(TenantListAPIView):
    serializer_class = DeliveryOutput

    def get_queryset(self):
        endpoint = selectors.endpoint_get(endpoint_id=self.kwargs["endpoint_id"])
        return selectors.delivery_list(
            endpoint=endpoint, status=choice_param(self.request, "status", DeliveryStatus.values)
        )

    @extend_schema(
        operation_id="webhook_endpoints_deliveries",
        summary="Deliveries to this endpoint, newest first, with every attempt",
        parameters=[OpenApiParameter("status", str, enum=DeliveryStatus.values)],
        examples=[OpenApiExample("Deliveries", value=_page(_DELIVERY_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class EndpointRedeliverFailedApi(TenantAPIView):
    @extend_schema(
        operation_id="webhook_endpoints_redeliver_failed",
        summary="Resend every failed delivery of events created in [since, until)",
        parameters=[
            OpenApiParameter("since", OpenApiTypes.DATETIME, required=True, description="Events created at or after"),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events created before (default: now)"),
        ],
        request=None,
        responses={202: RedeliverFailedOutput},
        examples=[OpenApiExample("Scheduled", value={"scheduled": 12}, response_only=True, status_codes=["202"])],
    )
    def post(self, request, endpoint_id: str):
        endpoint = selectors.endpoint_get(endpoint_id=endpoint_id)
        body = request.data if isinstance(request.data, dict) else {}
        data = _validated(RedeliverFailedInput, {**body, **request.query_params.dict()})  # docs/api.md: query string
        count = redelivery.webhook_endpoint_redeliver_failed(
            endpoint=endpoint, since=data["since"], until=data["until"]
        )
        return Response({"scheduled": count}, status=status.HTTP_202_ACCEPTED)


# --- Events --------------------------------------------------------------------------------------------


class EventListApi(TenantListAPIView):
    serializer_class = EventOutput

    def get_queryset(self):
        return selectors.event_list(type=choice_param(self.request, "type", EVENT_TYPES))

    @extend_schema(
        operation_id="events_list",
        summary="Events, newest first",
        parameters=[OpenApiParameter("type", str, enum=list(EVENT_TYPES))],
        examples=[OpenApiExample("Events", value=_page(_EVENT_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class EventDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="events_retrieve",
        summary="One event",
        responses={200: EventOutput},
        examples=[OpenApiExample("Event", value=_EVENT_EXAMPLE, response_only=True)],
    )
    def get(self, request, event_id: str):
        return Response(EventOutput(selectors.event_get(event_id=event_id)).data)


class EventDeliveryListApi(TenantListAPIView):
    serializer_class = DeliveryOutput

    def get_queryset(self):
        return selectors.delivery_list(event=selectors.event_get(event_id=self.kwargs["event_id"]))

    @extend_schema(
        operation_id="events_deliveries",
        summary="Deliveries of this event, with every attempt",
        examples=[OpenApiExample("Deliveries", value=_page(_DELIVERY_EXAMPLE), response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class EventRedeliverApi(TenantAPIView):
    @extend_schema(
        operation_id="events_redeliver",
        summary="Send this event again (same webhook-id) to its enabled endpoints, or to one endpoint",
        request=EventRedeliverInput,
        # The body is {"results": [...]} (it was documented as a bare array).
        responses={202: inline_serializer("RedeliveryList", {"results": DeliveryOutput(many=True)})},
        examples=[
            OpenApiExample("One endpoint", value={"endpoint_id": _ENDPOINT_EXAMPLE["id"]}, request_only=True),
            OpenApiExample(
                "Scheduled",
                value={"results": [{**_DELIVERY_EXAMPLE, "status": "pending", "succeeded_at": None}]},
                response_only=True,
                status_codes=["202"],
            ),
        ],
    )
    def post(self, request, event_id: str):
        event = selectors.event_get(event_id=event_id)
        data = _validated(EventRedeliverInput, request.data)
        deliveries = redelivery.event_redeliver(event=event, endpoint_id=data.get("endpoint_id"))
        return Response({"results": DeliveryOutput(deliveries, many=True).data}, status=status.HTTP_202_ACCEPTED)


def _validated(serializer_class, data, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)
