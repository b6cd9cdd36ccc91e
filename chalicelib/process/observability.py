"""Powertools logger, metrics and (where the stage turns it on) tracer, shared by every handler.

The logger's service name equals the Chalice app name, and the app is created
with configure_logs=False: Chalice's own error log ("Caught exception for
path ...", with the traceback) then goes out once, as structured JSON.

One line, one write: the threaded dev server has many threads writing to one stdout. A log record is
written in one call; Powertools' own metrics flush would `print` the EMF object and its newline in two
calls, and another thread's line could land between them (two JSON objects glued on one line). So the
EMF line goes out through the logger's handler, in one write, under the handler's lock.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from chalicelib.process import settings

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SERVICE = "livestats"

logger = Logger(service=SERVICE)
# Each deployed stage has its own namespace (POWERTOOLS_METRICS_NAMESPACE in .chalice/config.json, which its
# dashboard and alarms read); elsewhere the service's name.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or SERVICE, service=SERVICE)


# Metrics is one object per process. Lambda runs one request at a time, but the threaded dev server
# does not: one request's flush must not iterate the set while another adds to it.
_metrics_lock = threading.Lock()


def count(metric: str, value: float = 1) -> None:
    with _metrics_lock:
        metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)


def flush_metrics(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Middleware (every event type): emit this invocation's metrics as one EMF line."""
    try:
        return get_response(event)
    finally:
        with _metrics_lock:
            if metrics.metric_set:
                # Cleared even when disabled: Powertools would otherwise print the set itself at 100 values.
                line = (
                    None if is_metrics_disabled() else json.dumps(metrics.serialize_metric_set(), separators=(",", ":"))
                )
                metrics.clear_metrics()
                if line is not None:
                    _write_line(line)


def _write_line(line: str) -> None:
    """One whole line to the log stream, in one write, serialised with the logger's own records."""
    # Powertools' Logger makes its handler a StreamHandler (on stdout) when none is given, as here.
    handler = cast("logging.StreamHandler[TextIO]", logger.registered_handler)
    handler.acquire()
    try:
        handler.stream.write(line + "\n")
        handler.flush()
    finally:
        handler.release()


# --- tracing (X-Ray), where the stage's `xray` sets TRACING --------------------------------------------------

_tracer_lock = threading.Lock()
_tracer: Tracer | None = None


def tracer() -> Tracer:
    """Powertools' Tracer, made on first use: it imports the X-Ray SDK and patches botocore, so every DynamoDB,
    Kinesis and SSM call becomes a subsegment. Made only where tracing is on (bench/coldstart.py measures it)."""
    global _tracer
    with _tracer_lock:
        if _tracer is None:
            from aws_lambda_powertools import Tracer

            _tracer = Tracer(service=SERVICE, patch_modules=["botocore"])
        return _tracer


def trace(event: Any, get_response: Callable[[Any], Any]) -> Any:
    """Middleware (every event type): where TRACING is on, each invocation is a subsegment named after its route or
    function, annotated so traces can be searched by it."""
    if not settings.get().tracing:
        return get_response(event)
    # The route template of an HTTP request (few distinct values); the function's name for other events.
    route = getattr(event, "path", None) or getattr(getattr(event, "context", None), "function_name", None)
    route = route or type(event).__name__
    with tracer().provider.in_subsegment(f"## {route}") as subsegment:
        subsegment.put_annotation(key="route", value=route)
        return get_response(event)
