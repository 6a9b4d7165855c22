"""Portal URLs: mounted at the root, answered on tenant hosts only (the views 404 on the public host)."""

from django.urls import path, re_path

from .views import (
    account,
    approvals,
    audit_log,
    auth,
    bulk,
    dashboard,
    developers,
    points_import,
    reports,
    search,
    send,
    settings,
    team,
)
from .views import automations as automations_views
from .views import funds as funds_views
from .views import orders as orders_views
from .views import people as people_views
from .views import points as points_views
from .views import programs as programs_views

app_name = "portal"

urlpatterns = [
    path("", dashboard.DashboardView.as_view(), name="dashboard"),
    path("login/", auth.LoginView.as_view(), name="login"),
    path("login/two-factor/", auth.LoginTwoFactorView.as_view(), name="login_two_factor"),
    path("logout/", auth.LogoutView.as_view(), name="logout"),
    path("mode/", auth.ModeSwitchView.as_view(), name="mode"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", auth.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", auth.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("account/two-factor/", account.TwoFactorView.as_view(), name="two_factor"),
    path("account/language/", account.LanguageView.as_view(), name="account_language"),
    path("team/", team.TeamView.as_view(), name="team"),
    path("team/<int:user_id>/<str:action>", team.TeamMemberView.as_view(), name="team_member"),
    path("audit/", audit_log.AuditLogView.as_view(), name="audit"),
    path("approvals/", approvals.ApprovalsView.as_view(), name="approvals"),
    path(
        "approvals/<str:kind>/<uuid:object_id>/<str:action>",
        approvals.ApprovalDecisionView.as_view(),
        name="approval_decide",
    ),
    path("settings/security/", settings.SecuritySettingsView.as_view(), name="settings_security"),
    path("settings/company/", settings.CompanySettingsView.as_view(), name="settings_company"),
    path("send/", send.CatalogueView.as_view(), name="send"),
    path("send/catalogue.csv", send.CatalogueExportView.as_view(), name="catalogue_export"),
    path("send/<uuid:product_id>/", send.SendRewardView.as_view(), name="send_product"),
    path("send/orders/<uuid:order_id>/", send.SendDoneView.as_view(), name="send_done"),
    path("bulk/", bulk.BulkView.as_view(), name="bulk"),
    path("bulk/template.csv", bulk.BulkTemplateCsvView.as_view(), name="bulk_template"),
    path("bulk/<uuid:batch_id>/", bulk.BulkBatchView.as_view(), name="bulk_batch"),
    path("bulk/<uuid:batch_id>/confirm", bulk.BulkConfirmView.as_view(), name="bulk_confirm"),
    path("bulk/<uuid:batch_id>/cancel", bulk.BulkCancelView.as_view(), name="bulk_cancel"),
    path("bulk/<uuid:batch_id>/progress.json", bulk.BulkProgressView.as_view(), name="bulk_progress"),
    path("bulk/<uuid:batch_id>/errors.csv", bulk.BulkErrorsCsvView.as_view(), name="bulk_errors"),
    path("bulk/<uuid:batch_id>/results.csv", bulk.BulkResultsCsvView.as_view(), name="bulk_results"),
    path(
        "bulk/<uuid:batch_id>/errors.xlsx", bulk.BulkErrorsCsvView.as_view(), {"fmt": "xlsx"}, name="bulk_errors_xlsx"
    ),
    path(
        "bulk/<uuid:batch_id>/results.xlsx",
        bulk.BulkResultsCsvView.as_view(),
        {"fmt": "xlsx"},
        name="bulk_results_xlsx",
    ),
    path("bulk/template.xlsx", bulk.BulkTemplateCsvView.as_view(), {"fmt": "xlsx"}, name="bulk_template_xlsx"),
    path("search/", search.SearchView.as_view(), name="search"),
    path("orders/", orders_views.OrderListView.as_view(), name="orders"),
    path("orders/export.csv", orders_views.OrderExportView.as_view(), name="orders_export"),
    path("orders/<uuid:order_id>/", orders_views.OrderDetailView.as_view(), name="order"),
    path("orders/<uuid:order_id>/cancel", orders_views.OrderCancelView.as_view(), name="order_cancel"),
    path("rewards/<uuid:reward_id>/", orders_views.RewardDetailView.as_view(), name="reward"),
    path("rewards/<uuid:reward_id>/reveal", orders_views.RewardRevealView.as_view(), name="reward_reveal"),
    path("rewards/<uuid:reward_id>/<str:action>", orders_views.RewardActionView.as_view(), name="reward_action"),
    path("programs/", programs_views.ProgramListView.as_view(), name="programs"),
    path("programs/new/", programs_views.ProgramEditView.as_view(), name="program_new"),
    path("programs/<slug:slug>/", programs_views.ProgramEditView.as_view(), name="program_edit"),
    path("automations/", automations_views.AutomationListView.as_view(), name="automations"),
    path("automations/new/", automations_views.AutomationEditView.as_view(), name="automation_new"),
    path("automations/<uuid:automation_id>/", automations_views.AutomationView.as_view(), name="automation"),
    path(
        "automations/<uuid:automation_id>/edit/", automations_views.AutomationEditView.as_view(), name="automation_edit"
    ),
    path(
        "automations/<uuid:automation_id>/toggle",
        automations_views.AutomationToggleView.as_view(),
        name="automation_toggle",
    ),
    path("people/<uuid:person_id>/export.json", people_views.PersonExportView.as_view(), name="person_export"),
    path("people/<uuid:person_id>/erase", people_views.PersonEraseView.as_view(), name="person_erase"),
    path("people/", people_views.PeopleListView.as_view(), name="people"),
    path("people/new/", people_views.PersonEditView.as_view(), name="person_new"),
    path("people/import/", people_views.PeopleImportView.as_view(), name="people_import"),
    path("people/import/template.csv", people_views.PeopleTemplateCsvView.as_view(), name="people_template"),
    path("people/import/<uuid:batch_id>/", people_views.PeopleImportBatchView.as_view(), name="people_import_batch"),
    path(
        "people/import/<uuid:batch_id>/confirm",
        people_views.PeopleImportConfirmView.as_view(),
        name="people_import_confirm",
    ),
    path("people/<uuid:person_id>/", people_views.PersonView.as_view(), name="person"),
    path("people/<uuid:person_id>/edit/", people_views.PersonEditView.as_view(), name="person_edit"),
    path("people/<uuid:person_id>/status", people_views.PersonStatusView.as_view(), name="person_status"),
    path("points/", points_views.PointsView.as_view(), name="points"),
    path("points/import/", points_import.PointsImportView.as_view(), name="points_import"),
    path("points/import/template.csv", points_import.PointsTemplateCsvView.as_view(), name="points_template"),
    path("points/import/<uuid:batch_id>/", points_import.PointsImportBatchView.as_view(), name="points_import_batch"),
    path(
        "points/import/<uuid:batch_id>/confirm",
        points_import.PointsImportConfirmView.as_view(),
        name="points_import_confirm",
    ),
    path(
        "points/import/<uuid:batch_id>/discard",
        points_import.PointsImportDiscardView.as_view(),
        name="points_import_discard",
    ),
    path("points/awards/<uuid:award_id>/reverse", points_views.PointsReverseView.as_view(), name="points_reverse"),
    path("points/rules/", points_views.EarningRulesView.as_view(), name="earning_rules"),
    path(
        "points/rules/<uuid:rule_id>/<str:action>",
        points_views.EarningRuleActionView.as_view(),
        name="earning_rule_action",
    ),
    path("funds/", funds_views.FundsView.as_view(), name="funds"),
    path("reports/", reports.ReportsView.as_view(), name="reports"),
    re_path(
        r"^reports/(?P<report>spend|rewards|points|discounts)\.(?P<fmt>csv|xlsx)$",
        reports.ReportDownloadView.as_view(),
        name="reports_download",
    ),
    path("funds/statement.csv", funds_views.StatementExportView.as_view(), name="funds_export"),
    path("developers/", developers.DevelopersView.as_view(), name="developers"),
    path("developers/shown/<str:token>/", developers.ShownOnceView.as_view(), name="developers_shown"),
    path("developers/keys/<str:key_id>/<str:action>", developers.ApiKeyActionView.as_view(), name="developers_key"),
    path("developers/webhooks/", developers.WebhookCreateView.as_view(), name="developers_webhooks"),
    path("developers/webhooks/<str:endpoint_id>/", developers.WebhookEndpointView.as_view(), name="developers_webhook"),
    path(
        "developers/webhooks/<str:endpoint_id>/deliveries/<str:delivery_id>/redeliver",
        developers.WebhookRedeliverView.as_view(),
        name="developers_redeliver",
    ),
    path(
        "developers/webhooks/<str:endpoint_id>/<str:action>",
        developers.WebhookActionView.as_view(),
        name="developers_webhook_action",
    ),
]
