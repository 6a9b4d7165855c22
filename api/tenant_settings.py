"""GET|PATCH /api/v1/tenant: the calling tenant's own settings (tenants.tenant_settings holds the rules).

A new setting adds a field to both serializers and an entry to tenants.tenant_settings.SETTINGS.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.errors import ApplicationError
from tenants.tenant_settings import PROTECTED_SETTINGS, tenant_settings_get, tenant_settings_update

from .views import TenantAPIView


class TenantSettingsInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    default_locale = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    timezone = serializers.CharField(required=False, allow_blank=True)
    approval_policy = serializers.JSONField(
        required=False,
        help_text='Maker–checker: {"thresholds": {"USD": "1000.00"}, "expires_after_days": 7, "keys": [key ids], '
        '"roles": [staff roles]}; {} for none. Changing it needs the `approve` scope.',
    )
    require_two_factor = serializers.BooleanField(
        required=False, help_text="Staff must set up two-factor sign-in. Changing it needs the `approve` scope."
    )


class TenantSettingsOutput(serializers.Serializer):
    name = serializers.CharField()
    default_locale = serializers.CharField(
        allow_null=True, help_text="The language of rewards whose recipient and program name none; null: the browser's"
    )
    timezone = serializers.CharField(help_text="IANA name; the portal shows and reads times in it")
    approval_policy = serializers.DictField(help_text="Maker–checker thresholds, keys, roles and expiry; {} for none")
    require_two_factor = serializers.BooleanField()

    def to_representation(self, instance: Any) -> dict[str, Any]:
        shown = tenant_settings_get(tenant=instance)
        return {**shown, "default_locale": shown["default_locale"] or None}


EXAMPLE = {
    "name": "Acme Sdn Bhd",
    "default_locale": "ms",
    "timezone": "Asia/Kuala_Lumpur",
    "approval_policy": {"thresholds": {"MYR": "5000.00", "USD": "1000.00"}, "expires_after_days": 7},
    "require_two_factor": True,
}


class TenantSettingsApi(TenantAPIView):
    """Settings of the credential's tenant: a live key reads and changes the live company (its sandbox follows),
    a sandbox key the sandbox twin only. PATCH needs the `write` scope."""

    @extend_schema(
        operation_id="tenant_retrieve",
        summary="The tenant's settings",
        responses={200: TenantSettingsOutput},
        examples=[OpenApiExample("Settings", value=EXAMPLE, response_only=True)],
    )
    def get(self, request):
        return Response(TenantSettingsOutput(self.tenant).data)

    @extend_schema(
        operation_id="tenant_partial_update",
        summary="Change the tenant's name, default language, time zone, approval policy or two-factor rule",
        request=TenantSettingsInput,
        responses={200: TenantSettingsOutput},
        examples=[
            OpenApiExample(
                "Malay, Kuala Lumpur time",
                value={"default_locale": "ms", "timezone": "Asia/Kuala_Lumpur"},
                request_only=True,
            ),
            OpenApiExample(
                "Approvals at 1,000 USD",
                value={"approval_policy": {"thresholds": {"USD": "1000.00"}, "expires_after_days": 7}},
                request_only=True,
            ),
            OpenApiExample("Updated", value=EXAMPLE, response_only=True),
        ],
    )
    def patch(self, request):
        if not isinstance(request.data, dict):
            raise ApplicationError("Send a JSON object of settings.", code="validation_error")
        unknown = sorted(set(request.data) - set(TenantSettingsInput().fields))
        if unknown:
            raise ApplicationError(
                f"Not settings: {', '.join(unknown)}.",
                code="validation_error",
                errors={field: ["Not a setting."] for field in unknown},
            )
        protected = sorted(PROTECTED_SETTINGS & set(request.data))
        if protected and "approve" not in request.api_key.scopes:
            raise ApplicationError(
                f"Changing {', '.join(protected)} needs a key with the `approve` scope.", code="forbidden", status=403
            )
        serializer = TenantSettingsInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = tenant_settings_update(tenant=self.tenant, changes=dict(serializer.validated_data), actor=self.actor)
        return Response(TenantSettingsOutput(tenant).data)
