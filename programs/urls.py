from django.urls import path

from .apis import ProgramDetailApi, ProgramListApi

urlpatterns = [
    path("programs", ProgramListApi.as_view(), name="program-list"),
    path("programs/<str:slug>", ProgramDetailApi.as_view(), name="program-detail"),
]
