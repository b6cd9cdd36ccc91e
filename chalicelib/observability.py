"""Powertools logger and metrics, shared by every handler.

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
from typing import Any, TextIO, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

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
