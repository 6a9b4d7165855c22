from django.urls import path

from .apis import (
    BreakageReportApi,
    OrderApproveApi,
    OrderCancelApi,
    OrderDetailApi,
    OrderListCreateApi,
    OrderRejectApi,
    RewardCancelApi,
    RewardDetailApi,
    RewardListApi,
)
from .report_apis import RewardsReportApi, SpendReportApi

urlpatterns = [
    path("reports/spend", SpendReportApi.as_view(), name="report-spend"),
    path("reports/rewards", RewardsReportApi.as_view(), name="report-rewards"),
    path("orders", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("orders/<uuid:order_id>/approve", OrderApproveApi.as_view(), name="order-approve"),
    path("orders/<uuid:order_id>/reject", OrderRejectApi.as_view(), name="order-reject"),
    path("rewards", RewardListApi.as_view(), name="reward-list"),
    path("rewards/<uuid:reward_id>", RewardDetailApi.as_view(), name="reward-detail"),
    path("rewards/<uuid:reward_id>/cancel", RewardCancelApi.as_view(), name="reward-cancel"),
    path("reports/breakage", BreakageReportApi.as_view(), name="report-breakage"),
]
