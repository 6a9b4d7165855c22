from django.urls import path

from .apis import (
    OrderCancelApi,
    OrderDetailApi,
    OrderListCreateApi,
    RewardCancelApi,
    RewardDetailApi,
    RewardListApi,
)

urlpatterns = [
    path("orders", OrderListCreateApi.as_view(), name="order-list"),
    path("orders/<uuid:order_id>", OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<uuid:order_id>/cancel", OrderCancelApi.as_view(), name="order-cancel"),
    path("rewards", RewardListApi.as_view(), name="reward-list"),
    path("rewards/<uuid:reward_id>", RewardDetailApi.as_view(), name="reward-detail"),
    path("rewards/<uuid:reward_id>/cancel", RewardCancelApi.as_view(), name="reward-cancel"),
]
