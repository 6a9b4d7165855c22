"""Permissions applied by the base API view: a tenant credential, and the scope the method needs."""

from rest_framework.permissions import SAFE_METHODS, BasePermission


class HasTenantCredential(BasePermission):
    message = "Authenticate with an API key or access token."

    def has_permission(self, request, view) -> bool:
        return getattr(request, "api_key", None) is not None


class HasScope(BasePermission):
    """GET/HEAD/OPTIONS need `read`; everything else needs `write`. A view may name `required_scope`."""

    def has_permission(self, request, view) -> bool:
        key = getattr(request, "api_key", None)
        if key is None:
            return False
        needed = getattr(view, "required_scope", None) or ("read" if request.method in SAFE_METHODS else "write")
        self.message = f"This API key lacks the `{needed}` scope."
        return needed in key.scopes
