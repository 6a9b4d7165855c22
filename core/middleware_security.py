"""Response and request hygiene for every request: a Content-Security-Policy header, and no NUL characters.

Content-Security-Policy (Django 5.2 has no built-in CSP):

The policy is `settings.CONTENT_SECURITY_POLICY` (a string; empty turns the header off). The default is
strict: everything from this origin only, images also from `data:` and https (brand logos), inline styles
and scripts allowed because the claim page and the Swagger UI page (drf-spectacular-sidecar, assets
served locally from /static/) use a few inline blocks; no framing (`frame-ancestors 'none'`, and
X-Frame-Options on every response, also those answered before XFrameOptionsMiddleware), no `<base>`
hijacking, forms post only back here. A view that sets its own Content-Security-Policy header keeps it.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseBadRequest

DEFAULT_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", DEFAULT_POLICY)
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        # Responses that never reach XFrameOptionsMiddleware (e.g. the routing middleware's 401/429) are
        # framed-denied too; a view marked @xframe_options_exempt keeps its choice.
        if "X-Frame-Options" not in response and not getattr(response, "xframe_options_exempt", False):
            response["X-Frame-Options"] = getattr(settings, "X_FRAME_OPTIONS", "DENY")
        return response


class RejectNulBytesMiddleware:
    """A NUL character in the path or the query string is refused before any view sees it.

    PostgreSQL text cannot hold NUL, so a filter such as `?type=%00` reached the database and failed with a
    500 (found by schemathesis). Request bodies are already covered: DRF's and Django's form CharFields
    refuse NUL. The API answers 422 problem+json `validation_error`, other pages a plain 400.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path or any(
            "\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()
        ):
            if request.path.startswith("/api/"):
                from core.problems import problem_response

                return problem_response(
                    status=422,
                    code="validation_error",
                    detail="NUL characters are not allowed in the path or the query string.",
                )
            return HttpResponseBadRequest("NUL characters are not allowed in the path or the query string.")
        return self.get_response(request)
