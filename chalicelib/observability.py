"""Powertools logger and metrics, shared by every handler.

The logger's service name equals the Chalice app name, and the app is created
with configure_logs=False: Chalice's own error log ("Caught exception for
path ...", with the traceback) then goes out once, as structured JSON.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "livestats"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace="livestats", service=SERVICE)


def count(metric: str, value: float = 1) -> None:
    metrics.add_metric(name=metric, unit=MetricUnit.Count, value=value)
