"""Work a process would otherwise do inside its first request or task, done once when it starts.

Web (warm_up, called when rewards_portal.wsgi loads): Django imports the URLconf, and with it every view,
serializer and service module, on the first request a process serves, and compiles each route's regular expression
the first time a request is matched against it. That is ~400 ms of CPU (~240 ms the imports, ~65 ms the routes),
taken under Python's import lock: every other thread of the process waits behind it. In a gunicorn worker with 6
threads, under load, six requests each took 1.2–1.4 s after a worker served its first request
(bench/PROFILE-orders.md), and that happens after every deploy and every worker restart. Done here, while the
worker boots, no request waits behind the import lock; connections the kernel hands a booting worker (each worker
has its own listening socket, gunicorn.conf.py) wait ~0.4 s longer instead.

Celery (worker_warm_up, at `worker_init`: rewards_portal.celery): the tasks import their services when they run,
so a worker's first reward delivery imported ~100 modules (the supplier adapters, httpx and, through it, rich),
compiled the email templates and loaded Babel's locale data: 75–113 ms of CPU more than the deliveries after
it (bench/worker_first_task.py), in every prefork child, after every deploy and every child restart.

Neither reads the database or Redis (core/tests/test_warmup.py runs both with them unreachable).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

from django.conf import settings
from django.core.validators import validate_email
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import translation
from django.utils.module_loading import import_string

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


# What a worker child's first task imported beyond what `celery worker` imports before it forks (every tasks
# module): the tasks import their services inside the task function. bench/worker_first_task.py lists them
# ("task 1 imported"); core/tests/test_warmup.py fails when a delivery, a webhook drain or a bulk chunk imports
# anything after the warm-up.
WORKER_MODULES = (
    "tenant_schemas_celery.compat",  # every task sent from a tenant schema: the schema switch imports it
    "fulfillment.drain",  # fulfil_drain_task: a reward delivery
    # adapter_for imports every built-in adapter; `http` brings httpx, and httpx its command line's rich: ~50 ms of
    # the 60–90 ms these imports take (python -X importtime)
    "fulfillment.suppliers.generated",
    "fulfillment.suppliers.http",
    "fulfillment.suppliers.inventory",
    "fulfillment.suppliers.sandbox",
    "batches.processing",  # batch_process_task: a bulk chunk
    "orders.bulk",
    # Django imports it on the first `__overlap` lookup: webhooks.selectors.endpoints_subscribed, every event
    "django.contrib.postgres.expressions",
)

_worker_warmed = False


def worker_warm_up() -> None:
    """Import what the delivery, webhook and bulk tasks import when they run, the configured email backend, and
    render a sample reward email in each language (fulfillment.delivery.reward_emails_prepare).

    Done once per process: in the worker's main process at `worker_init`, before the prefork pool forks, so every
    child (and every child that replaces one) starts with it, and the threads pool has it too; a child started as
    a fresh interpreter (the spawn start method) does it at `worker_process_init`.
    """
    global _worker_warmed
    if _worker_warmed:
        return
    started, modules = time.process_time(), len(sys.modules)
    for name in WORKER_MODULES:
        importlib.import_module(name)
    import_string(settings.EMAIL_BACKEND)
    from fulfillment.delivery import reward_emails_prepare

    languages = reward_emails_prepare()
    _worker_warmed = True
    logger.info(
        "worker process warmed up",
        extra={
            "modules": len(sys.modules) - modules,
            "languages": languages,
            "cpu_ms": round((time.process_time() - started) * 1000),
        },
    )
