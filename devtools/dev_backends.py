"""What `make run` starts beside the app: its environment read once (Options), the local database and Kinesis
(DynamoDB Local and kinesalite, or moto's server), their restarts when they die, and the app's Kinesis consumers.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from chalice.app import Chalice

from devtools.ddblocal import PROJECT_DIR, DynamoDBLocal, LocalServer, StartError, find_jar, java_available
from devtools.dev_http import DIGITS
from devtools.kinesis_local import Kinesalite, ensure_stream, find_kinesalite, kinesis_client, node_available
from devtools.kinesis_poller import Checkpoints, KinesisPoller, registrations

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Options:
    """`make run`'s environment, read once; paths are absolute from here on."""

    port: int
    data_dir: Path
    endpoint: str | None  # DDB_ENDPOINT_URL: use that DynamoDB and start none
    kinesis_endpoint: str | None = None  # KINESIS_ENDPOINT_URL: use that Kinesis and start none

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], cwd: Path) -> Options:
        port = environ.get("PORT") or "8000"
        if not DIGITS.fullmatch(port) or not 0 < int(port) < 65536:
            raise ValueError(f"PORT must be a port number, not {port!r}")
        # Resolved here, once: DynamoDB Local runs in the jar's folder, where a relative path means another place.
        given = environ.get("DATA_DIR")
        data_dir = (cwd / Path(given).expanduser()).resolve() if given else default_data_dir(cwd.resolve(), environ)
        return cls(
            port=int(port),
            data_dir=data_dir,
            endpoint=environ.get("DDB_ENDPOINT_URL") or None,
            kinesis_endpoint=environ.get("KINESIS_ENDPOINT_URL") or None,
        )


def default_data_dir(project_dir: Path, environ: Mapping[str, str]) -> Path:
    """The project's own folder under the user's state directory, outside the project: `chalice local` restarts
    whenever any file under the project changes (its autoreload watches all of it, with no exclusions), and
    DynamoDB Local and kinesalite write their files at every write."""
    state = Path(environ["XDG_STATE_HOME"]) if environ.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    digest = hashlib.sha256(str(project_dir).encode()).hexdigest()[:8]  # two clones of one name: two folders
    return state / "livestats" / f"{project_dir.name}-{digest}"


@dataclass
class Backend:
    endpoint: str
    description: str
    local: LocalServer | None = None  # the process this server started (and restarts)


def start_database(options: Options, project_dir: Path, stack: contextlib.ExitStack) -> Backend:
    """Whatever is started here is stopped when `stack` closes."""
    if options.endpoint:
        return Backend(options.endpoint, f"DynamoDB at {options.endpoint} (from DDB_ENDPOINT_URL)")
    # The served project's node_modules first, else this repository's (e.g. serving a scratch project).
    jar = find_jar(project_dir) or find_jar(PROJECT_DIR)
    if java_available() and jar is not None:
        db_dir = options.data_dir / "dynamodb"
        db_dir.mkdir(parents=True, exist_ok=True)
        ddb = DynamoDBLocal(db_path=db_dir, jar=jar, log_path=options.data_dir / "dynamodb-local.log")
        stack.callback(ddb.stop)
        endpoint = ddb.start()
        description = f"DynamoDB Local at {endpoint} (pid {ddb.pid}), data in {db_dir}/, log {ddb.log_path}"
        return Backend(endpoint, description, ddb)
    reason = "Java is not installed" if not java_available() else "DynamoDBLocal.jar is missing (npm install)"
    print(f"NOTE: {reason}: using moto's DynamoDB server instead (in memory; TTL never expires items).", flush=True)
    endpoint = start_moto_server(stack)
    return Backend(endpoint, f"moto server at {endpoint} (in memory)")


