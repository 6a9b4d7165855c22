"""What a Celery worker child's first task costs beyond the tasks after it: a reward delivery, a webhook delivery and
a bulk chunk, each measured in a fresh process built as a prefork child is.

    .venv/bin/python bench/worker_first_task.py              # 3 children per variant and kind, medians printed
    .venv/bin/python bench/worker_first_task.py --repeat 5 --importtime

Same throwaway database as `make bench` (a claimed slot, dropped at the end), real PostgreSQL and Redis (the
embedded servers unless DATABASE_URL / REDIS_URL are set), mail to an SMTP server and webhooks to an HTTP receiver
on 127.0.0.1 in this process. For each child, this process makes ROUNDS fresh tenants, each with funds, a webhook
endpoint subscribed to `order.created`, one order of one email reward (the recipient's language: LOCALES) and a
confirmed bulk batch of BATCH_ROWS rows. A child (this script with --child, production settings, DEBUG off) does
what `celery worker` does before it forks — `app.Worker(pool_cls="prefork")`: Django set up, task modules
imported, logging configured, `worker_init` sent — then what a forked child does when it starts
(`celery.concurrency.prefork.process_initializer`: tracers built, `worker_process_init` sent), then runs one task
of its kind per tenant through the task's tracer, as the pool runs it (schema header, prerun/postrun signals):
  delivery  `fulfillment.tasks.fulfil_drain_task`  (claim, issue at the sandbox supplier, capture, email, record)
  webhook   `webhooks.tasks.webhook_deliveries_drain` (claim, sign, POST, record)
  bulk      `batches.tasks.batch_process_task` (one chunk: orders, rewards and holds for the batch's rows)
Per round: process CPU (time.process_time) and wall time, modules imported, templates compiled.

Variants (each a fresh child), to split the first task's extra cost:
  cold               the worker's warm-up (rewards_portal.warmup.worker_warm_up) disconnected: as before it existed;
  +imports           cold, but every module the cold delivery/webhook/bulk rounds imported is imported first (timed);
  +imports+templates also the reward email templates compiled for each language in settings.LANGUAGES (timed);
  warm-up            as shipped: the warm-up runs at `worker_init`, before the fork (its CPU is the parent's).
--importtime also runs a cold delivery child under `python -X importtime` and prints the packages whose imports
took the most of the first round (self time, summed per top-level package). --profile delivery:cold runs one more
child with tasks 1 and 2 under cProfile and prints the functions whose CPU differs most between them.

Afterwards each tenant is checked: its reward delivered, its webhook delivery succeeded, its batch done.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ROUNDS = 5
LOCALES = ["en", "en", "ms", "ms", "en"]  # round 3 is the first Malay message after two English ones
BATCH_ROWS = 20
KINDS = {
    "delivery": ("fulfillment.tasks.fulfil_drain_task", "delivery"),
    "webhook": ("webhooks.tasks.webhook_deliveries_drain", "webhooks"),
    "bulk": ("batches.tasks.batch_process_task", "bulk"),
}
VARIANTS = ["cold", "+imports", "+imports+templates", "warm-up"]
EMAIL_TEMPLATES = ("emails/reward.txt", "emails/reward.html")
DOMAIN = "first-task.bench.example"
_PROJECT_PACKAGES = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}


# --- the child: one fresh process, built as a prefork worker child ---------------------------------------


def child(kind: str, variant: str, plan_path: str, profile: str = "") -> None:
    plan = json.loads(Path(plan_path).read_text())
    import logging

    from celery.concurrency.prefork import process_initializer
    from celery.signals import worker_init, worker_process_init

    import rewards_portal.celery as celery_module

    app = celery_module.app
    warm_up = getattr(celery_module, "_worker_warm_up", None)
    if variant != "warm-up" and warm_up is not None:
        worker_init.disconnect(warm_up)
        worker_process_init.disconnect(warm_up)
    hostname = f"first{os.getpid()}@bench"
    started = time.process_time()
    # What `celery worker` does before the pool forks (it starts nothing: no broker connection, no child): the
    # worker built (Django set up, task modules imported, logging, `worker_init`), then its banner's startup
    # information (which sets up the result backend: ~25 ms, inherited by the children).
    worker = app.Worker(
        hostname=hostname, pool_cls="prefork", concurrency=1, loglevel=logging.WARNING, quiet=True,
        queues=["default", "delivery", "webhooks", "bulk"], without_mingle=True, without_gossip=True,
        without_heartbeat=True,
    )  # fmt: skip
    worker.startup_info()
    parent_cpu = time.process_time() - started
    parent_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    parent_modules = set(sys.modules)
    prepared: dict[str, float] = {}
    if variant.startswith("+imports"):
        started = time.process_time()
        for name in plan["modules"]:
            __import__(name)
        prepared["imports"] = time.process_time() - started
    if variant == "+imports+templates":
        from django.conf import settings
        from django.utils import translation

        from fulfillment.delivery import _template

        started = time.process_time()
        for language, _name in settings.LANGUAGES:
            with translation.override(language):
                for name in EMAIL_TEMPLATES:
                    _template(name, language)
        prepared["templates"] = time.process_time() - started
    prepared_modules = set(sys.modules)
    started = time.process_time()
    process_initializer(app, hostname)  # what a forked child does before its first task
    child_boot_cpu = time.process_time() - started

    from django.template.base import Template

    compiled: list[str] = []
    original_init = Template.__init__

    def counting_init(self, template_string, origin=None, name=None, engine=None):
        compiled.append(str(name or getattr(origin, "template_name", "") or "?"))
        original_init(self, template_string, origin, name, engine)

    Template.__init__ = counting_init  # type: ignore[method-assign]
    task_name, queue = KINDS[kind]
    task = app.tasks[task_name]
    rounds = []
    for target in plan["rounds"]:
        schema = target["schema"]
        args = [target["batch_id"]] if kind == "bulk" else []
        request = {
            "id": uuid.uuid4().hex,
            "hostname": hostname,
            "headers": {"_schema_name": schema},
            "_schema_name": schema,  # Redis merges the headers into the request
            "delivery_info": {"exchange": "", "routing_key": queue},
        }
        modules_before = set(sys.modules)
        compiled.clear()
        profiler = cProfile.Profile(time.process_time) if profile and len(rounds) < 2 else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        traced = task.__trace__(request["id"], args, {}, request)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile}.{len(rounds) + 1}")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        failure = traced[1]  # the exception info, when the task raised
        new = [name for name in sys.modules if name not in modules_before]
        rounds.append(
            {
                "schema": schema,
                "cpu_ms": cpu * 1000,
                "wall_ms": wall * 1000,
                "result": repr(traced[0])[:80],
                "failed": None if failure is None else repr(getattr(failure, "exception", failure))[:300],
                "modules": len(new),
                "module_names": new,
                "templates": list(compiled),
            }
        )
    Template.__init__ = original_init  # type: ignore[method-assign]
    print(
        json.dumps(
            {
                "kind": kind,
                "variant": variant,
                "parent_cpu_ms": parent_cpu * 1000,
                "parent_rss_mib": parent_rss_mib,
                "parent_modules": len(parent_modules),
                "prepared_ms": {name: seconds * 1000 for name, seconds in prepared.items()},
                "prepared_modules": len(prepared_modules) - len(parent_modules),
                "child_boot_cpu_ms": child_boot_cpu * 1000,
                "rounds": rounds,
            }
        )
    )


# --- this process: data, servers, children -----------------------------------------------------------


def _tenants(shop, receiver_url: str, count: int) -> list[dict]:
    """`count` fresh tenants, each with funds, an endpoint subscribed to order.created, one order of one email
    reward (pending: nothing consumes the queues) and a confirmed batch of BATCH_ROWS future-dated rows."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from batches.lifecycle import batch_confirm
    from batches.upload import batch_upload
    from funds.services import funds_deposit
    from orders.create import order_create
    from orders.idempotency import request_hash
    from orders.planning import RewardInput
    from orders.selectors import order_get, order_render
    from tenants.services import tenant_create
    from testsupport.batches import csv_bytes
    from webhooks.endpoints import webhook_endpoint_create

    rounds = []
    for n in range(count):
        tag = uuid.uuid4().hex[:6]
        tenant = tenant_create(slug=f"bench-first-{tag}", name=f"Bench First {tag}")
        with tenant_context(tenant):
            funds_deposit(currency="USD", amount="100000")
            webhook_endpoint_create(url=f"{receiver_url}/{tag}", events=["order.created"], description="bench")
            email = f"{tag}@{DOMAIN}"
            reward = RewardInput(
                product_id=str(shop.coffee_usd.id), amount=Decimal("10.00"), currency="USD",
                delivery_method="email", message="Thank you!",
                recipient={"name": "Bench Recipient", "email": email, "locale": LOCALES[n % len(LOCALES)]},
            )  # fmt: skip
            order_create(
                order_type="digital",
                rewards=[reward],
                idempotency_key=None,
                body_hash=request_hash({"bench": tag}),
                render=lambda order: order_render(order_get(order_id=order.id)),
            )
            data = csv_bytes(
                {
                    "recipient_name": f"Bulk Recipient {i}",
                    "recipient_email": f"bulk{i}-{tag}@{DOMAIN}",
                    "product_id": str(shop.coffee_usd.id),
                    "amount": "10",
                    "currency": "USD",
                    "delivery_method": "email",
                    "deliver_at": "2099-01-01T09:00:00Z",
                    "external_id": f"bulk-{tag}-{i}",
                }
                for i in range(BATCH_ROWS)
            )
            batch = batch_upload(file=io.BytesIO(data), file_name="bench.csv", size=len(data))
            batch_confirm(batch_id=batch.id)
        connection.set_schema_to_public()
        rounds.append({"schema": tenant.schema_name, "email": email, "batch_id": str(batch.id)})
    return rounds


