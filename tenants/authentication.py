"""DRF authentication: the routing middleware already resolved the credential; expose it to DRF."""

from __future__ import annotations

from rest_framework.authentication import BaseAuthentication


class ApiPrincipal:
    """What `request.user` is for an API call: the key, never a person."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key) -> None:
        self.key = key
        self.pk = None

    def __str__(self) -> str:
        return f"api-key:{self.key.key_id}"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        key = getattr(request._request, "api_key", None)
        if key is None:
            return None
        request.api_key = key
        request.tenant = key.tenant
        return ApiPrincipal(key), key

    def authenticate_header(self, request) -> str:
        return "Bearer"
