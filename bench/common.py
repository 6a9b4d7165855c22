"""What every benchmark module shares: the result row, timing statistics and the run's context."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Row:
    """One line of the results table (and one object in the JSON file)."""

    benchmark: str
    value: float | None  # None: skipped
    unit: str
    comparison: str = ""  # a ceiling, a baseline or a ratio that gives the value its meaning
    notes: str = ""
    extra: dict = field(default_factory=dict)  # raw samples and parameters, kept in the JSON only

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Context:
    """Handed to each module's `run(ctx)`: the bench database and a time budget shared by the whole run."""

    database_url: str
    redis_url: str
    budget_seconds: float
    started_at: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.started_at

    def remaining(self) -> float:
        return self.budget_seconds - self.elapsed()


def timed(func: Callable[[], object]) -> float:
    """Seconds one call takes (monotonic clock)."""
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(samples: list[float]) -> float:
    return statistics.median(samples)
