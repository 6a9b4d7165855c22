from django.urls import path

from .apis import BalanceListApi, TransactionDetailApi, TransactionListApi

urlpatterns = [
    path("balances", BalanceListApi.as_view(), name="balance-list"),
    path("transactions", TransactionListApi.as_view(), name="transaction-list"),
    path("transactions/<uuid:transaction_id>", TransactionDetailApi.as_view(), name="transaction-detail"),
]
