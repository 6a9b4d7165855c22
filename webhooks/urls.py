"""Routes for webhook endpoints, events and deliveries (included under /api/v1/)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("webhook-endpoints", apis.EndpointListCreateApi.as_view(), name="webhook-endpoint-list"),
    path("webhook-endpoints/<str:endpoint_id>", apis.EndpointDetailApi.as_view(), name="webhook-endpoint-detail"),
    path(
        "webhook-endpoints/<str:endpoint_id>/rotate-secret",
        apis.EndpointRotateSecretApi.as_view(),
        name="webhook-endpoint-rotate-secret",
    ),
    path("webhook-endpoints/<str:endpoint_id>/test", apis.EndpointTestApi.as_view(), name="webhook-endpoint-test"),
    path(
        "webhook-endpoints/<str:endpoint_id>/deliveries",
        apis.EndpointDeliveryListApi.as_view(),
        name="webhook-endpoint-deliveries",
    ),
    path(
        "webhook-endpoints/<str:endpoint_id>/redeliver-failed",
        apis.EndpointRedeliverFailedApi.as_view(),
        name="webhook-endpoint-redeliver-failed",
    ),
    path("events", apis.EventListApi.as_view(), name="event-list"),
    path("events/<str:event_id>", apis.EventDetailApi.as_view(), name="event-detail"),
    path("events/<str:event_id>/deliveries", apis.EventDeliveryListApi.as_view(), name="event-deliveries"),
    path("events/<str:event_id>/redeliver", apis.EventRedeliverApi.as_view(), name="event-redeliver"),
]
