"""Start and stop kinesalite (npm package `kinesalite`), the local Kinesis that `make run` uses, and create the
events stream in it.

Development only: used by `make run` (devtools.devserver). The tests use moto's Kinesis in-process instead.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from devtools.ddblocal import PROJECT_DIR, LocalServer, StartError, local_client

# kinesalite has no on-demand mode: a provisioned stream with a few shards, so that the poller meets several
# shards as it does in AWS (an on-demand stream starts with 4).
LOCAL_SHARDS = 4
STREAM_ACTIVE_TIMEOUT_S = 30.0
LAUNCHER = Path(__file__).resolve().parent / "kinesalite.js"


def node_available() -> bool:
    return shutil.which("node") is not None


def find_kinesalite(project_dir: Path) -> Path | None:
    """The folder of the npm package `kinesalite` installed for `project_dir`, or None."""
    folder = project_dir / "node_modules" / "kinesalite"
    return folder if (folder / "index.js").is_file() else None


def kinesis_client(endpoint_url: str, timeout_s: float = 5.0) -> Any:
    return local_client("kinesis", endpoint_url, timeout_s)


class Kinesalite(LocalServer):
    """One kinesalite process (Node). `data_path=None` keeps the streams in memory only."""

    name = "kinesalite"

    def __init__(
        self,
        port: int | None = None,
        data_path: Path | None = None,
        *,
        package: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(port, data_path, log_path)
        self.package = package if package is not None else find_kinesalite(PROJECT_DIR)

    def command(self) -> list[str]:
        if self.package is None:
            raise StartError("kinesalite not found: run `npm install` (package kinesalite)")
        storage = [str(self.data_path)] if self.data_path is not None else []
        return ["node", str(LAUNCHER), str(self.package), str(self.port), *storage]

    def workdir(self) -> Path:
        assert self.package is not None  # command() refused to start without it
        return self.package

    def ready(self) -> None:
        kinesis_client(self.endpoint_url, timeout_s=2.0).list_streams(Limit=1)


def ensure_stream(client: Any, name: str, shards: int = LOCAL_SHARDS) -> bool:
    """Create the stream unless it exists, and wait until it is ACTIVE. True if it was created."""
    created = False
    try:
        client.describe_stream_summary(StreamName=name)
    except client.exceptions.ResourceNotFoundException:
        client.create_stream(StreamName=name, ShardCount=shards)
        created = True
    deadline = time.monotonic() + STREAM_ACTIVE_TIMEOUT_S
    while client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise StartError(f"stream {name!r} not ACTIVE after {STREAM_ACTIVE_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
    return created
