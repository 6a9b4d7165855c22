"""A lost connection to PostgreSQL or Redis answers 503 problem+json (retryable, Retry-After), never a 500."""

from __future__ import annotations

import sys

import redis
from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from core.problems import problem_exception_handler
from core.views import server_error


def _problem(response) -> dict:
    import json

    return json.loads(response.content if hasattr(response, "content") else response.rendered_content)


def test_database_gone_in_an_api_view_is_503_problem():
    for exc in (
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
    ):
        response = problem_exception_handler(exc, {})
        assert response.status_code == 503
        assert response.data["code"] == "service_unavailable" and response.data["retryable"] is True
        assert response["Retry-After"] == "2"
        assert response.content_type == "application/problem+json"


def test_other_errors_still_reach_the_500_handler():
    assert problem_exception_handler(ValueError("bug"), {}) is None
    request = RequestFactory().get("/api/v1/orders")
    try:
        raise ValueError("bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500 and _problem(response)["code"] == "internal_error"


def test_database_or_redis_gone_outside_a_view_is_503():
    """E.g. the tenant routing middleware cannot look the API key up while PostgreSQL restarts."""
    api = RequestFactory().get("/api/v1/orders")
    page = RequestFactory().get("/portal/")
    for exc in (OperationalError("the database system is shutting down"), redis.ConnectionError("refused")):
        try:
            raise exc
        except type(exc):
            assert sys.exc_info()[1] is exc
            api_response = server_error(api)
            page_response = server_error(page)
        assert api_response.status_code == 503 and api_response["Content-Type"] == "application/problem+json"
        body = _problem(api_response)
        assert body["code"] == "service_unavailable" and body["retryable"] is True and body["status"] == 503
        assert api_response["Retry-After"] == "2"
        assert page_response.status_code == 503 and page_response["Retry-After"] == "2"
