"""The operator's admin on the public schema: tenants, domains, API keys (hashes only, never secrets)."""

from django.contrib import admin

from .models import ApiKey, Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "slug", "name", "is_sandbox", "schema_name", "schema_ready", "default_currency", "status", "created_at",
    )  # fmt: skip
    list_filter = ("status", "is_sandbox", "default_currency")
    search_fields = ("slug", "name")
    readonly_fields = ("schema_name", "is_sandbox", "live", "schema_ready", "created_at")
    inlines = [DomainInline]

    def has_add_permission(self, request) -> bool:
        return False  # provisioning goes through `manage.py tenant_create` (schemas + sandbox twin)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain", "tenant", "is_primary")
    search_fields = ("domain",)


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("key_id", "tenant", "name", "scopes", "created_at", "last_used_at", "expires_at", "revoked_at")
    list_filter = ("tenant__is_sandbox",)
    search_fields = ("key_id", "name", "tenant__slug")
    readonly_fields = ("key_id", "tenant", "key_hash", "last4", "created_at", "last_used_at")
    exclude = ()

    def has_add_permission(self, request) -> bool:
        return False  # keys are issued by `manage.py api_key_create` or the portal (shown once)
