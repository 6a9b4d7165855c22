"""gunicorn.conf.py as gunicorn runs it: every worker serves what `--bind` names, whichever address that is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from testsupport.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
APP = "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ok']\n"
ACCEPTING = 0x10000  # /proc/net/unix Flags: a listening socket


def _listening_inodes(path: Path) -> set[int]:
    inodes = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) == 8 and fields[7] == str(path) and int(fields[3], 16) & ACCEPTING:
            inodes.add(int(fields[6]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _get(path: Path) -> bytes | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        try:
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
            response = b""
            while chunk := client.recv(4096):
                response += chunk
        except OSError:
            return None
    return response.partition(b"\r\n\r\n")[2]


def _workers(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reuse_port is set on Linux only")
def test_gunicorn_bound_to_a_unix_socket_answers_with_every_worker_on_that_socket(tmp_path):
    """`--bind unix:…` (behind nginx): with reuse_port each worker binds a socket of its own, and Linux refuses
    SO_REUSEPORT on a Unix socket, so every worker failed to boot, again and again, and nothing answered. The
    workers share the one socket at the path instead."""
    (tmp_path / "probe_app.py").write_text(APP)
    path = tmp_path / "web.sock"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(WEB_REUSE_PORT="on", WEB_THREADS="1", WEB_CONCURRENCY="3", HOME=str(tmp_path))
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "--chdir", str(tmp_path),
         "--bind", f"unix:{path}", "probe_app:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _get(path) == b"ok", message="an answer on the Unix socket")

        def listening_per_worker() -> list[set[int]] | None:
            """The listening sockets at the path each worker holds, once all three hold one."""
            held = [_socket_inodes(pid) & _listening_inodes(path) for pid in _workers(web.pid)]
            return held if len(held) == 3 and all(held) else None

        held = wait_for(listening_per_worker, message="three gunicorn workers listening")
        assert len(set().union(*held)) == 1, held  # one socket, the one at the path
    finally:
        web.send_signal(signal.SIGTERM)
        web.wait(timeout=30)
