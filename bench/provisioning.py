"""Provisioning: how long `tenant_create` (live schema + the sandbox twin's row + portal domain) takes as tenants
pile up, what one adds to the catalogs, and what a twin's first use costs (its schema is made then).

New tenants clone a migrated template schema and fake-apply migrations (DESIGN: provisioning must stay fast as
migrations grow). This measures the clone path at 0, 100 and (budget allowing) 500 tenants already present,
and compares it with migrating a schema from scratch, which is what cloning avoids. Filling up to a level stops
early when the run's time budget (`--budget`, default 480 s) would not leave room for that level's samples; the
row then names the count actually reached.
"""

from __future__ import annotations

import itertools
import time

from .common import Context, Row, median, percentile, timed

SAMPLES = 10  # timed creations per level
REQUIRED_LEVELS = (0, 100)  # live tenants present before a level's samples (each also has a twin's row)
OPTIONAL_LEVELS = (500,)  # only if the run's time budget allows
SCRATCH_SAMPLES = 3

_slugs = (f"bench-{n:04d}" for n in itertools.count())


def _create() -> None:
    from tenants.services import tenant_create

    tenant_create(slug=next(_slugs), name="Bench Tenant", currency="USD")


def _live_count() -> int:
    from tenants.models import Tenant

    return Tenant.objects.filter(is_sandbox=False).count()


def _warm_up() -> None:
    """One untimed create and drop, so the first sample pays no import or cache cost."""
    from django.db import connection

    from tenants.models import Tenant
    from tenants.services import tenant_create

    tenant_create(slug="bench-warmup", name="Warm-up", currency="USD")
    for twin in Tenant.objects.filter(slug="bench-warmup").order_by("-is_sandbox"):
        twin.delete(force_drop=True)
    connection.set_schema_to_public()


def _catalog_size() -> tuple[int, int]:
    """(pg_class rows, schemas) in the database: what every schema costs the catalogs."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_namespace)")
        classes, schemas = cursor.fetchone()
    return int(classes), int(schemas)


def _catalog_rows() -> list[Row]:
    """pg_class rows and schemas one tenant_create adds, and what its sandbox's first use adds after."""
    from django.db import connection

    from tenants.models import Tenant
    from tenants.services import tenant_create, tenant_sandbox_ensure

    before = _catalog_size()
    live = tenant_create(slug="bench-catalog", name="Catalog", currency="USD")
    created = _catalog_size()
    seconds = timed(lambda: tenant_sandbox_ensure(tenant=live))
    used = _catalog_size()
    rows = [
        Row(
            "provisioning: pg_class rows per new tenant",
            created[0] - before[0],
            "rows",
            f"{created[1] - before[1]} schema(s)",
            "added to pg_class (and pg_namespace) by one tenant_create",
        ),
        Row(
            "provisioning: first use of a sandbox twin",
            round(seconds * 1000, 1),
            "ms",
            f"+{used[0] - created[0]} pg_class rows, +{used[1] - created[1]} schema",
            "tenant_sandbox_ensure: provisions the twin's schema (a test key, the portal's sandbox switch)",
        ),
    ]
    for twin in Tenant.objects.filter(slug="bench-catalog").order_by("-is_sandbox"):
        twin.delete(force_drop=True)
    connection.set_schema_to_public()
    return rows


def _migrate_from_scratch() -> float:
    """Seconds to create one schema and apply every tenant migration to it (then drop it)."""
    from django.core.management import call_command
    from django.db import connection

    def migrate() -> None:
        with connection.cursor() as cursor:
            cursor.execute('CREATE SCHEMA "bench_scratch"')
        call_command("migrate_schemas", tenant=True, schema_name="bench_scratch", interactive=False, verbosity=0)

    seconds = timed(migrate)
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute('DROP SCHEMA "bench_scratch" CASCADE')
    return seconds


