"""POST /api/v1/tokens — OAuth2 client credentials: an API key for a short-lived bearer token."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import problem_response

from .middleware import (
    auth_failure_record,
    auth_failure_throttled,
    client_ip,
    too_many_failures_response,
)
from .services import CredentialError, access_token_issue


class TokenRequestSerializer(serializers.Serializer):
    grant_type = serializers.ChoiceField(choices=["client_credentials"])
    client_id = serializers.CharField(max_length=64)
    client_secret = serializers.CharField(max_length=256)


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    scope = serializers.CharField()


class TokenApi(APIView):
    """The one unauthenticated API endpoint: it *is* the credential check, throttled per address."""

    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    @extend_schema(
        operation_id="token_create",
        summary="Exchange an API key for an access token",
        request=TokenRequestSerializer,
        responses={200: TokenResponseSerializer},
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
        ip = client_ip(request)
        throttled, retry_after = auth_failure_throttled(ip)
        if throttled:
            return too_many_failures_response(retry_after)
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = access_token_issue(
                client_id=serializer.validated_data["client_id"],
                client_secret=serializer.validated_data["client_secret"],
                client_ip=ip,
            )
        except CredentialError as exc:
            auth_failure_record(ip)
            return problem_response(status=exc.status, code=exc.code, detail=exc.detail)
        response = Response(token)
        response["Cache-Control"] = "no-store"
        return response
