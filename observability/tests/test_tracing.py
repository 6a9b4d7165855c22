"""Optional OpenTelemetry tracing: off, no instrumentation is loaded; on, a request and its SQL are spans."""

from __future__ import annotations

import json
import subprocess
import sys

from testsupport.workers import ROOT, subprocess_env

# Run in a process of its own: instrumenting Django rewrites its middleware for the rest of the process.
_SCRIPT = """
import json, sys
import django
django.setup()
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from django.test import Client
from observability.tracing import tracing_setup
exporter = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(exporter))
status = Client().get("/healthz").status_code
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT %s", ["secret-parameter"])
spans = exporter.get_finished_spans()
print(json.dumps({"on": tracing_setup(), "status": status, "spans": [s.name for s in spans],
                  "attributes": [dict(s.attributes or {}) for s in spans]}, default=str))
"""


def _run(script: str, **env: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], env=subprocess_env(**env), cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_tracing_off_instruments_nothing(django_db_setup):
    # (redis-py itself imports the OpenTelemetry API when it is installed; the instrumentations are ours to load.)
    script = (
        "import sys, django; django.setup(); from django.conf import settings; "
        "print(any(m.startswith('opentelemetry.instrumentation') for m in sys.modules), "
        "[m for m in settings.MIDDLEWARE if 'opentelemetry' in m])"
    )
    assert _run(script) == "False []"


def test_tracing_on_makes_a_span_per_request_and_per_query_without_parameters(django_db_setup):
    result = json.loads(_run(_SCRIPT, OTEL_TRACING="true"))
    assert result["on"] is True and result["status"] == 200
    assert any(name.startswith("GET") for name in result["spans"]), result["spans"]  # the Django request span
    queries = [a for a in result["attributes"] if "db.statement" in a or "db.query.text" in a]
    assert queries, result  # a psycopg span
    assert "secret-parameter" not in json.dumps(result["attributes"])  # parameters are not recorded
