"""`make run`'s server end to end, as a subprocess in a fresh copy of the repository.

The copy matters: a path that works only from the developer's checkout, or only with a variable the tests
happen to set, fails here as it would on a fresh clone.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools import dev_backends, devserver
from devtools.ddblocal import DynamoDBLocal, StartError, free_port, java_available

REPO_DIR = Path(__file__).resolve().parent.parent
# Bounds for failures, not speed targets: a JVM boots slowly on a loaded 2-core box, and `make run` in a fresh
# copy first creates its .venv and runs npm ci.
START_TIMEOUT_S = 60.0
FRESH_START_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 20.0
ONCE_PER_RUN = "backend-independent (the dev server always starts its own database): runs in the moto pass only"


def copy_project(dest: Path) -> Path:
    """What a fresh clone holds: the files git tracks plus untracked, non-ignored ones (no .venv, node_modules)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO_DIR, capture_output=True, check=True
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO_DIR / name
        if source.is_file():  # a tracked file deleted in the working tree is not listed as a file
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


class Server:
    """A dev server subprocess and everything it printed (stdout and stderr, in order)."""

    def __init__(self, cmd: list[str], cwd: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        # Own process group, as a terminal's foreground job: SIGINT goes to the whole group, as Ctrl-C does.
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def text(self) -> str:
        while not self._lines.empty():
            self.output.append(self._lines.get())
        return "".join(self.output)

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        """The first match of `pattern` in the output, waiting for it while the process runs."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text())
            if found:
                return found
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader thread drain the pipe
                found = re.search(pattern, self.text())
                assert found, f"exited with {self.proc.returncode} before {pattern!r}:\n{self.text()}"
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout_s:.0f} s:\n{self.text()}")

    def wait_healthy(self, timeout_s: float) -> None:
        """Until GET /health answers over HTTP (404 accepted until the route exists)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"exited with {self.proc.returncode}:\n{self.text()}"
            try:
                status, _ = self.request("GET", "/health", timeout_s=5)
            except OSError:
                time.sleep(0.2)
                continue
            assert status in (200, 404), status
            return
        raise AssertionError(f"/health did not answer within {timeout_s:.0f} s:\n{self.text()}")

    def request(self, method: str, path: str, body: Any = None, timeout_s: float = 10) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, payload, {"Content-Type": "application/json"} if payload else {})
            response = conn.getresponse()
            raw = response.read()
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            return response.status, json.loads(raw) if is_json else raw
        finally:
            conn.close()

    def interrupt(self) -> int:
        """Ctrl-C in a terminal: SIGINT to the whole process group. The exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {STOP_TIMEOUT_S:.0f} s after SIGINT:\n{self.text()}") from None

    def group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        """Clean-up after a failed test: nothing of this server may outlive it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)  # the clean way first: the server stops its database
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.group_alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait()
        # DynamoDB Local and kinesalite run in their own process groups, which a killed server leaves behind.
        for name, command in (("DynamoDB Local", b"DynamoDBLocal.jar"), ("kinesalite", b"kinesalite.js")):
            found = re.findall(rf"{name} (?:at|is back at) \S+ \(pid (\d+)\)", self.text())
            for pid in {int(p) for p in found}:
                with contextlib.suppress(OSError):
                    if command in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of the repository sharing this checkout's DynamoDB Local (npm ci is the slow test's job)."""
    copy = copy_project(tmp_path / "livestats")
    (copy / "node_modules").symlink_to(REPO_DIR / "node_modules", target_is_directory=True)
    return copy


def state_home(tmp_path: Path) -> Path:
    """The test's own XDG_STATE_HOME, under which the default DATA_DIR lies (not the user's ~/.local/state)."""
    return tmp_path / "state"


def default_data_dir(tmp_path: Path, project: Path) -> Path:
    return dev_backends.default_data_dir(project, {"XDG_STATE_HOME": str(state_home(tmp_path))})


@pytest.fixture
def dev_server(project: Path, tmp_path: Path) -> Iterator[Server]:
    """`python -m devtools.devserver` in the copy, with this interpreter; no DATA_DIR (the default must work)."""
    port = free_port()
    drop = ("DATA_DIR", "DDB_ENDPOINT_URL", "TABLE_NAME", "PYTHONPATH", "ADMIN_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith(("AWS_", "LIVESTATS_"))}
    env.update(PORT=str(port), PYTHONUNBUFFERED="1", XDG_STATE_HOME=str(state_home(tmp_path)))
    server = Server([sys.executable, "-m", "devtools.devserver"], project, env, port)
    try:
        yield server
    finally:
        server.kill()


def test_devserver_serves_and_stops_on_sigint(dev_server: Server, project: Path, tmp_path: Path) -> None:
    found = dev_server.wait_for(r"running on http://127\.0\.0\.1:(\d+)/", START_TIMEOUT_S)
    assert int(found.group(1)) == dev_server.port
    dev_server.wait_healthy(START_TIMEOUT_S)
    banner = dev_server.wait_for(r"DynamoDB Local at http://127\.0\.0\.1:(\d+) \(pid (\d+)\), data in (\S+)/", 1)
    ddb_port, ddb_pid = int(banner.group(1)), int(banner.group(2))
    data_dir = default_data_dir(tmp_path, project)
    assert Path(banner.group(3)) == data_dir / "dynamodb"  # the default, outside the project
    kinesis = dev_server.wait_for(r"kinesalite at http://127\.0\.0\.1:(\d+) \(pid (\d+)\), data in (\S+)/", 1)
    kinesis_port, kinesis_pid = int(kinesis.group(1)), int(kinesis.group(2))
    assert Path(kinesis.group(3)) == data_dir / "kinesis"
    dev_server.wait_for(r"Kinesis consumer: apply_events polls stream 'livestats-events'", 1)
    health = dev_server.wait_for(r"(?m)^Health: (.*)$", 1).group(1)
    # Either until GET /health exists in this branch.
    assert health in ("ok (database ok)", "HTTP 404 not_found: no such resource"), health

    conn = http.client.HTTPConnection("127.0.0.1", dev_server.port, timeout=10)
    try:
        for _ in range(5):  # one connection, reused: keep-alive must work
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()

    assert dev_server.interrupt() == 0, dev_server.text()
    assert "Stopping..." in dev_server.text()
    assert not dev_server.group_alive()
    assert not _pid_alive(ddb_pid) and not _accepts(ddb_port)  # the java child went with it
    assert not _pid_alive(kinesis_pid) and not _accepts(kinesis_port)  # and the node one


def test_dead_database_is_restarted_then_given_up(dev_server: Server, backend: str) -> None:
    if backend != "moto":
        pytest.skip(ONCE_PER_RUN)
    dev_server.wait_healthy(START_TIMEOUT_S)
    first = dev_server.wait_for(r"DynamoDB Local at http://127\.0\.0\.1:(\d+) \(pid (\d+)\)", 1)
    ddb_port, pid = int(first.group(1)), int(first.group(2))
    assert dev_server.request("POST", "/streams/s/values", {"value": 1})[0] == 200

    # SIGTERM first: the JVM shuts down cleanly, so the value above is on disk (after a SIGKILL, DynamoDB Local
    # can lose a write it has just acknowledged, which would make the data check below flaky).
    os.kill(pid, signal.SIGTERM)
    exited = (
        rf"the database process exited: DynamoDB Local \(pid {pid}\) (exited with code \d+|was killed by SIGTERM)\."
    )
    dev_server.wait_for(exited, 10)
    assert re.search(r"Log: \S+/dynamodb-local\.log, last lines:\n  ", dev_server.text())
    back = dev_server.wait_for(rf"DynamoDB Local is back at http://127\.0\.0\.1:{ddb_port} \(pid (\d+)\)", 60)
    pid = int(back.group(1))
    status, body = dev_server.request("POST", "/streams/s/values", {"value": 3})
    assert status == 200, body
    assert body["count"] == 2  # same port, same data: the value from before the crash is still there

    # Dying again and again within a minute: the dev server stops, non-zero, and says why.
    os.kill(pid, signal.SIGKILL)
    dev_server.wait_for(rf"DynamoDB Local \(pid {pid}\) was killed by SIGKILL\.", 10)
    pid = int(dev_server.wait_for(rf"(?s)pid {pid}\).*is back at \S+ \(pid (\d+)\)", 60).group(1))
    os.kill(pid, signal.SIGKILL)
    assert dev_server.proc.wait(timeout=STOP_TIMEOUT_S) == 1
    assert "DynamoDB Local exited 3 times within 60 s; stopping." in dev_server.text()
    assert not _pid_alive(pid) and not _accepts(ddb_port)


def test_make_run_in_a_fresh_clone(tmp_path: Path, backend: str) -> None:
    """The README's first command, exactly as written, with only what a user's shell has."""
    if backend != "moto":
        pytest.skip(ONCE_PER_RUN + "; it creates a .venv and runs npm ci (about a minute)")
    copy = copy_project(tmp_path / "livestats")
    port = free_port()
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    # XDG_STATE_HOME too: the data goes under it by default, and must not stay in the user's ~/.local/state.
    env.update(PORT=str(port), XDG_STATE_HOME=str(state_home(tmp_path)))
    server = Server(["make", "run"], copy, env, port)
    try:
        server.wait_for(r"running on http://127\.0\.0\.1:\d+/", FRESH_START_TIMEOUT_S)
        server.wait_healthy(START_TIMEOUT_S)
        banner = server.wait_for(r"DynamoDB Local at http://127\.0\.0\.1:(\d+) \(pid (\d+)\), data in (\S+)/", 1)
        ddb_port, ddb_pid = int(banner.group(1)), int(banner.group(2))
        assert Path(banner.group(3)) == default_data_dir(tmp_path, copy) / "dynamodb"

        status, page = server.request("GET", "/")
        assert status == 200 and b"<html" in page.lower()
        status, body = server.request("POST", "/streams/s/values", {"value": 1})
        assert status == 200, body
        status, body = server.request("GET", "/streams/s")
        assert (status, body["count"], body["sum"]) == (200, 1, 1.0)

        # make dies of the SIGINT itself (after its child exits), as after Ctrl-C in a terminal.
        assert server.interrupt() in (0, -signal.SIGINT), server.text()
        assert "Stopping..." in server.text()
        assert not server.group_alive()
        assert not _pid_alive(ddb_pid) and not _accepts(ddb_port)
        assert (default_data_dir(tmp_path, copy) / "dynamodb" / "shared-local-instance.db").stat().st_size > 0
    finally:
        server.kill()


@pytest.mark.skipif(not java_available(), reason="needs Java")
def test_a_failed_start_shows_the_log_tail_and_its_path(tmp_path: Path) -> None:
    jar = tmp_path / "jar" / "DynamoDBLocal.jar"
    jar.parent.mkdir()
    jar.write_text("not a jar")  # java refuses it and exits at once
    log_path = tmp_path / "dynamodb-local.log"
    log_path.write_text("a line from an earlier run\n")
    database = DynamoDBLocal(db_path=tmp_path / "db", jar=jar, log_path=log_path)
    with pytest.raises(StartError) as failure:
        database.start()
    message = str(failure.value)
    assert message.startswith("DynamoDB Local exited with code 1.")
    assert f"Log: {log_path}, last lines:" in message
    assert re.search(r"(?i)invalid or corrupt jarfile", message), message
    assert "earlier run" not in message  # only this run's lines


def test_database_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="must be absolute"):
        DynamoDBLocal(db_path=Path(".data/dynamodb"))
    with pytest.raises(ValueError, match="must be absolute"):
        DynamoDBLocal(log_path=Path("ddb.log"))


def test_options_resolve_data_dir_against_the_start_directory(tmp_path: Path) -> None:
    home = Path.home()
    assert dev_backends.Options.from_environ({}, tmp_path) == dev_backends.Options(
        8000, home / ".local" / "state" / "livestats" / f"{tmp_path.name}-{_path_digest(tmp_path)}", None
    )
    state = dev_backends.Options.from_environ({"XDG_STATE_HOME": "/st"}, tmp_path).data_dir
    assert state == Path("/st/livestats") / f"{tmp_path.name}-{_path_digest(tmp_path)}"
    other = tmp_path / "elsewhere" / tmp_path.name  # another clone of the same name: another folder
    assert dev_backends.Options.from_environ({}, other).data_dir.name != f"{tmp_path.name}-{_path_digest(tmp_path)}"
    assert dev_backends.Options.from_environ({"DATA_DIR": "x/../y"}, tmp_path).data_dir == tmp_path / "y"
    assert dev_backends.Options.from_environ({"DATA_DIR": "~/d"}, tmp_path).data_dir == (home / "d").resolve()
    assert dev_backends.Options.from_environ({"DATA_DIR": "/abs"}, tmp_path).data_dir == Path("/abs")
    options = dev_backends.Options.from_environ({"PORT": "8123", "DDB_ENDPOINT_URL": "http://h:1"}, tmp_path)
    assert (options.port, options.endpoint) == (8123, "http://h:1")
    for bad in ("http", "-1", "0", "70000"):
        with pytest.raises(ValueError, match="PORT"):
            dev_backends.Options.from_environ({"PORT": bad}, tmp_path)


def _path_digest(path: Path) -> str:
    return hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]


def test_restart_budget_gives_up_on_a_crash_loop() -> None:
    budget = dev_backends.RestartBudget(max_exits=3, window_s=60)
    assert budget.allows_restart(0) and budget.allows_restart(30)
    assert not budget.allows_restart(59)  # three exits within a minute
    spaced = dev_backends.RestartBudget(max_exits=3, window_s=60)
    assert all(spaced.allows_restart(t) for t in (0, 40, 80, 120, 160))  # never three in one window


def test_health_line_says_what_came_back() -> None:
    assert devserver.describe_health(200, b'{"status": "ok", "database": "ok"}') == "ok (database ok)"
    unavailable = b'{"error": {"code": "database_unavailable", "message": "no answer"}}'
    assert devserver.describe_health(503, unavailable) == "HTTP 503 database_unavailable: no answer"
    missing = b'{"error": {"code": "not_found", "message": "no such resource"}}'
    assert devserver.describe_health(404, missing) == "HTTP 404 not_found: no such resource"
    assert devserver.describe_health(502, b"<html>") == "HTTP 502"


def test_devhook_lines_are_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    class Hooks:
        @staticmethod
        def on_devserver_start() -> list[str]:
            return ["admin token: t0k3n"]

    monkeypatch.setitem(sys.modules, "chalicelib.process.devhooks", Hooks)
    assert devserver.devhook_lines() == ["admin token: t0k3n"]
    monkeypatch.setitem(sys.modules, "chalicelib.process.devhooks", None)  # None in sys.modules: "no such module"
    assert devserver.devhook_lines() == []


@pytest.mark.pure
@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [("CORS_ORIGINS", "*", "CORS_ORIGINS: "), ("WRITE_ACCESS", "bogus", "WRITE_ACCESS: ")],
)
def test_an_invalid_setting_stops_make_run_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str, said: str
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setattr(devserver, "serve", lambda *_: pytest.fail("served with an invalid setting"))
    # Not this test process's logging and signal handlers: only what main() decides before serving.
    monkeypatch.setattr(devserver, "configure_logging", lambda: None)
    monkeypatch.setattr(signal, "signal", lambda *_: None)
    assert devserver.main() == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("devserver: ") and said in line
