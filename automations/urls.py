from django.urls import path

from .apis import AutomationDetailApi, AutomationListCreateApi, AutomationPreviewApi, AutomationRunListApi

urlpatterns = [
    path("automations", AutomationListCreateApi.as_view(), name="automation-list"),
    path("automations/<uuid:automation_id>", AutomationDetailApi.as_view(), name="automation-detail"),
    path("automations/<uuid:automation_id>/preview", AutomationPreviewApi.as_view(), name="automation-preview"),
    path("automations/<uuid:automation_id>/runs", AutomationRunListApi.as_view(), name="automation-runs"),
]
