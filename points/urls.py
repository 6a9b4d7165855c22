from django.urls import path

from .apis import (
    AwardCreateApi,
    AwardReverseApi,
    PersonPointsApi,
    PersonPointsHistoryApi,
    PersonPointsRedemptionApi,
    PointsImportApi,
    PointsReportApi,
)
from .apis_rules import EarningRuleDetailApi, EarningRuleListApi

urlpatterns = [
    path("earning-rules", EarningRuleListApi.as_view(), name="earning-rule-list"),
    path("earning-rules/<str:rule_id>", EarningRuleDetailApi.as_view(), name="earning-rule-detail"),
    path("reports/points", PointsReportApi.as_view(), name="report-points"),
    path("points/awards", AwardCreateApi.as_view(), name="points-award-create"),
    path("points/awards/import", PointsImportApi.as_view(), name="points-award-import"),
    path("points/awards/<uuid:award_id>/reverse", AwardReverseApi.as_view(), name="points-award-reverse"),
    path("people/<uuid:person_id>/points", PersonPointsApi.as_view(), name="person-points"),
    path("people/<uuid:person_id>/points/history", PersonPointsHistoryApi.as_view(), name="person-points-history"),
    path(
        "people/<uuid:person_id>/points/redemptions", PersonPointsRedemptionApi.as_view(), name="person-points-redeem"
    ),
]
