"""drf-spectacular extensions: document our bearer authentication (API key or access token)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.authentication.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key (`rp_live_…` live, `rp_test_…` sandbox twin) or an access token from "
            "`POST /api/v1/tokens`.",
        }
