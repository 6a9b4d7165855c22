"""Optional OpenTelemetry tracing (OTEL_TRACING=true): Django requests, Celery tasks and psycopg queries as spans,
exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the SDK's own variables configure it further).

Off by default; the OpenTelemetry packages (requirements-tracing.txt) are imported here only when it is on, so an
installation without them runs unchanged."""

from __future__ import annotations

import logging
import os

from django.conf import settings

logger = logging.getLogger(__name__)
_configured = False


def tracing_setup() -> bool:
    """Install the tracer provider and the three instrumentations once per process; True when tracing is on."""
    global _configured
    if not settings.OTEL_TRACING or _configured:
        return _configured
    from opentelemetry import trace
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "rewards_portal")})
    )
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    DjangoInstrumentor().instrument()
    CeleryInstrumentor().instrument()  # type: ignore[no-untyped-call]  # untyped in the instrumentation
    # Statement text only, never parameters (they can hold codes and emails): the instrumentation's default.
    PsycopgInstrumentor().instrument(enable_commenter=False)
    _configured = True
    logger.info("OpenTelemetry tracing on", extra={"event": "tracing.on"})
    return True
