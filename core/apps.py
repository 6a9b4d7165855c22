from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from api import schema  # noqa: F401 — registers the OpenAPI auth extension
        from core import celery_signals  # noqa: F401 — connects the task log signals
