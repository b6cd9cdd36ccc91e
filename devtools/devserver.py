"""`make run`: the Chalice app on http://127.0.0.1:$PORT/ with a local DynamoDB, a local Kinesis, its scheduled
functions and its Kinesis consumers.

Run from the project root: `python -m devtools.devserver`. Environment:
  PORT            HTTP port (default 8000)
  DDB_ENDPOINT_URL  use this DynamoDB and start none (default: DynamoDB Local, or moto's server without Java)
  TABLE_NAME      table to use/create (default: the dev stage's TABLE_NAME in .chalice/config.json)
  KINESIS_ENDPOINT_URL  use this Kinesis and start none (default: kinesalite, or moto's server without Node)
  DATA_DIR        where DynamoDB Local and kinesalite keep their files between runs, and the consumers their
                  checkpoints (default: a folder of this project's own under $XDG_STATE_HOME, ~/.local/state; see
                  dev_backends.default_data_dir); a relative path is resolved once, here, against the directory the server starts
                  in (the project root)

While it serves, it writes its endpoints, table and secrets to the file the `local` stage of .chalice/config.json
names (DEVSERVER_FILE), so that `chalice local --stage local` serves the same data; it removes the file when it stops.

If DynamoDB Local or kinesalite dies while serving, it is restarted on the same port and data (at most 3 exits a
minute each).

This module starts and stops it all; devtools/dev_backends.py starts the database, Kinesis and the consumers (and
restarts what dies), and devtools/dev_http.py is its HTTP layer.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import boto3
from chalice.app import Chalice
from chalice.cli.factory import CLIFactory
from chalice.config import Config
from chalice.deploy.validate import validate_routes
from chalice.local import LocalDevServer
from pydantic import ValidationError

from chalicelib.process import settings
from chalicelib.process.observability import SERVICE
from devtools import local_routes
from devtools.ddblocal import StartError, local_aws_env
from devtools.dev_backends import HOST, Options, RestartBudget, revive, start_consumers, start_database, start_kinesis
from devtools.dev_http import DevRequestHandler
from devtools.scheduler import Scheduler

STAGE = "dev"
# The stage of `chalice local --stage local`, which reads DEVSERVER_FILE (chalicelib/process/settings.py).
LOCAL_STAGE = "local"
# Set by this server; the stage's environment_variables must not override them.
OWN_ENV_KEYS = ("DDB_ENDPOINT_URL", "KINESIS_ENDPOINT_URL")


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
        # The app's settings too (CORS_ORIGINS=..., WRITE_ACCESS=...): refused here in a line, not in a traceback.
        settings.Settings.from_environment(os.environ)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"devserver: {reasons}", file=sys.stderr)
        return 2
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
