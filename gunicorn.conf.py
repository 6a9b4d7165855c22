"""gunicorn reads this file from the working directory. The command line and WEB_CONCURRENCY (worker processes)
keep configuring everything else.

- Threaded workers (`gthread`), WEB_THREADS threads each (default 6): a request is ~70 % CPU and ~30 % waits
  (PostgreSQL, Redis), so on 2 cores 3 processes x 6 threads keep both busy; the benchmarks (bench/orders.py)
  measure this shape. gunicorn's own default, one request at a time per process (`sync`), left a process idle
  through every wait and let one slow client hold a whole process.

- With PROMETHEUS_MULTIPROC_DIR set, a worker process that exits has its live gauges removed from /metrics
  (prometheus_client's multiprocess mode).
- Each worker, once it has loaded the application, moves every object it holds into the garbage collector's
  permanent generation (`gc.freeze()`) and collects less often: a request allocates thousands of short-lived
  objects, and with Python's default thresholds (700, 10, 10) the collector ran several times per order,
  re-walking the whole loaded Django application in its older generations. bench/PROFILE-orders.md has the
  measurement. WEB_GC_TUNING=off keeps Python's defaults.
"""

import gc
import os

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "6"))

# A young-generation collection every 50,000 net allocations (a few requests) instead of every 700.
WEB_GC_THRESHOLDS = (50_000, 20, 100)


def post_worker_init(worker):
    if os.environ.get("WEB_GC_TUNING", "on").lower() not in ("off", "false", "0"):
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WEB_GC_THRESHOLDS)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
