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


# Every API error is RFC 9457 problem+json (core/problems.py). Documented on every operation so clients and
# schema-driven tests (schemathesis, security/tests) know each status an operation can answer.
PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details with a stable `code` (core/problems.py).",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "retryable": {"type": "boolean"},
        "errors": {"type": "object", "additionalProperties": True},
    },
    "required": ["type", "title", "status", "detail", "code", "retryable"],
}
PROBLEM_STATUSES = {
    "400": "malformed_request (unparseable body, JSON nested too deep) / validation_error (a `cursor` or `limit` "
    "the API did not issue)",
    "401": "unauthenticated / invalid_credentials / key_revoked / key_expired / token_expired",
    "403": "forbidden (scope) / ip_not_allowed / tenant_suspended",
    "404": "not_found (also another tenant's object)",
    "422": "validation_error and business refusals (see `code`)",
    "429": "rate_limited / too_many_failed_attempts (with Retry-After)",
    "503": "service_unavailable: PostgreSQL or Redis briefly unreachable; nothing written, retry after Retry-After "
    "(writes with the same Idempotency-Key)",
}


def problem_responses_hook(result, generator, request, public):
    """drf-spectacular postprocessing hook: add the problem+json error responses to every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Problem", PROBLEM_SCHEMA)
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            statuses = dict(PROBLEM_STATUSES)
            if "requestBody" in operation:
                statuses["413"] = "payload_too_large (a body over DATA_UPLOAD_MAX_MEMORY_SIZE)"
                statuses["415"] = "unsupported_media_type"
            if method != "get":
                statuses["409"] = (
                    "a state conflict: not_cancelable, invalid_state_transition, idempotency_key_in_flight…"
                )
            for status, description in statuses.items():
                response = responses.setdefault(status, {"description": description})
                response.setdefault("content", {}).update(problem)
            for status, response in responses.items():  # statuses documented by a view (402, 409, 422…)
                if status[0] in "45":
                    response.setdefault("content", {}).update(problem)
    return result