def start_kinesis(options: Options, project_dir: Path, stack: contextlib.ExitStack) -> Backend:
    """kinesalite, persisted under DATA_DIR (why kinesalite: the README's "Local Kinesis")."""
    if options.kinesis_endpoint:
        return Backend(options.kinesis_endpoint, f"Kinesis at {options.kinesis_endpoint} (from KINESIS_ENDPOINT_URL)")
    package = find_kinesalite(project_dir) or find_kinesalite(PROJECT_DIR)
    if node_available() and package is not None:
        data = options.data_dir / "kinesis"
        kinesis = Kinesalite(data_path=data, package=package, log_path=options.data_dir / "kinesalite.log")
        stack.callback(kinesis.stop)
        endpoint = kinesis.start()
        description = f"kinesalite at {endpoint} (pid {kinesis.pid}), data in {data}/, log {kinesis.log_path}"
        return Backend(endpoint, description, kinesis)
    reason = "Node is not installed" if not node_available() else "kinesalite is missing (npm install)"
    print(f"NOTE: {reason}: using moto's Kinesis server instead (in memory).", flush=True)
    endpoint = start_moto_server(stack)
    return Backend(endpoint, f"moto server at {endpoint} (in memory)")


def start_moto_server(stack: contextlib.ExitStack) -> str:
    from moto.server import ThreadedMotoServer  # heavy import: only when needed

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per call otherwise
    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)  # port 0: the OS picks a free one
    moto.start()
    stack.callback(moto.stop)
    return "http://{}:{}".format(*moto.get_host_and_port())


class RestartBudget:
    """A crashed process is restarted unless it has now exited `max_exits` times within `window_s`."""

    def __init__(self, max_exits: int = 3, window_s: float = 60.0) -> None:
        self.max_exits, self.window_s = max_exits, window_s
        self._exits: collections.deque[float] = collections.deque()

    def allows_restart(self, exited_at: float) -> bool:
        """Record an exit at `exited_at` (monotonic seconds); False once it is crashing in a loop."""
        self._exits.append(exited_at)
        while exited_at - self._exits[0] >= self.window_s:
            self._exits.popleft()
        return len(self._exits) < self.max_exits


def describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def revive(server: LocalServer, budget: RestartBudget, role: str = "database") -> bool:
    """Say that a local server (the database, Kinesis) died and restart it on the same port and data; False if
    that is hopeless."""
    code = server.exit_code
    assert code is not None
    err, name = sys.stderr, server.name
    print(f"devserver: the {role} process exited: {name} (pid {server.pid}) {describe_exit(code)}.", file=err)
    print(server.log_excerpt(), file=err, flush=True)
    if not budget.allows_restart(time.monotonic()):
        print(
            f"devserver: {name} exited {budget.max_exits} times within {budget.window_s:.0f} s; stopping. "
            f"See {server.log_path}.",
            file=err,
            flush=True,
        )
        return False
    print(f"Restarting {name} on port {server.port} with data in {server.data_path}/ ...", flush=True)
    try:
        server.restart()
    except StartError as exc:
        print(f"devserver: {name} did not start again: {exc}", file=err, flush=True)
        return False
    print(f"{name} is back at {server.endpoint_url} (pid {server.pid})", flush=True)
    return True


def start_consumers(app: Chalice, kinesis: Backend, data_dir: Path, stack: contextlib.ExitStack) -> list[str]:
    """Create the streams the app's consumers read (and the API writes), and poll them; one line per consumer."""
    from chalicelib.process import settings  # the project's own code: import once on sys.path

    client = kinesis_client(kinesis.endpoint)
    found = registrations(app)
    for stream in sorted({settings.get().events_stream_name, *(r.stream for r in found)}):
        ensure_stream(client, stream)
    checkpoints = Checkpoints(data_dir / "kinesis-checkpoints.json")
    lines = []
    for registration in found:
        poller = KinesisPoller(
            registration,
            client,
            checkpoints,
            data_dir / "kinesis-dead-letters.jsonl",
            region=os.environ["AWS_DEFAULT_REGION"],
        )
        poller.start()
        stack.callback(poller.stop)
        lines.append(
            f"Kinesis consumer: {registration.name} polls stream {registration.stream!r} (batches of up to "
            f"{registration.batch_size}, window {registration.window_s:g} s, from {registration.starting_position} "
            f"or its checkpoint in {checkpoints.path})"
        )
    return lines
