from django.urls import path

from .apis import ShipmentDetailApi

urlpatterns = [
    path("shipments/<uuid:shipment_id>", ShipmentDetailApi.as_view(), name="shipment-detail"),
]
