"""POST /api/v1/tokens — OAuth2 client credentials (RFC 6749 §4.4): an API key for a short-lived bearer token.

The client id is the key id, the client secret the whole key (`rp_live_<key id>_…`). The client authenticates
with HTTP Basic (`client_secret_basic`, RFC 6749 §2.3.1) or with `client_id` and `client_secret` in the body
(`client_secret_post`), not both. The body is form-encoded as RFC 6749 asks; multipart and JSON are accepted too.

Errors follow RFC 6749 §5.2 inside the project's problem+json document: `error` (`invalid_request`,
`invalid_client`, `unsupported_grant_type`, `invalid_scope`, `unauthorized_client`) and `error_description`
beside `type`, `status`, `code`, `detail`. OAuth client libraries read `error` from any JSON body (they do
not insist on `application/json`), our clients keep reading `code`, which keeps its earlier values
(`invalid_credentials`, `key_revoked`, `validation_error`…). `invalid_client` is a 401 with WWW-Authenticate
(RFC 6749 allows it for body credentials and requires it for Basic); a suspended tenant or a fenced address
is `unauthorized_client` (400). Every answer has `Cache-Control: no-store`.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from typing import Any
from urllib.parse import unquote_plus

from django.http import QueryDict
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApplicationError
from core.parsers import JSONParser
from core.problems import problem_response

from .authentication import (
    GUESS_CODES,
    address_failures_exceeded,
    credential_failure_record,
    presented_key_id,
    too_many_failures_response,
)
from .middleware import client_ip
from .models import ApiScope
from .services import CredentialError, access_token_issue

BASIC_CHALLENGE = 'Basic realm="rewards_portal"'
MAX_CLIENT_ID = 64
MAX_CLIENT_SECRET = 256
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1: tokens are never cached


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: `error` for OAuth clients, `code` (and `errors`) for ours."""

    def __init__(
        self,
        error: str,
        detail: str,
        *,
        status: int = 400,
        code: str = "validation_error",
        errors: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.error, self.detail, self.status, self.code = error, detail, status, code
        self.errors = errors
        self.headers = headers or {}

    def response(self):
        return problem_response(
            status=self.status,
            code=self.code,
            detail=self.detail,
            errors=self.errors,
            extensions={"error": self.error, "error_description": self.detail},
            headers={**NO_STORE, **self.headers},
        )


def _invalid_request(name: str, detail: str) -> OAuthError:
    return OAuthError("invalid_request", detail, errors={name: [detail]})


def _invalid_client(detail: str, *, code: str = "invalid_credentials") -> OAuthError:
    return OAuthError("invalid_client", detail, status=401, code=code, headers={"WWW-Authenticate": BASIC_CHALLENGE})


def _parameter(data: Any, name: str) -> str | None:
    """A request parameter, given at most once (RFC 6749 §3.2) and a string."""
    if isinstance(data, QueryDict):
        values = data.getlist(name)
    elif isinstance(data, dict):
        values = [data[name]] if name in data else []
    else:
        raise _invalid_request("non_field_errors", "The body must be a form (or a JSON object) of parameters.")
    if not values:
        return None
    if len(values) > 1:
        raise _invalid_request(name, f"{name} is given more than once.")
    if not isinstance(values[0], str):
        raise _invalid_request(name, f"{name} must be a string.")
    return values[0]


def _basic_credentials(header: str) -> tuple[str, str]:
    """client_id and client_secret from `Authorization: Basic base64(urlencoded id ":" urlencoded secret)`."""
    encoded = header.partition(" ")[2]
    try:
        decoded = b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _invalid_client("The Basic credentials are not valid base64 of client_id:client_secret.") from None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        raise _invalid_client("The Basic credentials are not valid base64 of client_id:client_secret.")
    return unquote_plus(client_id), unquote_plus(client_secret)


def _requested_scopes(scope: str | None) -> list[str] | None:
    if scope is None:
        return None
    scopes = scope.split(" ")  # RFC 6749 §3.3: scope tokens separated by single spaces
    unknown = [name for name in scopes if name not in ApiScope.values]
    if unknown:
        raise OAuthError(
            "invalid_scope",
            f"scope must be space-separated scopes from: {', '.join(ApiScope.values)}.",
            code="invalid_scope",
            errors={"scope": [f"Unknown scope: {', '.join(map(repr, unknown))}."]},
        )
    return scopes


_SCOPES = "|".join(ApiScope.values)


class TokenRequestSerializer(serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=["client_credentials"])
    client_id = serializers.CharField(max_length=MAX_CLIENT_ID, required=False, help_text="Or use HTTP Basic.")
    client_secret = serializers.CharField(max_length=MAX_CLIENT_SECRET, required=False, help_text="Or use HTTP Basic.")
    scope = serializers.RegexField(
        rf"^({_SCOPES})( ({_SCOPES}))*$", required=False, help_text="Space-separated; narrows the token to these."
    )


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    scope = serializers.CharField()


class TokenApi(APIView):
    """The one unauthenticated API endpoint: it *is* the credential check (guesses throttled as in the
    middleware: tenants/authentication.py)."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    # Form-encoded as RFC 6749 asks; multipart and JSON were accepted before and still are.
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        operation_id="token_create",
        summary="Exchange an API key for an access token",
        description="OAuth 2.0 client credentials. Authenticate with HTTP Basic (client id = key id, client "
        "secret = the key) or send `client_id` and `client_secret` in the form body. Errors carry the RFC 6749 "
        "`error` (`invalid_request`, `invalid_client`, `unsupported_grant_type`, `invalid_scope`, "
        "`unauthorized_client`) beside the problem fields.",
        request={
            "application/x-www-form-urlencoded": TokenRequestSerializer,
            "application/json": TokenRequestSerializer,
        },
        responses={
            200: TokenResponseSerializer,
            400: OpenApiResponse(
                description="invalid_request / unsupported_grant_type / invalid_scope / unauthorized_client"
            ),
            401: OpenApiResponse(description="invalid_client"),
        },
        auth=[],
        examples=[
            OpenApiExample(
                "Client credentials",
                request_only=True,
                value={
                    "grant_type": "client_credentials",
                    "client_id": "k3y1d0000000",
                    "client_secret": "rp_test_k3y1d0000000_…",
                },
            ),
            OpenApiExample(
                "Token",
                response_only=True,
                value={"access_token": "rp_at_…", "token_type": "Bearer", "expires_in": 3600, "scope": "read write"},
            ),
        ],
    )
    def post(self, request):
        try:
            token = self._issue(request)
        except OAuthError as exc:
            return exc.response()
        return Response(token, headers=NO_STORE)

    def _issue(self, request) -> dict:
        ip = client_ip(request)
        data = request.data
        grant_type = _parameter(data, "grant_type")
        requested = _requested_scopes(_parameter(data, "scope"))
        body_id, body_secret = _parameter(data, "client_id"), _parameter(data, "client_secret")
        # Only HTTP Basic authenticates a client here; another scheme (a client that sends its bearer token on
        # every request) is ignored, as it always was.
        header = request.META.get("HTTP_AUTHORIZATION", "")
        header = header if header.partition(" ")[0].lower() == "basic" else ""
        if header and body_secret is not None:
            raise _invalid_request("client_secret", "Use one client authentication: HTTP Basic or the body, not both.")
        if grant_type is None:
            raise _invalid_request("grant_type", "grant_type is required (client_credentials).")
        if grant_type != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type",
                "Only the client_credentials grant is supported.",
                errors={"grant_type": ["Use client_credentials."]},
            )
        client_id, client_secret = _basic_credentials(header) if header else (body_id, body_secret)
        if header and body_id is not None and body_id != client_id:
            raise _invalid_request("client_id", "client_id in the body differs from the Basic credentials.")
        if not client_id or not client_secret:
            retry_after = address_failures_exceeded(ip)
            if retry_after:
                raise _ThrottledError(retry_after)
            raise _invalid_client("Authenticate the client: HTTP Basic, or client_id and client_secret.")
        try:
            if len(client_id) > MAX_CLIENT_ID or len(client_secret) > MAX_CLIENT_SECRET:
                raise CredentialError("The API key is malformed or unknown.")
            return access_token_issue(client_id=client_id, client_secret=client_secret, client_ip=ip, scopes=requested)
        except CredentialError as exc:
            if exc.code in GUESS_CODES:
                retry_after = credential_failure_record(client_ip=ip, key_id=presented_key_id(client_secret))
                if retry_after:
                    raise _ThrottledError(retry_after) from None
                raise _invalid_client(exc.detail, code=exc.code) from None
            if exc.status == 401:  # key_revoked, key_expired: the right secret of a key that is not valid
                raise _invalid_client(exc.detail, code=exc.code) from None
            raise OAuthError("unauthorized_client", exc.detail, code=exc.code) from None  # suspended, fenced
        except ApplicationError as exc:  # invalid_scope: the key lacks a scope the request asked for
            raise OAuthError(exc.code, exc.detail, code=exc.code, errors=exc.errors) from None

    def handle_exception(self, exc):
        """A body that cannot be read (malformed or too deep JSON, too large, an unsupported media type) is an
        `invalid_request` here, with the status and `code` the rest of the API gives it."""
        response = super().handle_exception(exc)
        if response.status_code not in (400, 413, 415):  # e.g. 405 for a GET: not an OAuth error
            return response
        response.data = {**response.data, "error": "invalid_request", "error_description": response.data["detail"]}
        for name, value in NO_STORE.items():
            response[name] = value
        return response


class _ThrottledError(OAuthError):
    """Too many guesses from this address or at this key: 429 with Retry-After, still `invalid_client`."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("invalid_client", "", status=429, code="too_many_failed_attempts")
        self.retry_after = retry_after

    def response(self):
        response = too_many_failures_response(
            self.retry_after, extensions={"error": "invalid_client", "error_description": "Too many failed attempts."}
        )
        for name, value in NO_STORE.items():
            response[name] = value
        return response
