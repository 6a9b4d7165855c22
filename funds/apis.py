"""GET /api/v1/balances and GET /api/v1/transactions."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response

from api.params import choice_param
from api.views import TenantAPIView, TenantListAPIView, TenantRetrieveAPIView
from core.money import format_amount

from .models import TransactionKind
from .selectors import balance_list, transaction_get, transaction_list

EXAMPLE_TRANSACTION = {
    "id": "0dc41623-cf8f-4765-9b47-02e5e618e03d",
    "kind": "hold",
    "currency": "USD",
    "amount": "25.00",
    "description": "Hold for reward:abb660df-87b2-4059-9fb7-d76ab10c1e83",
    "reference": "reward:abb660df-87b2-4059-9fb7-d76ab10c1e83",
    "created_at": "2026-11-22T10:00:00Z",
}


class BalanceOutput(serializers.Serializer):
    currency = serializers.CharField()
    posted = serializers.CharField()
    held = serializers.CharField()
    available = serializers.CharField()
    low_balance_threshold = serializers.CharField(allow_null=True)

    def to_representation(self, balance):
        money = lambda value: None if value is None else format_amount(value, balance.currency)  # noqa: E731
        return {
            "currency": balance.currency,
            "posted": money(balance.posted),
            "held": money(balance.held),
            "available": money(balance.available),
            "low_balance_threshold": money(balance.low_balance_threshold),
        }


class TransactionOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    currency = serializers.CharField()
    amount = serializers.SerializerMethodField()
    description = serializers.CharField()
    reference = serializers.CharField()
    created_at = serializers.DateTimeField()

    def get_amount(self, txn) -> str:
        return format_amount(txn.amount, txn.currency)


class BalanceListApi(TenantAPIView):
    @extend_schema(
        operation_id="balances_list",
        summary="Balances per currency",
        # The body is {"results": [...]} (it was documented as a bare array).
        responses={200: inline_serializer("BalanceList", {"results": BalanceOutput(many=True)})},
        examples=[
            OpenApiExample(
                "Balances",
                value={
                    "results": [
                        {
                            "currency": "USD",
                            "posted": "5000.00",
                            "held": "125.00",
                            "available": "4875.00",
                            "low_balance_threshold": "500.00",
                        }
                    ]
                },
                response_only=True,
            )
        ],
    )
    def get(self, request):
        return Response({"results": BalanceOutput(balance_list(), many=True).data})


class TransactionListApi(TenantListAPIView):
    serializer_class = TransactionOutput

    @extend_schema(
        operation_id="transactions_list",
        summary="Ledger history (deposits, holds, captures, releases, refunds)",
        parameters=[
            OpenApiParameter("kind", str, enum=TransactionKind.values),
            OpenApiParameter("currency", str),
        ],
        examples=[
            OpenApiExample(
                "A page of transactions",
                value={"next": None, "previous": None, "results": [EXAMPLE_TRANSACTION]},
                response_only=True,
            )
        ],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return transaction_list(
            kind=choice_param(self.request, "kind", TransactionKind.values),
            currency=self.request.query_params.get("currency"),
        )


class TransactionDetailApi(TenantRetrieveAPIView):
    serializer_class = TransactionOutput

    @extend_schema(
        operation_id="transactions_retrieve",
        summary="One ledger transaction",
        examples=[OpenApiExample("Hold", value=EXAMPLE_TRANSACTION, response_only=True)],
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self):
        return transaction_get(transaction_id=self.kwargs["transaction_id"])
