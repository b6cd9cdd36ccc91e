"""The client's tests, run from the repository's root (they use its dev server, its harness for it and its test
helpers): alone (`.venv/bin/python -m pytest clients/python/tests`) or in `make test`, whose two passes
(`--backend=moto`, `--backend=ddblocal`) choose the service's database. None of these tests uses that database
(the dev server starts its own), so they run in the moto pass only."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from devtools.ddblocal import free_port
from tests.test_devserver import Server

CLIENT_TESTS = Path(__file__).resolve().parent
REPO = CLIENT_TESTS.parents[2]  # clients/python/tests -> the repository
# The suite's --backend chooses the database of the repository's own tests; the client's tests use none of it (the dev
# server starts its own DynamoDB Local), so a second pass would only repeat them.
ONCE_PER_RUN = "backend-independent (no database, or the dev server's own): runs in the moto pass only"
# A bound for failures, not a speed target: a JVM boots slowly on a loaded 2-core machine.
START_TIMEOUT_S = 120.0


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


class DevServer(Server):
    """`python -m devtools.devserver` of this repository (DynamoDB Local, kinesalite and the events consumer), run
    by the repository's own harness for `make run` (tests/test_devserver.py)."""

    def __init__(self, data_dir: Path) -> None:
        port = free_port()
        drop = ("DATA_DIR", "DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL", "TABLE_NAME", "PYTHONPATH", "WRITE_ACCESS")
        env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "LIVESTATS_"))}
        env.update(PORT=str(port), DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
        super().__init__([sys.executable, "-m", "devtools.devserver"], REPO, env, port)
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self) -> None:
        """Until its consumer polls the events stream and it serves /health."""
        self.wait_for("Kinesis consumer: apply_events polls", START_TIMEOUT_S)
        self.wait_healthy(START_TIMEOUT_S)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """One dev server for the session, with its data in a temporary folder."""
    server = DevServer(tmp_path_factory.mktemp("devserver-data"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()
