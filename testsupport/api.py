"""Calling the public API as a client does: in process (Django's test client) or over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


class ApiClient:
    """A Django test client that sends `Authorization: Bearer <key>` on every call, and JSON bodies."""

    def __init__(self, raw_key: str, key) -> None:
        from django.test import Client

        self.raw_key = raw_key
        self.key = key
        self._client = Client(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    def get(self, path: str, params: dict | None = None, **extra):
        return self._client.get(path, params or {}, **extra)

    def post(self, path: str, data: dict | None = None, **extra):
        return self._client.post(path, data or {}, content_type="application/json", **extra)

    def patch(self, path: str, data: dict | None = None, **extra):
        return self._client.patch(path, data or {}, content_type="application/json", **extra)

    def delete(self, path: str, **extra):
        return self._client.delete(path, **extra)


def http_json(method: str, url: str, *, key: str, body: dict | None = None, headers: dict | None = None):
    """(status, json body, headers) over real HTTP."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null"), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null"), dict(error.headers)
