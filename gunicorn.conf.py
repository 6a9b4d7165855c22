"""gunicorn reads this file from the working directory. The command line and WEB_CONCURRENCY (worker processes)
keep configuring everything else.

- Threaded workers (`gthread`), WEB_THREADS threads each (default 6), each worker on a listening socket of its
  own (Linux: `reuse_port`, below): a request is ~70 % CPU and ~30 % waits
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
import sys

OFF = ("off", "false", "0")

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "6"))
# Each worker listens on a socket of its own (SO_REUSEPORT) and the kernel spreads new connections over them.
# With one shared socket the worker that woke first took the connections (16 kept-alive clients seen as 11/4/1
# and 16/0/0 over 3 workers), and its threads queued on one GIL while another process idled: a CPU-bound app
# under `wrk -c16`, 10 runs each, gave 348 vs 396 requests/s and p99 108 vs 89 ms (bench/PROFILE-orders.md).
# Linux only: elsewhere the option does not balance. WEB_REUSE_PORT=off: one shared socket, gunicorn's default.
# TCP addresses only (on_starting below).
reuse_port = sys.platform.startswith("linux") and os.environ.get("WEB_REUSE_PORT", "on").lower() not in OFF


def on_starting(server):
    """reuse_port only where every worker can bind the address itself: a TCP address. Linux refuses SO_REUSEPORT on
    a Unix socket (`--bind unix:…`: every worker failed to boot, over and over), and a socket handed over already
    bound (systemd socket activation, `fd://`, a USR2 re-exec's inherited listeners) is not bound again by the
    workers. There the workers share one socket, gunicorn's default."""
    handed_over = os.environ.get("LISTEN_FDS") or os.environ.get("GUNICORN_FD")
    if server.cfg.reuse_port and (handed_over or not all(isinstance(a, tuple) for a in server.cfg.address)):
        server.cfg.set("reuse_port", False)
        server.log.info("reuse_port off: the workers share one listening socket (not a TCP address gunicorn binds)")


# A young-generation collection every 50,000 net allocations (a few requests) instead of every 700.
WEB_GC_THRESHOLDS = (50_000, 20, 100)


def post_worker_init(worker):
    if os.environ.get("WEB_GC_TUNING", "on").lower() not in OFF:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*WEB_GC_THRESHOLDS)


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
