"""gunicorn reads this file from the working directory: with PROMETHEUS_MULTIPROC_DIR set, a worker process that
exits has its live gauges removed from /metrics (prometheus_client's multiprocess mode); nothing else is set here,
the command line and WEB_CONCURRENCY keep configuring gunicorn."""

import os


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