def run(ctx: Context) -> list[Row]:
    from tenants.services import tenant_template_ensure

    rows: list[Row] = []
    _warm_up()
    rows.extend(_catalog_rows())

    scratch = [_migrate_from_scratch() for _ in range(SCRATCH_SAMPLES)]
    # tenant_create makes one schema (the twin's waits for its first use)
    rows.append(
        Row(
            "provisioning: migrate one schema from scratch",
            round(median(scratch) * 1000, 1),
            "ms (p50)",
            "one schema per tenant_create (the twin's on its first use)",
            f"what cloning the template avoids; p50 of {SCRATCH_SAMPLES}",
            {"samples_s": scratch},
        )
    )
    check = [timed(tenant_template_ensure) for _ in range(SAMPLES)]
    rows.append(
        Row(
            "provisioning: template freshness check",
            round(median(check) * 1000, 1),
            "ms (p50)",
            "",
            "tenant_template_ensure(), run at the start of every tenant_create",
            {"samples_s": check},
        )
    )

    baseline_p50 = None
    fill_curve: list[tuple[int, float]] = []  # (tenants present before the call, seconds)
    for level in REQUIRED_LEVELS + OPTIONAL_LEVELS:
        present = _live_count()
        if present < level and level in OPTIONAL_LEVELS:
            recent = [seconds for _, seconds in fill_curve[-SAMPLES:]]
            needed = (level - present + SAMPLES) * median(recent) * 1.5  # margin: each tenant costs more
            if needed > ctx.remaining():
                rows.append(
                    Row(
                        f"provisioning: tenant_create with {level} tenants present",
                        None,
                        "ms",
                        "",
                        f"skipped: ~{needed:.0f} s needed at the current pace, "
                        f"{max(ctx.remaining(), 0):.0f} s left of the {ctx.budget_seconds:.0f} s budget",
                    )
                )
                break
        stopped_early = False
        if present < level:
            started, fill_start = present, time.monotonic()
            while present < level:
                # Keep enough budget to take this level's samples at the current pace.
                if fill_curve and ctx.remaining() < SAMPLES * fill_curve[-1][1] * 1.2:
                    stopped_early = True
                    break
                fill_curve.append((present, timed(_create)))
                present += 1
            fill_seconds = time.monotonic() - fill_start
            rows.append(
                Row(
                    f"provisioning: fill {started} → {present} tenants",
                    round((present - started) / fill_seconds, 2),
                    "tenants/s",
                    f"{fill_seconds:.0f} s in all",
                    f"tenant_create back to back; last one {fill_curve[-1][1] * 1000:.0f} ms"
                    + (f"; stopped short of {level} by the {ctx.budget_seconds:.0f} s budget" if stopped_early else ""),
                )
            )
        measured_at, samples = present, []
        for _ in range(SAMPLES):
            samples.append(timed(_create))
            fill_curve.append((present, samples[-1]))
            present += 1
        p50, p95 = median(samples), percentile(samples, 95)
        if baseline_p50 is None:
            baseline_p50 = p50
        scratch_now = _migrate_from_scratch()  # at this many tenants, for a like-for-like comparison
        ratio = scratch_now / p50
        speed = f"{ratio:.1f}× faster" if ratio >= 1 else f"{1 / ratio:.1f}× slower"
        comparison = f"{speed} than migrating its schema from scratch ({scratch_now * 1000:.0f} ms here)"
        if level:
            comparison += f"; {p50 / baseline_p50:.1f}× the p50 at 0 tenants"
        rows.append(
            Row(
                f"provisioning: tenant_create with {measured_at} tenants present",
                round(p50 * 1000, 1),
                "ms (p50)",
                comparison,
                f"p95 {p95 * 1000:.1f} ms of {SAMPLES}; live schema + twin's row + domain",
                {"samples_s": samples, "p50_s": p50, "p95_s": p95, "present": measured_at},
            )
        )
        if stopped_early:
            break
    slope = _slope(fill_curve)
    rows.append(
        Row(
            "provisioning: cost growth per tenant present",
            round(slope * 1000, 2),
            "ms per tenant",
            f"→ ~{baseline_p50 + slope * 1000:.1f} s per tenant_create at 1,000 tenants (linear)",
            f"least-squares slope over {len(fill_curve)} creations (curve in the JSON)",
            {"curve": fill_curve},
        )
    )
    return rows


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of seconds against tenants present."""
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var_x = sum((x - mean_x) ** 2 for x, _ in points)
    if not var_x:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var_x
