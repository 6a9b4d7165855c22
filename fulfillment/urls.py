from django.urls import path

from .apis import (
    RewardResendApi,
    RewardRevealApi,
    ShipmentDetailApi,
    ShipmentListApi,
    ShipmentManifestApi,
    ShipmentTrackingApi,
)
from .apis_discounts import DiscountRedemptionApi, DiscountReportApi

urlpatterns = [
    path("discounts/redemptions", DiscountRedemptionApi.as_view(), name="discount-redemptions"),
    path("reports/discounts", DiscountReportApi.as_view(), name="report-discounts"),
    path("shipments", ShipmentListApi.as_view(), name="shipment-list"),
    path("shipments/manifest.csv", ShipmentManifestApi.as_view(), name="shipment-manifest"),
    path("shipments/<uuid:shipment_id>/tracking", ShipmentTrackingApi.as_view(), name="shipment-tracking"),
    path("shipments/<uuid:shipment_id>", ShipmentDetailApi.as_view(), name="shipment-detail"),
    path("rewards/<uuid:reward_id>/reveal", RewardRevealApi.as_view(), name="reward-reveal"),
    path("rewards/<uuid:reward_id>/resend", RewardResendApi.as_view(), name="reward-resend"),
]
