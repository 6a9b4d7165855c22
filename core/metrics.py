"""Prometheus counters and histograms every process records into (requests, tasks, webhook attempts, rewards).

Defined once here so any app may count what it does without importing the app that exposes them
(`observability/`, which serves `/metrics`). With `PROMETHEUS_MULTIPROC_DIR` set (gunicorn's and Celery's
worker processes), prometheus_client writes each process's values to files in that directory and the exporter
adds them up; without it (runserver, tests) they live in this process's default registry.

Labels stay bounded: a route is its URL pattern (`api/v1/orders/<uuid:order_id>`), never a path; a task is
its name; a queue is one of four.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# Request latency buckets (seconds): the API answers in 10-400 ms on 2 CPUs (docs/scaling.md); 10 s catches hangs.
_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Task buckets: a delivery takes ~20 ms of CPU but waits on suppliers and SMTP; a bulk chunk up to 20 s.
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REQUESTS = Counter(
    "rp_http_requests", "HTTP requests answered, by method, route pattern and status", ["method", "route", "status"]
)
REQUEST_LATENCY = Histogram(
    "rp_http_request_duration_seconds",
    "Time from the first middleware to the response, by method and route pattern",
    ["method", "route"],
    buckets=_REQUEST_BUCKETS,
)
TASKS = Counter("rp_celery_tasks", "Celery tasks finished, by task name, queue and state", ["task", "queue", "state"])
TASK_RUNTIME = Histogram(
    "rp_celery_task_runtime_seconds", "Time a task ran in the worker", ["task", "queue"], buckets=_TASK_BUCKETS
)
TASK_WAIT = Histogram(
    "rp_celery_task_wait_seconds",
    "Time from publish (or the task's eta) to a worker starting it: queueing delay, by queue",
    ["queue"],
    buckets=_TASK_BUCKETS,
)
WEBHOOK_ATTEMPTS = Counter(
    "rp_webhook_attempts", "Webhook delivery attempts recorded, by outcome (succeeded / failed)", ["outcome"]
)
REWARD_STATE_CHANGES = Counter("rp_reward_transitions", "Reward state changes, by the state entered", ["to"])
