from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"

    def ready(self) -> None:
        from core import celery_signals  # noqa: F401 — connects the task log signals
        from core.db_routing import writes_noted
        from core.precompiled import psycopg_statement_cache_widen

        writes_noted()
        psycopg_statement_cache_widen()
