from django.urls import path

from .apis import RewardResendApi, RewardRevealApi, ShipmentDetailApi

urlpatterns = [
    path("shipments/<uuid:shipment_id>", ShipmentDetailApi.as_view(), name="shipment-detail"),
    path("rewards/<uuid:reward_id>/reveal", RewardRevealApi.as_view(), name="reward-reveal"),
    path("rewards/<uuid:reward_id>/resend", RewardResendApi.as_view(), name="reward-resend"),
]
