from django.urls import path

from .apis import BalanceListApi, TransactionListApi

urlpatterns = [
    path("balances", BalanceListApi.as_view(), name="balance-list"),
    path("transactions", TransactionListApi.as_view(), name="transaction-list"),
]
