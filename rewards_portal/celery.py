"""The Celery app: tenant-aware (a task sent inside a tenant runs in that tenant's schema)."""

import logging
import os

from celery.signals import setup_logging, worker_init, worker_process_init
from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

from rewards_portal.settings.base import CELERY_QUEUE_NAMES, broker_is_amqp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rewards_portal.settings.dev")


class Task(TenantTask):
    """A task runs in the schema it was sent from; a task whose tenant was deleted is dropped.

    tenant_schemas_celery enters the schema in a `task_prerun` receiver, and Celery only logs what a receiver
    raises: when the tenant row is gone (deleted after the task was queued) the task would run on the public
    schema and fail there with a traceback on every redelivery. It is dropped instead, with one warning. When
    entering failed for another reason (the database unreachable at that moment) the task fails as any task
    whose database is down, and its retry policy or the sweepers bring it back. (A worker that cached the
    tenant before it was deleted, CELERY_TASK_TENANT_CACHE_SECONDS, still enters the dropped schema and the
    task fails there.)
    """

    abstract = True

    def __call__(self, *args, **kwargs):
        from django.db import connection

        schema = get_schema_name_from_task(self, kwargs)
        if schema and schema != connection.schema_name:
            from tenants.models import Tenant

            if Tenant.objects.filter(schema_name=schema).exists():
                raise RuntimeError(f"task {self.name} could not enter schema {schema}; it was not run")
            logging.getLogger(__name__).warning(
                "task %s dropped: its tenant (schema %s) no longer exists",
                self.name,
                schema,
                extra={"event": "task.tenant_missing", "task": self.name, "tenant_schema": schema},
            )
            return None
        return super().__call__(*args, **kwargs)


class App(CeleryApp):
    """On RabbitMQ, a delay under one second is sent as one second.

    With quorum queues Celery delays a countdown/eta task through RabbitMQ's native delayed delivery, whose routing
    counts whole seconds: a delay of 0 < d < 1 s (a short retry backoff, a drain re-queued with its receivers'
    smallest wait) raised "countdown must be a positive number" and the task was rejected, i.e. lost to the
    sweepers. Redis keeps sub-second delays as they are.
    """

    def send_task(self, name, args=None, kwargs=None, countdown=None, eta=None, **options):
        if broker_is_amqp(str(self.conf.broker_url or "")):
            if eta is not None:
                from datetime import UTC, datetime

                when = eta if isinstance(eta, datetime) else datetime.fromisoformat(eta)
                delay = (when - datetime.now(when.tzinfo or UTC)).total_seconds()
                if delay < 1:
                    eta, countdown = None, (1 if delay > 0 else None)
            elif countdown is not None and 0 < countdown < 1:
                countdown = 1
        return super().send_task(name, args=args, kwargs=kwargs, countdown=countdown, eta=eta, **options)


app = App("rewards_portal", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery must not replace the root logger's handlers with its own plain-text one (see _use_django_logging).
app.conf.worker_hijack_root_logger = False
# The queues (plain on Redis, quorum on RabbitMQ) come from the settings: base.celery_broker_settings.
QUEUES = CELERY_QUEUE_NAMES
app.autodiscover_tasks()


@setup_logging.connect
def _use_django_logging(loglevel=None, **kwargs) -> None:
    """Worker and beat log like the web: settings.LOGGING's JSON lines, request/task context, secrets redacted.

    Without a receiver for this signal Celery installs its own plain-text handler on the root logger, so worker
    lines were neither JSON nor redacted. With one, Celery configures nothing (and leaves stdout alone); the
    level given with `-l` still applies to the root logger, as Celery users expect.
    """
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)


@worker_init.connect
@worker_process_init.connect
def _worker_warm_up(**kwargs) -> None:
    """A worker does its first task's one-time work before it takes a task (rewards_portal.warmup.worker_warm_up).

    At `worker_init`, in the worker's main process: with the prefork pool (the default) that is before the children
    are forked, so they share it and a child that replaces one (a crash, a time limit) starts warm too; the
    threads and solo pools run their tasks in that process. `worker_process_init` (in each child) finds it done,
    except in a child started as a fresh interpreter (the spawn start method), which does it then.
    """
    from rewards_portal.warmup import worker_warm_up

    worker_warm_up()


def _resilient_consumer():
    """The worker's consumer, surviving a broker connection loss (e.g. Redis restarted).

    Celery 5.7's `on_connection_error_after_connected` collects the broken connection and then closes it;
    with the Redis transport the close tries to restore unacked messages through the collected connection
    and raises AttributeError, which `ignore_errors` does not cover, so the whole worker exits
    ("Unrecoverable error") instead of reconnecting. Here that close error is ignored: the connection is
    already detached, and the consumer goes on to reconnect. Unacked messages are restored by the broker's
    visibility timeout, and lost ones are re-published by the sweepers.
    """
    from celery.worker.consumer import Consumer

    class ResilientConsumer(Consumer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            # A task that finishes after the connection was lost acks on the old channel, whose collected
            # connection has no client any more: kombu's Redis transport raises AttributeError there, in the
            # event loop, and the worker would exit. As a connection error it is logged ("Couldn't ack") and
            # the consumer reconnects; the message comes back by the visibility timeout (tasks are idempotent)
            # or, if Redis lost it, by the sweepers.
            self.connection_errors = (*self.connection_errors, AttributeError)

        def on_connection_error_after_connected(self, exc):
            try:
                super().on_connection_error_after_connected(exc)
            except AttributeError:
                logging.getLogger(__name__).warning(
                    "broker connection lost; reconnecting", extra={"event": "worker.broker_lost"}
                )
                self.connection = None

    return ResilientConsumer


ResilientConsumer = _resilient_consumer()
app.conf.worker_consumer = "rewards_portal.celery:ResilientConsumer"
