from django.urls import path

from .apis import ActivityListCreateApi, PersonDetailApi, PersonListCreateApi

urlpatterns = [
    path("people", PersonListCreateApi.as_view(), name="person-list"),
    path("people/<uuid:person_id>", PersonDetailApi.as_view(), name="person-detail"),
    path("activities", ActivityListCreateApi.as_view(), name="activity-list"),
]
