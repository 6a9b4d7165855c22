from django.urls import path

from .apis import ActivityListCreateApi, PersonDetailApi, PersonExportApi, PersonListCreateApi, PrivacySettingsApi

urlpatterns = [
    path("people", PersonListCreateApi.as_view(), name="person-list"),
    path("people/<uuid:person_id>", PersonDetailApi.as_view(), name="person-detail"),
    path("people/<uuid:person_id>/export", PersonExportApi.as_view(), name="person-export"),
    path("privacy", PrivacySettingsApi.as_view(), name="privacy-settings"),
    path("activities", ActivityListCreateApi.as_view(), name="activity-list"),
]
