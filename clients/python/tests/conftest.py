"""The client's tests: run alone (`pytest` in clients/python) or in the repository's `make test`, whose two passes
(`--backend=moto`, `--backend=ddblocal`) choose the service's database. None of these tests uses that database
(the dev server starts its own), so they run in the moto pass only."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import settings

CLIENT_TESTS = Path(__file__).resolve().parent
REPO = CLIENT_TESTS.parents[2]  # clients/python/tests -> the repository
# The suite's --backend chooses the database of the repository's own tests; the client's tests use none of it (the dev
# server starts its own DynamoDB Local), so a second pass would only repeat them.
ONCE_PER_RUN = "backend-independent (no database, or the dev server's own): runs in the moto pass only"
# Bounds for failures, not speed targets: a JVM boots slowly on a loaded 2-core machine.
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


# As the repository's suite: no hypothesis deadline (on a loaded machine its 200 ms per example fails tests that are
# right).
settings.register_profile("livestats-client", deadline=None)
settings.load_profile("livestats-client")


def pytest_addoption(parser: pytest.Parser) -> None:
    # The repository's tests/conftest.py adds the same option; whichever conftest is loaded first adds it.
    with contextlib.suppress(ValueError):
        parser.addoption("--backend", choices=["moto", "ddblocal"], default=os.environ.get("LIVESTATS_BACKEND", "moto"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--backend", default="moto") != "ddblocal":
        return
    skip = pytest.mark.skip(reason=ONCE_PER_RUN)
    for item in items:
        if CLIENT_TESTS in item.path.parents:
            item.add_marker(skip)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevServer:
    """`python -m devtools.devserver` of this repository: DynamoDB Local, kinesalite and the events consumer."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        drop = ("DATA_DIR", "DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL", "TABLE_NAME", "PYTHONPATH", "WRITE_ACCESS")
        env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "LIVESTATS_"))}
        env.update(PORT=str(self.port), DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.devserver"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group: SIGINT reaches the database and kinesalite too
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def text(self) -> str:
        return "".join(self.output)

    def wait_ready(self) -> None:
        """Until it serves /health and its consumer polls the events stream."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.text()}"
            if "Kinesis consumer: apply_events polls" in self.text():
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                        return
            time.sleep(0.2)
        raise AssertionError(f"not ready within {START_TIMEOUT_S:.0f} s:\n{self.text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # as Ctrl-C: it stops its database, kinesalite and consumer
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One dev server for the session, with its data in a temporary folder."""
    if not (REPO / "devtools" / "devserver.py").is_file():
        pytest.skip("needs the livestats repository around the client (its dev server)")
    server = DevServer(tmp_path_factory.mktemp("devserver-data"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