def _check(rounds: list[dict], kinds: list[str]) -> list[str]:
    """What did not happen in these tenants: a reward not delivered, a webhook delivery not succeeded, a batch
    not done."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from batches.models import Batch
    from orders.models import Reward
    from webhooks.models import WebhookDelivery

    problems = []
    for target in rounds:
        with schema_context(target["schema"]):
            if "delivery" in kinds:
                statuses = list(Reward.objects.filter(recipient_email=target["email"]).values_list("status", flat=True))
                if statuses != ["delivered"]:
                    problems.append(f"{target['schema']}: reward {statuses}")
            if "webhook" in kinds:
                statuses = list(WebhookDelivery.objects.order_by("created_at").values_list("status", flat=True)[:1])
                if statuses != ["succeeded"]:
                    problems.append(f"{target['schema']}: webhook delivery {statuses}")
            if "bulk" in kinds:
                status = Batch.objects.get(pk=target["batch_id"]).status
                if status != "completed":
                    problems.append(f"{target['schema']}: batch {status}")
    connection.set_schema_to_public()
    return problems


def _child_env(database_url: str, redis_url: str, smtp_port: int) -> dict[str, str]:
    from django.conf import settings

    from bench.common import BENCH_SECRET_KEY

    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="rewards_portal.settings.production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=BENCH_SECRET_KEY,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        ENCRYPTION_KEYS=",".join(settings.ENCRYPTION_KEYS),  # the codes this process's tenants encrypt
        DEBUG="false",
        LOG_LEVEL="INFO",  # the warm-up's line (its CPU); the child's log goes to its stderr, read for that only
        OUTBOUND_ALLOW_PRIVATE="true",  # the receiver is on 127.0.0.1
        EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend",
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        EMAIL_USE_TLS="false",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _run_child(env: dict, kind: str, variant: str, plan: dict, *, importtime: bool = False, profile: str = "") -> dict:
    plan_path = ROOT / "var" / "bench" / f"first-task-plan-{os.getpid()}.json"
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    plan_path.write_text(json.dumps(plan))
    command = [sys.executable, *(["-X", "importtime"] if importtime else []), __file__]
    command += ["--child", kind, "--variant", variant, "--plan", str(plan_path)]
    command += ["--profile-to", profile] if profile else []
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"{kind}/{variant} child failed:\n{result.stderr[-4000:]}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    for number, measured in enumerate(report["rounds"], 1):
        if measured["failed"]:
            raise RuntimeError(f"{kind}/{variant} round {number} failed: {measured['failed']}")
    for line in result.stderr.splitlines():
        if '"worker process warmed up"' in line:
            report["warm_up_log"] = json.loads(line)
    if importtime:
        report["importtime"] = result.stderr
    return report


def _importtime_split(stderr: str, first_round: list[str]) -> list[tuple[str, float]]:
    """Self time (ms) per top-level package of the modules the first round imported (`-X importtime` lines:
    `import time: self [us] | cumulative | imported package`)."""
    wanted = set(first_round)
    per_package: Counter = Counter()
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if name in wanted:
            per_package[name.split(".")[0]] += int(self_us) / 1000
    return per_package.most_common(12)


def _profile_diff(first: str, second: str) -> list[tuple[str, float, float]]:
    """(function, cumulative ms, own ms) of task 1 minus task 2, the 40 largest cumulative differences."""
    import pstats

    one, two = pstats.Stats(first).stats, pstats.Stats(second).stats  # type: ignore[attr-defined]
    rows = []
    for key, (_, _, own, cumulative, _) in one.items():
        _, _, own2, cumulative2, _ = two.get(key, (0, 0, 0.0, 0.0, None))
        name = f"{key[0].replace(str(ROOT) + '/', '').split('site-packages/')[-1]}:{key[1]}({key[2]})"
        rows.append((name, (cumulative - cumulative2) * 1000, (own - own2) * 1000))
    return sorted(rows, key=lambda row: -row[1])[:40]


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3, help="children per variant and kind (default 3)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="delivery,webhook,bulk")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=",".join(VARIANTS))
    parser.add_argument("--importtime", action="store_true", help="also a cold delivery child with -X importtime")
    parser.add_argument(
        "--profile", metavar="KIND:VARIANT", help="also one such child with tasks 1 and 2 under cProfile: prints the "
        "functions whose CPU differs most between them (e.g. delivery:+imports+templates)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--profile-to", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.variant, args.plan, args.profile_to or "")
        return 0
    kinds = args.kinds.split(",")
    variants = args.variants.split(",")

    from bench.profile_orders import setup_database  # dev settings, DEBUG off, as the other bench scripts

    server_url, (slot_client, slot), database_url, redis_url = setup_database()
    from django.db import connections

    from bench.delivery import SmtpSink
    from bench.run import BENCH_DATABASE, recreate_database
    from bench.webhooks import Receiver
    from testsupport.catalog import make_shop

    sink, receiver = SmtpSink(), Receiver()
    env = _child_env(database_url, redis_url, sink.port)
    reports: dict[tuple[str, str], list[dict]] = {}
    problems: list[str] = []
    modules: list[str] = []
    try:
        shop = make_shop()
        for variant in variants:
            for _ in range(args.repeat):
                rounds = _tenants(shop, receiver.url, ROUNDS)
                plan = {"rounds": rounds, "modules": modules}
                for kind in kinds:  # bulk last: its orders emit order.created, more webhook deliveries
                    report = _run_child(env, kind, variant, plan)
                    reports.setdefault((kind, variant), []).append(report)
                    if variant == "cold":  # what the +imports variants import first
                        for measured in report["rounds"]:
                            modules.extend(name for name in measured["module_names"] if name not in modules)
                problems += _check(rounds, kinds)
        split = None
        if args.importtime:
            rounds = _tenants(shop, receiver.url, ROUNDS)
            report = _run_child(env, "delivery", "cold", {"rounds": rounds, "modules": []}, importtime=True)
            split = _importtime_split(report["importtime"], report["rounds"][0]["module_names"])
        profiled = None
        if args.profile:
            kind, variant = args.profile.split(":")
            rounds = _tenants(shop, receiver.url, ROUNDS)
            path = str(ROOT / "var" / "bench" / f"first-task-{kind}")
            _run_child(env, kind, variant, {"rounds": rounds, "modules": modules}, profile=path)
            profiled = (args.profile, _profile_diff(f"{path}.1", f"{path}.2"))
        _print(reports, kinds, variants, args.repeat, split, problems, sink)
        if profiled:
            print(f"{profiled[0]}: CPU ms in task 1 minus task 2 under cProfile (cumulative, own), largest first:")
            for name, cumulative, own in profiled[1]:
                print(f"  {cumulative:7.1f} {own:7.1f}  {name}")
    finally:
        sink.stop()
        receiver.stop()
        connections.close_all()
        slot_client.delete(f"rp:test-slot:{slot}")
        recreate_database(server_url, BENCH_DATABASE.format(slot=slot), create=False)
    return 1 if problems else 0


def _print(reports, kinds, variants, repeat, split, problems, sink) -> None:
    print(f"load average {os.getloadavg()[0]:.1f}; medians of {repeat} fresh children per row; CPU = process CPU")
    print(f"rounds: one task per fresh tenant; reward languages {', '.join(LOCALES)}")
    header = "| kind | variant | prepared before the fork (CPU ms) | child boot | " + " | ".join(
        f"task {n} CPU / wall ms" for n in range(1, ROUNDS + 1)
    )
    print(header + " | first − later (CPU ms) | modules / templates in task 1 |")
    print("|" + "---|" * (header.count("|") + 2))
    for kind in kinds:
        for variant in variants:
            runs = reports.get((kind, variant), [])
            if not runs:
                continue
            cells = []
            for n in range(ROUNDS):
                cpu = _median([run["rounds"][n]["cpu_ms"] for run in runs])
                wall = _median([run["rounds"][n]["wall_ms"] for run in runs])
                cells.append(f"{cpu:.1f} / {wall:.1f}")
            first = _median([run["rounds"][0]["cpu_ms"] for run in runs])
            later = _median([min(r["cpu_ms"] for r in run["rounds"][1:]) for run in runs])
            prepared = Counter()
            for run in runs:
                for name, ms in run["prepared_ms"].items():
                    prepared[name] += ms / len(runs)
            prepared_text = ", ".join(f"{name} {ms:.0f}" for name, ms in prepared.items()) or "—"
            boot = _median([run["child_boot_cpu_ms"] for run in runs])
            task_one = f"{_median([run['rounds'][0]['modules'] for run in runs]):.0f} / " + str(
                len(runs[0]["rounds"][0]["templates"])
            )
            print(
                f"| {kind} | {variant} | {prepared_text} | {boot:.1f} | {' | '.join(cells)} | "
                f"{first - later:.1f} | {task_one} |"
            )
    for kind in kinds:
        runs = reports.get((kind, "cold"), [])
        if runs:
            print(f"{kind}, cold, templates compiled per round: {[r['templates'] for r in runs[0]['rounds']]}")
            later = [r["modules"] for r in runs[0]["rounds"][1:]]
            print(f"{kind}, cold, modules imported by tasks 2..{ROUNDS}: {later}")
            first = runs[0]["rounds"][0]["module_names"]
            ours = sorted(name for name in first if name.split(".")[0] in _PROJECT_PACKAGES)
            others = Counter(name.split(".")[0] for name in first if name.split(".")[0] not in _PROJECT_PACKAGES)
            print(f"{kind}, cold, task 1 imported {len(first)} modules: {', '.join(ours)}; and of other packages "
                  f"{', '.join(f'{package} {count}' for package, count in others.most_common())}")  # fmt: skip
    for kind in kinds:
        for run in reports.get((kind, "warm-up"), []):
            if run["rounds"][0]["module_names"] or run["rounds"][0]["templates"]:
                print(f"{kind}, warm-up, task 1 still imported {run['rounds'][0]['module_names']}, "
                      f"compiled {run['rounds'][0]['templates']}")  # fmt: skip
                break
    for variant in ("cold", "warm-up"):
        runs = [run for kind in kinds for run in reports.get((kind, variant), [])]
        if runs:
            cpu, rss = _median([r["parent_cpu_ms"] for r in runs]), _median([r["parent_rss_mib"] for r in runs])
            print(f"{variant}: main process: {cpu:.0f} ms CPU until ready to fork, peak RSS {rss:.1f} MiB")
    logged = [
        run["warm_up_log"] for kind in kinds for run in reports.get((kind, "warm-up"), []) if "warm_up_log" in run
    ]
    if logged:
        print(
            f"warm-up (its log line): {_median([line['cpu_ms'] for line in logged]):.0f} ms CPU, "
            f"{logged[0]['modules']} modules, languages {logged[0]['languages']}"
        )
    if split:
        print("first cold delivery's imports by package (-X importtime self time, ms):")
        for package, ms in split:
            print(f"  {ms:7.1f}  {package}")
    print(f"messages received by the SMTP server: {sink.count}")
    print("checked: every reward delivered, every webhook delivery succeeded, every batch completed"
          if not problems else "PROBLEMS:\n  " + "\n  ".join(problems[:20]))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
