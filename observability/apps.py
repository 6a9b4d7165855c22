from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    name = "observability"

    def ready(self) -> None:
        from observability import tracing, worker  # noqa: F401 — the worker's metrics port (a Celery signal)

        tracing.tracing_setup()
