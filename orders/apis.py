"""Orders and rewards API: create (idempotent), list/filter, get, cancel; rewards get/list/cancel."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api.params import choice_param, uuid_param
from api.views import TenantAPIView, TenantListAPIView
from api.write_audit import api_write_audit_event
from core.db import custom_plans
from core.db_routing import reads_from_replica
from core.errors import ApplicationError
from core.money import amount_text_ok, format_amount

from .approvals import order_approve, order_reject
from .create import order_create
from .idempotency import request_hash
from .lifecycle import order_cancel, reward_cancel
from .models import DeliveryMethod, OrderStatus, OrderType, RewardStatus
from .planning import RewardInput
from .reports import breakage_by_currency
from .selectors import order_get, order_list, order_render, reward_get, reward_list, reward_render

EXAMPLE_PRODUCT = "5b0c7c1e-8f6a-4f7e-9a55-2f1f3c2b9d10"
SEARCH_HELP = (
    "Search: part of a recipient's name, email or phone, a reward reference, an external id, a PO number, a "
    "metadata value, or an id (at least 3 characters; every word must match)."
)
METADATA_HELP = (
    "Your own key/values: at most 20 keys (1-40 of A-Z a-z 0-9 _ - .), string values of at most 500 characters."
)
EXAMPLE_ORDER_REQUEST = {
    "type": "digital",
    "external_id": "crm-123",
    "po_number": "PO-9",
    "program": "spot-awards",
    "rewards": [
        {
            "product_id": EXAMPLE_PRODUCT,
            "amount": "25.00",
            "currency": "USD",
            "quantity": 1,
            "delivery_method": "email",
            "recipient": {"name": "Ada Lovelace", "email": "ada@example.com"},
            "message": "Thanks for shipping the release!",
            "sender_name": "The Platform Team",
            "deliver_at": None,
        }
    ],
}
EXAMPLE_PHYSICAL_REQUEST = {
    "type": "physical",
    "external_id": "hris-777",
    "rewards": [
        {
            "product_id": EXAMPLE_PRODUCT,
            "amount": "50.00",
            "currency": "USD",
            "delivery_method": "shipment",
            "recipient": {"name": "Grace Hopper", "email": "grace@example.com"},
            "shipping_address": {
                "name": "Grace Hopper",
                "line1": "1 Navy Way",
                "line2": "",
                "city": "Arlington",
                "state": "VA",
                "postal_code": "22202",
                "country": "US",
            },
            "shipping_method_id": "0f5d3c0e-4b1d-4c59-8d2a-7d8c6e5f4a31",
        }
    ],
}
EXAMPLE_ORDER: dict[str, Any] = {
    "id": "8d6f0c52-3f4e-4a9b-9a7e-5b1c2d3e4f50",
    "type": "digital",
    "status": "pending",
    "external_id": "crm-123",
    "po_number": "PO-9",
    "program": "spot-awards",
    "automation_id": None,
    "total": {"amount": "25.00", "currency": "USD", "fx_rate": "1", "fees": "0.00", "shipping": "0.00"},
    "rewards": [
        {
            "id": "0e9c1a2b-7d4f-4c3e-8b2a-1f0e9d8c7b6a",
            "reference": "RW-7K3Q-92",
            "order_id": "8d6f0c52-3f4e-4a9b-9a7e-5b1c2d3e4f50",
            "status": "pending",
            "product": {
                "id": EXAMPLE_PRODUCT,
                "brand": "Lumen Coffee",
                "name": "Lumen Coffee eGift",
                "type": "digital",
            },
            "amount": "25.00",
            "currency": "USD",
            "charge": {"amount": "25.00", "currency": "USD"},
            "delivery_method": "email",
            "person_id": None,
            "recipient": {"name": "Ada Lovelace", "email": "ada@example.com", "phone": None},
            "message": "Thanks for shipping the release!",
            "sender_name": "The Platform Team",
            "deliver_at": None,
            "claim_url": None,
            "claim_by": None,
            "code": None,
            "shipment_id": None,
            "failure_reason": None,
            "external_id": "hr-2026-001",
            "metadata": {"department": "Engineering"},
            "created_at": "2026-11-22T10:00:00Z",
            "delivered_at": None,
            "opened_at": None,
            "clicked_at": None,
        }
    ],
    "approval": None,
    "metadata": {"cost_center": "CC-42"},
    "created_at": "2026-11-22T10:00:00Z",
}
EXAMPLE_PENDING_ORDER: dict[str, Any] = {
    **EXAMPLE_ORDER,
    "status": "pending_approval",
    "total": {**EXAMPLE_ORDER["total"], "amount": "2500.00"},
    "rewards": [{**EXAMPLE_ORDER["rewards"][0], "status": "awaiting_approval", "amount": "2500.00",
                 "charge": {"amount": "2500.00", "currency": "USD"}}],
    "approval": {"status": "pending", "requested_by": "api-key:k7q2m9x4p1z8", "expires_at": "2026-11-29T10:00:00Z",
                 "decided_by": None, "decided_at": None, "reason": None},
}  # fmt: skip
EXAMPLE_APPROVED_ORDER = {
    **EXAMPLE_PENDING_ORDER,
    "status": "pending",
    "rewards": [{**EXAMPLE_PENDING_ORDER["rewards"][0], "status": "pending"}],
    "approval": {**EXAMPLE_PENDING_ORDER["approval"], "status": "approved", "decided_by": "staff:cfo@example.com",
                 "decided_at": "2026-11-22T11:30:00Z"},
}  # fmt: skip
EXAMPLE_REJECTED_ORDER = {
    **EXAMPLE_PENDING_ORDER,
    "status": "canceled",
    "rewards": [{**EXAMPLE_PENDING_ORDER["rewards"][0], "status": "canceled"}],
    "approval": {**EXAMPLE_PENDING_ORDER["approval"], "status": "rejected", "decided_by": "api-key:a1b2c3d4e5f6",
                 "decided_at": "2026-11-22T11:30:00Z", "reason": "Over the quarter's budget"},
}  # fmt: skip
PROBLEM_FOUR_EYES = {
    "type": "https://docs.rewards-portal.dev/errors/four_eyes_required",
    "title": "Four eyes required",
    "status": 403,
    "detail": "You placed this, so someone else must approve or reject it (four eyes).",
    "code": "four_eyes_required",
    "retryable": False,
}
EXAMPLE_REWARD = EXAMPLE_ORDER["rewards"][0]
EXAMPLE_DELIVERED_REWARD = {**EXAMPLE_REWARD, "status": "delivered", "code": "••••••••••••NPQR",
                            "delivered_at": "2026-11-22T10:00:04Z"}  # fmt: skip
EXAMPLE_CANCELED_ORDER = {
    **EXAMPLE_ORDER,
    "status": "canceled",
    "rewards": [{**EXAMPLE_REWARD, "status": "canceled"}],
}
ORDER_EXAMPLE = OpenApiExample("Order", value=EXAMPLE_ORDER, response_only=True)
REWARD_EXAMPLE = OpenApiExample("Delivered reward", value=EXAMPLE_DELIVERED_REWARD, response_only=True)
PROBLEM_409 = {
    "type": "https://docs.rewards-portal.dev/errors/not_cancelable",
    "title": "Not cancelable",
    "status": 409,
    "detail": "Nothing in this order can be canceled any more (everything is delivered, failed or canceled).",
    "code": "not_cancelable",
    "retryable": False,
}
PROBLEM_409_EXAMPLE = OpenApiExample("Not cancelable", value=PROBLEM_409, response_only=True, status_codes=["409"])
PROBLEM_402 = {
    "type": "https://docs.rewards-portal.dev/errors/insufficient_funds",
    "title": "Insufficient funds",
    "status": 402,
    "detail": "Available USD funds do not cover 25.00 USD.",
    "code": "insufficient_funds",
    "retryable": False,
}


def may_send(request: Any) -> bool:
    """Bearer links (claim_url) go only to keys that may send: a claim link opens the code like a reveal."""
    return "write" in getattr(getattr(request, "api_key", None), "scopes", ())


class AmountField(serializers.DecimalField):
    """A decimal amount as the API documents it: a string of ASCII digits (or a JSON integer), never a float
    or an exponent, and never digits of another script that Python's Decimal would quietly accept."""

    def to_internal_value(self, data: Any) -> Any:
        if not amount_text_ok(data):
            raise serializers.ValidationError('Write the amount as a string of digits and a point, e.g. "25.00".')
        return super().to_internal_value(data)


