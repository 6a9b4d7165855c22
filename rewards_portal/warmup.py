"""Work a web process would otherwise do inside its first requests, done once when it loads the application.

Django imports the URLconf, and with it every view, serializer and service module, on the first request a process
serves, and compiles each route's regular expression the first time a request is matched against it. That is
~400 ms of CPU (~240 ms the imports, ~65 ms the routes), taken under Python's import lock: every other thread of
the process waits behind it. In a gunicorn worker with 6 threads, under load, six requests each took 1.2–1.4 s
after a worker served its first request (bench/PROFILE-orders.md), and that happens after every deploy and every
worker restart. Done here, while the worker boots, no request waits behind the import lock; connections the kernel
hands a booting worker (each worker has its own listening socket, gunicorn.conf.py) wait ~0.4 s longer instead.
It reads neither the database nor Redis (core/tests/test_warmup.py loads it with both unreachable).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.validators import validate_email
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import translation

logger = logging.getLogger(__name__)


def warm_up() -> int:
    """Import the URLconf and everything it includes, compile every route, build the reverse lookup table (used by
    `reverse()` and the API's links) for each language, and compile Django's email patterns (compiled on first use,
    ~30 ms: every order, bulk row and person with an email checks one). Returns the number of routes."""
    started = time.process_time()
    resolver = get_resolver()
    routes = _compile_routes(resolver)
    for language, _name in settings.LANGUAGES:  # the table is per language (~10 ms each)
        with translation.override(language):
            resolver.reverse_dict  # noqa: B018 — builds the table, as a first reverse() would
    validate_email("warm-up@example.com")
    logger.info(
        "web process warmed up",
        extra={"routes": routes, "cpu_ms": round((time.process_time() - started) * 1000)},
    )
    return routes


def _compile_routes(resolver: URLResolver) -> int:
    count = 0
    for entry in resolver.url_patterns:  # an include()'s module is imported here
        entry.pattern.regex  # noqa: B018 — compiled and kept on the pattern on first access
        if isinstance(entry, URLResolver):
            count += _compile_routes(entry)
        elif isinstance(entry, URLPattern):
            count += 1
    return count
