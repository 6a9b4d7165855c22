"""The staff portal and the operator console; at start-up the Django admin's sign-in becomes the console's."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Staff portal"

    def ready(self) -> None:
        from django.contrib import admin

        from .console.auth import admin_login_view
        from .console.base import admin_has_permission

        # The admin signs in through the console (password, then the TOTP step) and lets in only operators who
        # passed two-factor enrolment where it is required: one sign-in path, one second factor.
        admin.site.login = admin_login_view  # type: ignore[method-assign]
        admin.site.has_permission = admin_has_permission  # type: ignore[method-assign]
