from django.urls import path

from .apis import FxRateListApi, LogoUploadApi, ProductDetailApi, ProductListApi, ShippingMethodListApi

urlpatterns = [
    path("products", ProductListApi.as_view(), name="product-list"),
    path("products/<str:product_id>", ProductDetailApi.as_view(), name="product-detail"),
    path("shipping-methods", ShippingMethodListApi.as_view(), name="shipping-method-list"),
    path("fx-rates", FxRateListApi.as_view(), name="fx-rate-list"),
    path("logos", LogoUploadApi.as_view(), name="logo-upload"),
]
