"""`python -m devtools.devserver` end to end: start, serve keep-alive requests, stop cleanly on SIGINT.

DEVSERVER_PROJECT_DIR points it at another Chalice project (default: this repository).
"""

from __future__ import annotations

import http.client
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devtools import devserver
from devtools.ddblocal import free_port

REPO_DIR = Path(__file__).resolve().parent.parent
PROJECT_DIR = Path(os.environ.get("DEVSERVER_PROJECT_DIR", REPO_DIR))
# A bound for failures, not a speed target: ~4 s when idle, but a JVM boots slowly on a loaded 2-core box.
START_TIMEOUT_S = 45.0


def _reader(stream: object, lines: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.put(line)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_devserver_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DDB_ENDPOINT_URL", "TABLE_NAME")}
    env.update(PORT=str(port), DATA_DIR=str(tmp_path), PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO_DIR))
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.devserver"],
        cwd=PROJECT_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, lines), daemon=True).start()
    output: list[str] = []
    try:
        url = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                assert proc.poll() is None, "devserver exited early:\n" + "".join(output)
                continue
            output.append(line)
            found = re.search(r"running on (http://127\.0\.0\.1:(\d+)/)", line)
            if found:
                url = found.group(1)
                assert int(found.group(2)) == port
        assert url is not None, "no URL printed:\n" + "".join(output)
        ddb = re.search(r"DynamoDB Local at http://127\.0\.0\.1:(\d+)", "".join(output))
        ddb_port = int(ddb.group(1)) if ddb else None

        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for _ in range(5):  # one connection, reused: keep-alive must work
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                assert response.status == 200
        finally:
            conn.close()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, "".join(output)
        if ddb_port is not None:  # the java child went with it
            assert not _accepts(ddb_port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_devhook_lines_are_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hooks:
        @staticmethod
        def on_devserver_start() -> list[str]:
            return ["admin token: t0k3n"]

    monkeypatch.setitem(sys.modules, "chalicelib.devhooks", Hooks)
    assert devserver.devhook_lines() == ["admin token: t0k3n"]
    monkeypatch.setitem(sys.modules, "chalicelib.devhooks", None)  # None in sys.modules: "no such module"
    assert devserver.devhook_lines() == []