class RecipientInput(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    email = serializers.EmailField(required=False, allow_blank=True, allow_null=True)
    phone = serializers.CharField(max_length=20, required=False, allow_blank=True, allow_null=True)
    # The language of the claim page, emails and SMS (`en`, `ms`); else the program's, else the tenant's.
    locale = serializers.CharField(max_length=16, required=False, allow_blank=True, allow_null=True)


class AddressInput(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    line1 = serializers.CharField(max_length=200, required=False, allow_blank=True)
    line2 = serializers.CharField(max_length=200, required=False, allow_blank=True, allow_null=True)
    city = serializers.CharField(max_length=100, required=False, allow_blank=True)
    state = serializers.CharField(max_length=100, required=False, allow_blank=True, allow_null=True)
    postal_code = serializers.CharField(max_length=20, required=False, allow_blank=True, allow_null=True)
    country = serializers.CharField(max_length=2, required=False, allow_blank=True)


class RewardInputSerializer(serializers.Serializer):
    product_id = serializers.UUIDField(required=False, help_text="The product's id, or give its `sku`")
    sku = serializers.CharField(required=False, max_length=64, help_text="The product's SKU, instead of product_id")
    amount = AmountField(max_digits=16, decimal_places=4, min_value=0, coerce_to_string=True)
    currency = serializers.CharField(min_length=3, max_length=3, required=False, allow_null=True)
    quantity = serializers.IntegerField(min_value=1, max_value=500, default=1)
    delivery_method = serializers.ChoiceField(choices=DeliveryMethod.values, required=False, allow_null=True)
    recipient = RecipientInput(required=False)
    person_id = serializers.UUIDField(required=False, allow_null=True, help_text="Instead of recipient")
    person_external_id = serializers.CharField(
        max_length=100, required=False, allow_null=True, allow_blank=True, help_text="Instead of recipient"
    )
    message = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")
    sender_name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    deliver_at = serializers.DateTimeField(required=False, allow_null=True)
    claim_by = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Claim links: the deadline to claim (default: the program's claim_days)",
    )
    country = serializers.CharField(min_length=2, max_length=2, required=False, allow_null=True)
    shipping_address = AddressInput(required=False, allow_null=True)
    shipping_method_id = serializers.UUIDField(required=False, allow_null=True)
    external_id = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    metadata = serializers.JSONField(required=False, default=dict, help_text=METADATA_HELP)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("product_id") and not (attrs.get("sku") or "").strip():
            raise serializers.ValidationError({"product_id": ["Give the product_id or the sku."]})
        return attrs


class OrderCreateInput(serializers.Serializer):
    type = serializers.ChoiceField(choices=OrderType.values)
    external_id = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    po_number = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    program = serializers.CharField(max_length=60, required=False, allow_null=True, allow_blank=True)
    funding_currency = serializers.CharField(min_length=3, max_length=3, required=False, allow_null=True)
    claim_by = serializers.DateTimeField(required=False, allow_null=True, help_text="Default claim_by of every reward")
    metadata = serializers.JSONField(required=False, default=dict, help_text=METADATA_HELP)
    # many=True: DRF hands max_length to the ListSerializer it builds; the DRF stubs only know the child's arguments.
    rewards = RewardInputSerializer(many=True, allow_empty=False, max_length=500)  # type: ignore[call-arg]


class MoneyTotalOutput(serializers.Serializer):
    amount = serializers.CharField()
    currency = serializers.CharField()
    fx_rate = serializers.CharField(allow_null=True)
    fees = serializers.CharField()
    shipping = serializers.CharField()


class RewardOutput(serializers.Serializer):
    """Documentation of the reward shape rendered by orders.selectors.reward_render."""

    id = serializers.UUIDField()
    reference = serializers.CharField(help_text='Short human reference, unique in the tenant, e.g. "RW-7K3Q-92"')
    order_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=RewardStatus.values)
    product = serializers.DictField()
    amount = serializers.CharField()
    currency = serializers.CharField()
    charge = serializers.DictField()
    delivery_method = serializers.ChoiceField(choices=DeliveryMethod.values)
    person_id = serializers.UUIDField(allow_null=True)
    recipient = serializers.DictField()
    message = serializers.CharField()
    sender_name = serializers.CharField()
    locale = serializers.CharField(
        allow_null=True, help_text="The language of its claim page, emails and SMS (recipient, program, tenant)"
    )
    deliver_at = serializers.DateTimeField(allow_null=True)
    claim_url = serializers.URLField(allow_null=True)
    claim_by = serializers.DateTimeField(allow_null=True, help_text="Claim links: when the link expires")
    code = serializers.CharField(allow_null=True, help_text="Masked (last 4 only); use /reveal for API delivery")
    shipment_id = serializers.UUIDField(allow_null=True)
    failure_reason = serializers.CharField(allow_null=True)
    external_id = serializers.CharField(allow_null=True)
    metadata = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField()
    delivered_at = serializers.DateTimeField(allow_null=True)
    opened_at = serializers.DateTimeField(
        allow_null=True, help_text="First opened by the recipient (email pixel, a followed link, the claim page)."
    )
    clicked_at = serializers.DateTimeField(allow_null=True, help_text="First followed link of its email.")

    def to_representation(self, instance):
        return reward_render(instance, bearer=may_send(self.context.get("request")))


class OrderOutput(serializers.Serializer):
    """Documentation of the order shape rendered by orders.selectors.order_render."""

    id = serializers.UUIDField()
    type = serializers.ChoiceField(choices=OrderType.values)
    status = serializers.ChoiceField(choices=OrderStatus.values)
    external_id = serializers.CharField(allow_null=True)
    po_number = serializers.CharField(allow_null=True)
    program = serializers.CharField(allow_null=True)
    automation_id = serializers.UUIDField(allow_null=True)
    total = MoneyTotalOutput()
    rewards = RewardOutput(many=True)
    approval = serializers.DictField(
        allow_null=True,
        help_text="Maker–checker: status, requested_by, expires_at, "
        "decided_by, decided_at, reason; null when no approval was needed",
    )
    metadata = serializers.DictField(child=serializers.CharField())
    created_at = serializers.DateTimeField()

    def to_representation(self, instance):
        return order_render(instance, bearer=may_send(self.context.get("request")))


_order_inputs = threading.local()


def order_create_input(data: Any) -> OrderCreateInput:
    """OrderCreateInput bound to `data`, this thread's instance used again.

    DRF builds an instance's fields by deep-copying the declared ones, nested serializers' too: ~0.45 ms of the
    ~5.4 ms of CPU an order costs in-process (bench/PROFILE-orders.md). Validation keeps its state only in the
    instance's input, result and errors, which are reset here; the fields themselves are read-only to it.
    """
    serializer = getattr(_order_inputs, "serializer", None)
    if serializer is None:
        serializer = _order_inputs.serializer = OrderCreateInput(data=data)
        return serializer
    serializer.initial_data = data
    for state in ("_validated_data", "_errors", "_data"):
        serializer.__dict__.pop(state, None)
    return serializer


def _reward_inputs(rewards: list[dict], *, claim_by: datetime | None = None) -> list[RewardInput]:
    inputs = []
    for item in rewards:
        recipient = {key: value or "" for key, value in dict(item.get("recipient") or {}).items()}
        inputs.append(
            RewardInput(
                product_id=str(item["product_id"]) if item.get("product_id") else item["sku"].strip().lower(),
                amount=item["amount"],
                currency=(item.get("currency") or None),
                quantity=item.get("quantity", 1),
                delivery_method=item.get("delivery_method") or None,
                recipient=recipient,
                message=item.get("message", ""),
                sender_name=item.get("sender_name", ""),
                deliver_at=item.get("deliver_at"),
                claim_by=item.get("claim_by") or claim_by,
                country=item.get("country"),
                shipping_address=dict(item["shipping_address"]) if item.get("shipping_address") else None,
                shipping_method_id=str(item["shipping_method_id"]) if item.get("shipping_method_id") else None,
                person_id=str(item["person_id"]) if item.get("person_id") else None,
                person_external_id=item.get("person_external_id") or None,
                external_id=item.get("external_id", "").strip(),
                metadata=item.get("metadata") or {},
            )
        )
    return inputs


class OrderListCreateApi(TenantListAPIView):
    serializer_class = OrderOutput

    @extend_schema(
        operation_id="orders_list",
        summary="List orders",
        parameters=[
            OpenApiParameter("status", str, enum=OrderStatus.values),
            OpenApiParameter("external_id", str),
            OpenApiParameter("program", str),
            OpenApiParameter("q", str, description=SEARCH_HELP),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="ISO 8601 timestamp"),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="ISO 8601 timestamp"),
            OpenApiParameter("automation_id", OpenApiTypes.UUID, description="Orders placed by this automation"),
            OpenApiParameter("person_id", OpenApiTypes.UUID, description="Orders with a reward for this person"),
        ],
        examples=[
            OpenApiExample(
                "A page of orders",
                value={
                    "next": "https://rewards.example/api/v1/orders?cursor=cD0yMDI2",
                    "previous": None,
                    "results": [EXAMPLE_ORDER],
                },
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        # A search: planned for its words every time (core.db.custom_plans; a generic plan walked every order).
        with custom_plans(when=bool(request.query_params.get("q"))):
            return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        dates = {}
        for name in ("created_after", "created_before"):
            if params.get(name):
                field = serializers.DateTimeField()
                try:
                    dates[name] = field.to_internal_value(params[name])
                except serializers.ValidationError:
                    raise ApplicationError(
                        f"{name} must be an ISO 8601 timestamp.", code="validation_error", errors={name: ["Bad date."]}
                    ) from None
        return order_list(
            status=choice_param(self.request, "status", OrderStatus.values),
            external_id=params.get("external_id"),
            program=params.get("program"),
            automation_id=uuid_param(self.request, "automation_id"),
            person_id=uuid_param(self.request, "person_id"),
            q=params.get("q"),
            **dates,
        )

    @extend_schema(
        operation_id="orders_create",
        summary="Create an order (funds are held at once)",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description="Same key + same body replays the first response (Idempotent-Replayed: true); "
                "same key + different body is 422; same key still in flight is 409. Kept 24 h or more.",
            )
        ],
        request=OrderCreateInput,
        responses={
            201: OrderOutput,
            202: OpenApiResponse(
                OrderOutput,
                description="The tenant's approval policy applies: status `pending_approval`, funds held, nothing "
                "fulfilled until another user or an `approve` key approves it",
            ),
            402: OpenApiResponse(description="insufficient_funds (problem+json)"),
            409: OpenApiResponse(description="idempotency_key_in_flight / duplicate_external_id"),
            422: OpenApiResponse(
                description="validation_error / product_unavailable / amount_not_allowed / budget_exceeded"
            ),
        },
        examples=[
            OpenApiExample("Digital order", value=EXAMPLE_ORDER_REQUEST, request_only=True),
            OpenApiExample("Physical order", value=EXAMPLE_PHYSICAL_REQUEST, request_only=True),
            OpenApiExample("Created", value=EXAMPLE_ORDER, response_only=True, status_codes=["201"]),
            OpenApiExample(
                "Waiting for approval", value=EXAMPLE_PENDING_ORDER, response_only=True, status_codes=["202"]
            ),
            OpenApiExample("Insufficient funds", value=PROBLEM_402, response_only=True, status_codes=["402"]),
        ],
    )
    def post(self, request):
        idempotency_key = request.headers.get("Idempotency-Key", "").strip() or None
        if idempotency_key and len(idempotency_key) > 255:
            raise ApplicationError("Idempotency-Key is at most 255 characters.", code="validation_error")
        serializer = order_create_input(request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        status, body, replayed = order_create(
            order_type=data["type"],
            rewards=_reward_inputs(data["rewards"], claim_by=data.get("claim_by")),
            idempotency_key=idempotency_key,
            body_hash=request_hash(request.data),
            # The order as just written (its rewards attached), not re-read; a write key may see the claim links.
            render=lambda order: order_render(order, bearer=True),
            external_id=data.get("external_id") or None,
            po_number=data.get("po_number", ""),
            program_slug=data.get("program") or None,
            funding_currency=data.get("funding_currency") or None,
            api_key_id=request.api_key.key_id,
            metadata=data.get("metadata") or {},
            # The request's audit row goes in with the order (api.views would write it after the commit).
            audit=lambda order, status: api_write_audit_event(request, object_id=order.id, status=status),
        )
        response = Response(body, status=status)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response


class OrderDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="orders_retrieve", summary="Get an order", responses={200: OrderOutput}, examples=[ORDER_EXAMPLE]
    )
    def get(self, request, order_id):
        return Response(order_render(order_get(order_id=order_id), bearer=may_send(request)))


