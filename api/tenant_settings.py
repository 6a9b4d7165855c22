"""GET|PATCH /api/v1/tenant: the calling tenant's own settings (tenants.tenant_settings holds the rules).

A new setting adds a field to both serializers and an entry to tenants.tenant_settings.SETTINGS.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.errors import ApplicationError
from tenants.tenant_settings import tenant_settings_get, tenant_settings_update

from .views import TenantAPIView


class TenantSettingsInput(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    default_locale = serializers.CharField(required=False, allow_blank=True, allow_null=True)
    timezone = serializers.CharField(required=False, allow_blank=True)


class TenantSettingsOutput(serializers.Serializer):
    name = serializers.CharField()
    default_locale = serializers.CharField(
        allow_null=True, help_text="The language of rewards whose recipient and program name none; null: the browser's"
    )
    timezone = serializers.CharField(help_text="IANA name; the portal shows and reads times in it")

    def to_representation(self, instance: Any) -> dict[str, Any]:
        shown = tenant_settings_get(tenant=instance)
        return {**shown, "default_locale": shown["default_locale"] or None}


EXAMPLE = {"name": "Acme Sdn Bhd", "default_locale": "ms", "timezone": "Asia/Kuala_Lumpur"}


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
        summary="Change the tenant's name, default language or time zone",
        request=TenantSettingsInput,
        responses={200: TenantSettingsOutput},
        examples=[
            OpenApiExample(
                "Malay, Kuala Lumpur time",
                value={"default_locale": "ms", "timezone": "Asia/Kuala_Lumpur"},
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
        serializer = TenantSettingsInput(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = tenant_settings_update(tenant=self.tenant, changes=dict(serializer.validated_data), actor=self.actor)
        return Response(TenantSettingsOutput(tenant).data)
