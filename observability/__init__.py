"""Observability: the protected Prometheus `/metrics` endpoint, the business gauges behind it, the Celery
workers' own metrics port, and optional OpenTelemetry tracing."""