class OrderCancelApi(TenantAPIView):
    @extend_schema(
        operation_id="orders_cancel",
        summary="Cancel what has not been delivered; releases its funds",
        request=None,
        responses={200: OrderOutput, 409: OpenApiResponse(description="not_cancelable")},
        examples=[
            OpenApiExample("Canceled", value=EXAMPLE_CANCELED_ORDER, response_only=True, status_codes=["200"]),
            PROBLEM_409_EXAMPLE,
        ],
    )
    def post(self, request, order_id):
        order_cancel(order_id=order_id)
        return Response(order_render(order_get(order_id=order_id), bearer=may_send(request)))


class ApprovalDecisionInput(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


def _decision_schema(operation_id: str, summary: str, example: dict[str, Any]) -> Any:
    return extend_schema(
        operation_id=operation_id,
        summary=summary,
        description="Needs the `approve` scope. The key that placed the order cannot decide it (403 "
        "`four_eyes_required`); a decision already made otherwise is 409 `approval_decided`; repeating the same "
        "decision returns the order unchanged.",
        request=ApprovalDecisionInput,
        responses={
            200: OrderOutput,
            403: OpenApiResponse(description="four_eyes_required / the key lacks the approve scope"),
            404: OpenApiResponse(description="no such order (another tenant's order is never found)"),
            409: OpenApiResponse(description="approval_decided"),
        },
        examples=[
            OpenApiExample("Decided", value=example, response_only=True, status_codes=["200"]),
            OpenApiExample("Four eyes", value=PROBLEM_FOUR_EYES, response_only=True, status_codes=["403"]),
        ],
    )


class OrderApproveApi(TenantAPIView):
    required_scope = "approve"

    @_decision_schema("orders_approve", "Approve an order waiting for approval", EXAMPLE_APPROVED_ORDER)
    def post(self, request, order_id):
        order_approve(order_id=order_id, actor=self.actor)
        return Response(order_render(order_get(order_id=order_id), bearer=may_send(request)))


class OrderRejectApi(TenantAPIView):
    required_scope = "approve"

    @_decision_schema("orders_reject", "Reject an order waiting for approval; its funds are released",
                      EXAMPLE_REJECTED_ORDER)  # fmt: skip
    def post(self, request, order_id):
        serializer = ApprovalDecisionInput(data=request.data or {})
        serializer.is_valid(raise_exception=True)
        order_reject(order_id=order_id, actor=self.actor, reason=serializer.validated_data["reason"])
        return Response(order_render(order_get(order_id=order_id), bearer=may_send(request)))


class RewardListApi(TenantListAPIView):
    serializer_class = RewardOutput

    @extend_schema(
        operation_id="rewards_list",
        summary="List rewards",
        parameters=[
            OpenApiParameter("status", str, enum=RewardStatus.values),
            OpenApiParameter("order_id", OpenApiTypes.UUID),
            OpenApiParameter("recipient_email", str),
            OpenApiParameter("person_id", OpenApiTypes.UUID),
            OpenApiParameter("external_id", str, description="The reward's own external_id (e.g. a bulk row's)"),
            OpenApiParameter("reference", str, description='The short reference, e.g. "RW-7K3Q-92"'),
            OpenApiParameter("q", str, description=SEARCH_HELP),
        ],
        examples=[
            OpenApiExample(
                "A page of rewards",
                value={"next": None, "previous": None, "results": [EXAMPLE_DELIVERED_REWARD]},
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def list(self, request, *args, **kwargs):
        # A status or a search: planned for its value every time (core.db.custom_plans; a generic plan walked every
        # reward for a rare status).
        params = request.query_params
        with custom_plans(when=bool(params.get("status") or params.get("q"))):
            return super().list(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return reward_list(
            status=choice_param(self.request, "status", RewardStatus.values),
            order_id=uuid_param(self.request, "order_id"),  # a non-UUID was a 500 (the ORM raised)
            recipient_email=params.get("recipient_email"),
            person_id=uuid_param(self.request, "person_id"),
            external_id=params.get("external_id"),
            reference=params.get("reference"),
            q=params.get("q"),
        )


class RewardDetailApi(TenantAPIView):
    @extend_schema(
        operation_id="rewards_retrieve",
        summary="Get a reward",
        responses={200: RewardOutput},
        examples=[REWARD_EXAMPLE],
    )
    def get(self, request, reward_id):
        return Response(reward_render(reward_get(reward_id=reward_id), bearer=may_send(request)))


class RewardCancelApi(TenantAPIView):
    @extend_schema(
        operation_id="rewards_cancel",
        summary="Cancel a reward not yet delivered (or an unclaimed link); funds released or refunded",
        request=None,
        responses={200: RewardOutput, 409: OpenApiResponse(description="not_cancelable")},
        examples=[
            OpenApiExample(
                "Canceled", value={**EXAMPLE_REWARD, "status": "canceled"}, response_only=True, status_codes=["200"]
            ),
            PROBLEM_409_EXAMPLE,
        ],
    )
    def post(self, request, reward_id):
        reward_cancel(reward_id=reward_id)
        return Response(reward_render(reward_get(reward_id=reward_id), bearer=may_send(request)))


class BreakageRowOutput(serializers.Serializer):
    currency = serializers.CharField()
    released = serializers.CharField(help_text="Returned to available funds (codes never seen, voided first)")
    released_count = serializers.IntegerField()
    kept = serializers.CharField(help_text="Stayed spent: disclosed codes, refused voids, programs that keep codes")
    kept_count = serializers.IntegerField()


class BreakageReportOutput(serializers.Serializer):
    results = BreakageRowOutput(many=True)


class BreakageReportApi(TenantAPIView):
    """GET /api/v1/reports/breakage: claim links that expired unclaimed, per funding currency (orders.expiry)."""

    @extend_schema(
        operation_id="reports_breakage",
        summary="Breakage: what expired, unclaimed claim links returned to your funds or left spent, per currency",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="links that expired at or after"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="links that expired before"),
        ],
        responses={200: BreakageReportOutput},
        examples=[OpenApiExample("Report", response_only=True, value={"results": [{
            "currency": "USD", "released": "550.00", "released_count": 22, "kept": "75.00", "kept_count": 3}]})],
    )  # fmt: skip
    def get(self, request):
        window = {}
        for name, key in (("from", "since"), ("to", "until")):
            if request.query_params.get(name):
                try:
                    window[key] = serializers.DateTimeField().to_internal_value(request.query_params[name])
                except serializers.ValidationError:
                    raise ApplicationError(f"{name} must be an ISO 8601 timestamp.", code="validation_error",
                                           errors={name: ["Bad date."]}) from None  # fmt: skip
        with reads_from_replica():  # DATABASE_REPLICA_URLS: a report may be milliseconds behind
            breakage = breakage_by_currency(**window)
        rows = [
            {"currency": row.currency, "released": format_amount(row.released, row.currency),
             "released_count": row.released_count, "kept": format_amount(row.kept, row.currency),
             "kept_count": row.kept_count}
            for row in breakage
        ]  # fmt: skip
        return Response({"results": rows})
