"""The Celery broker as the operator sees it, on Redis or RabbitMQ alike: is it up, how many messages wait in
each queue (for /readyz, /metrics and the console's Health page)."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def broker_is_amqp() -> bool:
    """True when the broker is RabbitMQ (CELERY_BROKER_URL=amqp://…), False for Redis."""
    from rewards_portal.celery import app
    from rewards_portal.settings.base import broker_is_amqp as is_amqp

    return is_amqp(str(app.conf.broker_url or ""))


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each of our queues; None when the broker does not answer within ~2 s.

    A passive declare answers the ready-message count on both transports without creating anything; messages a
    worker has taken but not yet acknowledged are not counted (they are running)."""
    from rewards_portal.celery import QUEUES, app

    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
            for name in QUEUES:
                # One channel per queue: RabbitMQ closes a channel that asked for a queue that does not exist.
                channel = connection.channel()
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except connection.channel_errors:
                    depths[name] = 0  # never declared yet, or (Redis) empty: a Redis queue exists while it holds some
                finally:
                    channel.close()
    except Exception as exc:
        logger.warning("broker unavailable: %s", type(exc).__name__, extra={"event": "broker.unavailable"})
        return None
    return depths


def broker_ping() -> tuple[bool, str]:
    """(reachable, detail) for the Celery broker."""
    from rewards_portal.celery import app

    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True, "ok"
    except Exception as exc:
        return False, type(exc).__name__
