"""`make dev`'s /metrics shows the worker's and beat's counters too: scripts/dev.py gives web, worker and beat one
multiprocess directory, emptied at each start (observability/tests/test_metrics.py shows a worker's counters
reaching /metrics through such a directory)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _dev_script():
    spec = importlib.util.spec_from_file_location("dev_script", ROOT / "scripts" / "dev.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dev_gives_its_processes_one_emptied_metrics_directory_unless_one_is_set(tmp_path):
    dev = _dev_script()
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"last run's counters")
    env: dict[str, str] = {}
    dev.shared_metrics(env, directory)
    assert env["PROMETHEUS_MULTIPROC_DIR"] == str(directory) and list(directory.iterdir()) == []
    given = {"PROMETHEUS_MULTIPROC_DIR": "/dev/shm/mine"}
    dev.shared_metrics(given, tmp_path / "other")
    assert given == {"PROMETHEUS_MULTIPROC_DIR": "/dev/shm/mine"} and not (tmp_path / "other").exists()
