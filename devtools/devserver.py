"""`make run`: the Chalice app on http://127.0.0.1:$PORT/ with a local DynamoDB, a local Kinesis, its scheduled
functions and its Kinesis consumers.

Run from the project root: `python -m devtools.devserver`. Environment:
  PORT            HTTP port (default 8000)
  DDB_ENDPOINT_URL  use this DynamoDB and start none (default: DynamoDB Local, or moto's server without Java)
  TABLE_NAME      table to use/create (default: the dev stage's TABLE_NAME in .chalice/config.json)
  KINESIS_ENDPOINT_URL  use this Kinesis and start none (default: kinesalite, or moto's server without Node)
  DATA_DIR        where DynamoDB Local and kinesalite keep their files between runs, and the consumers their
                  checkpoints (default: a folder of this project's own under $XDG_STATE_HOME, ~/.local/state; see
                  default_data_dir); a relative path is resolved once, here, against the directory the server starts
                  in (the project root)

While it serves, it writes its endpoints, table and secrets to the file the `local` stage of .chalice/config.json
names (DEVSERVER_FILE), so that `chalice local --stage local` serves the same data; it removes the file when it stops.

If DynamoDB Local or kinesalite dies while serving, it is restarted on the same port and data (at most 3 exits a
minute each).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import http.client
import importlib
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
import chalice.local
from chalice.app import Chalice
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.deploy.validate import validate_routes
from chalice.local import ChaliceRequestHandler, LocalDevServer, LocalGatewayException

from chalicelib.edge import routing, web
from chalicelib.edge.errors import error_body
from chalicelib.process.observability import SERVICE
from devtools import local_routes
from devtools.ddblocal import (
    PROJECT_DIR,
    DynamoDBLocal,
    LocalServer,
    StartError,
    find_jar,
    java_available,
    local_aws_env,
)
from devtools.kinesis_local import Kinesalite, ensure_stream, find_kinesalite, kinesis_client, node_available
from devtools.kinesis_poller import Checkpoints, KinesisPoller, registrations
from devtools.scheduler import Scheduler

log = logging.getLogger("devtools.devserver")

HOST = "127.0.0.1"
STAGE = "dev"
# The stage of `chalice local --stage local`, which reads DEVSERVER_FILE (chalicelib/process/settings.py).
LOCAL_STAGE = "local"
# Set by this server; the stage's environment_variables must not override them.
OWN_ENV_KEYS = ("DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL")


# A client that stops sending mid-body must not hold a server thread forever.
BODY_READ_TIMEOUT_S = 30.0
MAX_MESSAGE_CHARS = 200
# method SP request-target SP HTTP-version, nothing else: BaseHTTPRequestHandler splits on any whitespace,
# so a tab or a control character would otherwise pass. A request-target is visible ASCII (RFC 9112): other bytes
# must be percent-encoded, and the standard library would read raw UTF-8 as Latin-1.
_REQUEST_LINE = re.compile(rb"[!-~]+ [!-~]+ HTTP/[0-9]\.[0-9]\r?\n")
_DIGITS = re.compile(r"[0-9]+")
# BaseHTTPRequestHandler's own rejections as (status, code). No 5xx: a 5xx would mean a bug in this service.
_STDLIB_REJECTIONS: dict[int, tuple[int, str]] = {
    HTTPStatus.BAD_REQUEST: (400, "bad_request"),
    HTTPStatus.REQUEST_URI_TOO_LONG: (414, "uri_too_long"),
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: (431, "headers_too_large"),
    HTTPStatus.NOT_IMPLEMENTED: (405, "method_not_allowed"),  # no do_<METHOD>: TRACE, CONNECT, made-up ones
    HTTPStatus.HTTP_VERSION_NOT_SUPPORTED: (400, "unsupported_http_version"),
}
_GATEWAY_CODES = {401: "unauthorized", 403: "forbidden", 500: "internal_error"}


class RequestRejected(Exception):
    """A request this layer answers itself, in the service's error shape, without calling the app."""

    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class DevRequestHandler(ChaliceRequestHandler):
    """Chalice's request handler with the HTTP layer kept inside the service's contract.

    Whatever the app never sees (an unparsable request, an unknown method, a body that is truncated, chunked or
    too large) is answered here as `{"error": {"code", "message"}}` JSON with an X-Request-Id, and a body is
    handed to the app only when it arrived whole. HEAD responses carry the headers and never a body.
    """

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Nothing: the app logs every request it answers (its JSON access line), and this layer logs each answer it
        makes itself (log_error). http.server's own line would be a second line for the same request."""

    # socketserver sets TCP_NODELAY for us. Without it, a keep-alive client stalls ~40 ms per request
    # (headers and body go out in separate small writes: Nagle's algorithm meets delayed ACK).
    disable_nagle_algorithm = True

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Chalice, config: Config) -> None:
        self.app_object = app_object  # before super().__init__, which handles the whole connection
        super().__init__(request, client_address, server, app_object, config)

    # --- what BaseHTTPRequestHandler rejects

    def parse_request(self) -> bool:
        line = self.raw_requestline  # type: ignore[attr-defined]  # set by handle_one_request; typeshed omits it
        if line.strip() and not _REQUEST_LINE.fullmatch(line):
            # None, as BaseHTTPRequestHandler.parse_request itself starts (typeshed says str)
            self.command, self.requestline = None, str(line, "iso-8859-1").rstrip("\r\n")  # type: ignore[assignment]
            self.send_error(HTTPStatus.BAD_REQUEST, f"malformed request line {self.requestline!r}")
            return False
        return bool(super().parse_request())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """BaseHTTPRequestHandler's rejections, as JSON instead of its HTML page; the connection closes."""
        status, error_code = _STDLIB_REJECTIONS.get(code, (400, "bad_request"))
        headers = {}
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            allowed = self._allowed_methods()
            text = f"method {self.command} not allowed; use {', '.join(allowed)}"
            headers["Allow"] = ", ".join(allowed)
        else:
            text = message or HTTPStatus(code).phrase
            text = f"{text}: {explain}" if explain else text
        self.log_error("code %d, message %s", status, text)
        # A request line that never parsed leaves request_version at HTTP/0.9, which suppresses the status line.
        self.request_version = "HTTP/1.1"
        self._send_json_error(status, error_code, text, headers)

    def handle_expect_100(self) -> bool:
        # Refuse an unacceptable body before the client sends it.
        try:
            self._declared_body_length()
        except RequestRejected as exc:
            self._send_rejection(exc)
            return False
        return bool(super().handle_expect_100())

    # --- requests the app would get

    def _generic_handle(self) -> None:
        try:
            if self.command == "OPTIONS":
                # For a route without an OPTIONS view, Chalice's gateway would answer 200 with an empty body.
                allowed = self._allowed_methods()
                if "OPTIONS" not in allowed:
                    message = f"method OPTIONS not allowed; use {', '.join(allowed)}"
                    raise RequestRejected(405, "method_not_allowed", message, {"Allow": ", ".join(allowed)})
            super()._generic_handle()  # calls _parse_payload first: a RequestRejected means the app was not called
        except RequestRejected as exc:
            self._send_rejection(exc)
        except OSError:
            raise  # the client went away mid-response: nothing more to send
        except Exception:
            log.exception("request failed in the local gateway")
            self._send_json_error(500, "internal_error", "An internal error occurred.")

    # The parent bound its own _generic_handle to these names; bind ours.
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _generic_handle

    def _parse_payload(self) -> tuple[dict[str, Any], bytes | None]:
        length = self._declared_body_length()
        body = self._read_body(length) if length else None
        return dict(self.headers), body

    def _declared_body_length(self) -> int:
        if "Transfer-Encoding" in self.headers:
            raise RequestRejected(
                411, "length_required", "chunked request bodies are not supported; send a Content-Length"
            )
        values = [v.strip() for v in self.headers.get_all("Content-Length", [])]
        if not values:
            return 0
        if len(set(values)) != 1 or not _DIGITS.fullmatch(values[0]):
            raise RequestRejected(400, "bad_request", f"invalid Content-Length {', '.join(values)!r}")
        length = int(values[0])
        if length > web.MAX_BODY_BYTES:  # the app would refuse it: refuse it unread, as the app words it
            too_large = web.body_too_large()
            raise RequestRejected(too_large.status, too_large.code, too_large.message)
        return length

    def _read_body(self, length: int) -> bytes:
        self.connection.settimeout(BODY_READ_TIMEOUT_S)
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            raise RequestRejected(
                400, "incomplete_body", f"the request body did not arrive within {BODY_READ_TIMEOUT_S:.0f} s"
            ) from None
        finally:
            self.connection.settimeout(self.timeout)
        if len(body) < length:  # the client closed early: never apply part of a request
            raise RequestRejected(
                400, "incomplete_body", f"the request body ended after {len(body)} of {length} bytes (Content-Length)"
            )
        return body

    def _allowed_methods(self) -> list[str]:
        """The methods the app answers for this path, as its own 405s list them (all if it matches no route)."""
        try:
            # chalice.local.RouteMatcher is looked up now: devtools.local_routes may have replaced it.
            route = chalice.local.RouteMatcher(list(self.app_object.routes)).match_route(self.path)
        except ValueError:  # chalice's matcher raises where devtools.local_routes' returns None
            route = None
        if route is None:
            return [m for m in routing.HTTP_METHODS if m != "OPTIONS"]
        return routing.allowed_methods(self.app_object, route.route)

    # --- responses

    def send_response(self, code: int, message: str | None = None) -> None:
        """BaseHTTPRequestHandler's, without its `Server: BaseHTTP/0.6 Python/3.x.y` header: the exact server and
        Python version help only whoever looks for a known flaw in them."""
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _send_error_response(self, error: LocalGatewayException) -> None:
        """The local gateway's own refusals (authorizers, no route) in the service's shape."""
        try:
            message = str(json.loads(error.body or b"{}").get("message") or "")
        except (ValueError, AttributeError):
            message = ""
        status = error.CODE
        self._send_json_error(
            status,
            _GATEWAY_CODES.get(status, "error"),
            message or HTTPStatus(status).phrase,
            {k: v for k, v in error.headers.items() if k.lower() not in ("content-type", "content-length")},
            close=False,
        )

    def _send_http_response_with_body(self, code: int, headers: dict[str, Any], body: str | bytes) -> None:
        payload = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)
        if self.command != "HEAD":  # HEAD: the GET's headers (Content-Length included), never a body
            self.wfile.write(payload)

    def _send_headers(self, headers: dict[str, Any]) -> None:
        if not any(name.lower() == "x-request-id" for name in headers):
            # Imported here, not at the top: the project's code loads only after its stage's environment is set.
            from chalicelib.process.request_context import new_request_id

            headers = {**headers, "X-Request-Id": new_request_id()}
        super()._send_headers(headers)

    def _send_rejection(self, exc: RequestRejected) -> None:
        self.log_error("code %d, message %s", exc.status, exc.message)
        # After a truncated body the client may be gone already; the connection closes either way.
        with contextlib.suppress(OSError):
            self._send_json_error(exc.status, exc.code, exc.message, exc.headers)

    def _send_json_error(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None, *, close: bool = True
    ) -> None:
        """An answer from this layer; `close` (the default) when the rest of the request was not read."""
        body = json.dumps(error_body(code, message[:MAX_MESSAGE_CHARS]), separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")  # as the app's own answers (middleware.error_shape)
        if close:
            self.send_header("Connection", "close")
        self._send_headers(dict(headers or {}))
        if self.command != "HEAD":
            self.wfile.write(body)


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
        if not _DIGITS.fullmatch(port) or not 0 < int(port) < 65536:
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


def describe_health(status: int, body: bytes) -> str:
    """One line for the banner from GET /health's answer, whatever came back."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("status"), str):
        database = data.get("database")
        return f"{data['status']} (database {database})" if database is not None else data["status"]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        return f"HTTP {status} {data['error'].get('code')}: {data['error'].get('message')}"
    return f"HTTP {status}"


def check_health(port: int) -> str:
    # http.client, not urllib: no proxy from the environment between us and 127.0.0.1.
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return describe_health(response.status, response.read())
    except OSError as exc:
        return f"no answer from /health ({exc})"
    finally:
        conn.close()


def load_app(project_dir: Path) -> tuple[Chalice, Config]:
    factory = CLIFactory(str(project_dir))
    config = factory.create_config_obj(chalice_stage_name=STAGE)
    # `chalice local` applies the stage's environment_variables to os.environ just before importing app.py
    # (load_chalice_app updates the factory's environ, which is os.environ for the CLI). We apply them
    # ourselves, minus the keys we own; config.chalice_app then only updates the factory's private copy.
    for key, value in config.environment_variables.items():
        if key not in OWN_ENV_KEYS:
            os.environ.setdefault(key, value)  # what the developer exported wins
    app: Chalice = config.chalice_app
    validate_routes(app.routes)  # as `chalice local`: refuse routes API Gateway would refuse
    # The server is threaded; the app's class keeps request state per thread (chalicelib/edge/chalice_app.py).
    return app, config


def devhook_lines() -> list[str]:
    """Lines from the optional `chalicelib.process.devhooks.on_devserver_start()` (e.g. a generated admin token)."""
    try:
        hooks = importlib.import_module("chalicelib.process.devhooks")
    except ModuleNotFoundError as exc:
        if exc.name in ("chalicelib", "chalicelib.process", "chalicelib.process.devhooks"):
            return []
        raise  # the module exists but one of its imports is broken: say so
    hook = getattr(hooks, "on_devserver_start", None)
    return list(hook()) if hook is not None else []


def devserver_file(project_dir: Path) -> Path | None:
    """Where the `local` stage reads what this server serves (its DEVSERVER_FILE); None for a project without one."""
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    name = config.get("stages", {}).get(LOCAL_STAGE, {}).get("environment_variables", {}).get("DEVSERVER_FILE")
    return project_dir / name if name else None


def write_devserver_file(path: Path, port: int) -> None:
    """This server's settings (endpoints, table, secrets) as the variables it runs with, for `chalice local --stage
    local`. Readable by its owner only: it holds the admin token. Replaced whole, so a reader never sees half."""
    from chalicelib.process.settings import Settings  # the project's own code: import once on sys.path

    variables = {
        name.upper(): os.environ[name.upper()] for name in Settings.model_fields if os.environ.get(name.upper())
    }
    written = {"pid": os.getpid(), "url": f"http://{HOST}:{port}/", "environment": variables}
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(json.dumps(written, indent=2) + "\n")
    partial.replace(path)


def remove_devserver_file(path: Path) -> None:
    """Remove the file if this server wrote it (another `make run` in the same project may have replaced it)."""
    with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
        if json.loads(path.read_text())["pid"] == os.getpid():
            path.unlink()


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same clean-up path as Ctrl-C


def serve(options: Options, project_dir: Path) -> int:
    for key, value in local_aws_env().items():
        os.environ.setdefault(key, value)

    with contextlib.ExitStack() as stack:
        try:
            app, config = load_app(project_dir)  # sets the stage's variables, TABLE_NAME among them
            table_name = os.environ["TABLE_NAME"]
            database = start_database(options, project_dir, stack)
            os.environ["DDB_ENDPOINT_URL"] = database.endpoint
            kinesis = start_kinesis(options, project_dir, stack)
            os.environ["KINESIS_ENDPOINT_URL"] = kinesis.endpoint

            from chalicelib.process import runtime  # the project's own code: import once on sys.path
            from chalicelib.storage.table import ensure_table

            # Importing the app read the settings (a consumer's registration names its stream): read them again.
            runtime.reset()

            client: Any = boto3.client("dynamodb", endpoint_url=database.endpoint)
            created = ensure_table(client, table_name)

            local_routes.install()  # before the server builds its LocalGateway/RouteMatcher
            server = LocalDevServer(app, config, HOST, options.port, handler_cls=DevRequestHandler)
            stack.callback(server.server.server_close)

            scheduler = Scheduler(
                app,
                region=os.environ["AWS_DEFAULT_REGION"],
                timeout_s=lambda name: config.scope(config.chalice_stage, name).lambda_timeout,
            )
            scheduler.start()
            stack.callback(scheduler.stop)
            consumer_lines = start_consumers(app, kinesis, options.data_dir, stack)

            # Before the first request: the hooks set what the app reads (open writes, the tokens), and a request
            # served before them would be answered under a deployed stage's rules.
            hook_lines = devhook_lines()
            # LocalDevServer.serve_forever() only adds an unflushed print; serve the socketserver directly.
            thread = threading.Thread(target=server.server.serve_forever, name="http", daemon=True)
            thread.start()
            stack.callback(thread.join, 5)
            stack.callback(server.shutdown)  # callbacks run last-in first-out: shutdown, then join

            print(f"Database: {database.description}; table {table_name!r}{' (created)' if created else ''}")
            print(f"Kinesis: {kinesis.description}")
            for job in scheduler.jobs:
                print(f"Schedule: {job.name} next at {job.next_fire:%Y-%m-%d %H:%M:%S} UTC")
            for line in consumer_lines:
                print(line)
            print(f"livestats running on http://{HOST}:{options.port}/ (Ctrl-C to stop)")
            print(f"Health: {check_health(options.port)}")
            for line in hook_lines:
                print(line)
            # After the hooks, which set the tokens and the cursor secret it shares.
            shared = devserver_file(project_dir)
            if shared is not None:
                write_devserver_file(shared, options.port)
                stack.callback(remove_devserver_file, shared)
                print(f"`chalice local --stage local` serves the same data (it reads {shared})")
            sys.stdout.flush()
            budgets = {"database": (database, RestartBudget()), "Kinesis": (kinesis, RestartBudget())}
            while thread.is_alive():
                thread.join(0.5)  # wakes for signals: SIGINT/SIGTERM arrive here as KeyboardInterrupt
                for role, (backend, budget) in budgets.items():
                    local = backend.local
                    if local is not None and local.exit_code is not None and not revive(local, budget, role):
                        return 1
            print("HTTP server thread died", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not interrupt the clean-up (and leave DynamoDB Local or kinesalite running).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("Stopping...", flush=True)
    print("Stopped.", flush=True)
    return 0


def configure_logging() -> None:
    """Same stdout logging as `chalice local` (and as Lambda's log stream): one line per request, the app's JSON
    access line. Powertools' logger writes that line itself; passed on to the root logger's handler too, it printed
    again as a bare `request`."""
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials in environment variables."
    logging.getLogger(SERVICE).propagate = False


def main() -> int:
    configure_logging()
    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        options = Options.from_environ(os.environ, Path.cwd())
    except ValueError as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 2
    try:
        return serve(options, Path.cwd())
    except (OSError, StartError) as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
