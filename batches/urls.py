from django.urls import path

from .apis import (
    BatchApproveApi,
    BatchCancelApi,
    BatchConfirmApi,
    BatchDetailApi,
    BatchErrorsCsvApi,
    BatchErrorsXlsxApi,
    BatchListCreateApi,
    BatchRejectApi,
    BatchResultsCsvApi,
    BatchResultsXlsxApi,
    BatchTemplateApi,
    PeopleImportApi,
    PeopleImportTemplateApi,
)

urlpatterns = [
    path("batches", BatchListCreateApi.as_view(), name="batch-list"),
    path("batches/template.csv", BatchTemplateApi.as_view(), name="batch-template"),
    path("batches/<uuid:batch_id>", BatchDetailApi.as_view(), name="batch-detail"),
    path("batches/<uuid:batch_id>/confirm", BatchConfirmApi.as_view(), name="batch-confirm"),
    path("batches/<uuid:batch_id>/cancel", BatchCancelApi.as_view(), name="batch-cancel"),
    path("batches/<uuid:batch_id>/approve", BatchApproveApi.as_view(), name="batch-approve"),
    path("batches/<uuid:batch_id>/reject", BatchRejectApi.as_view(), name="batch-reject"),
    path("batches/<uuid:batch_id>/errors.csv", BatchErrorsCsvApi.as_view(), name="batch-errors-csv"),
    path("batches/<uuid:batch_id>/results.csv", BatchResultsCsvApi.as_view(), name="batch-results-csv"),
    path("people/import", PeopleImportApi.as_view(), name="people-import"),
    path("people/import/template.csv", PeopleImportTemplateApi.as_view(), name="people-import-template"),
    path("batches/<uuid:batch_id>/errors.xlsx", BatchErrorsXlsxApi.as_view(), name="batch-errors-xlsx"),
    path("batches/<uuid:batch_id>/results.xlsx", BatchResultsXlsxApi.as_view(), name="batch-results-xlsx"),
]
