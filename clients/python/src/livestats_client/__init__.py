"""A typed client for the livestats API, and a background batcher for `POST /events`.

    from livestats_client import Client, EventBatcher

    with Client("http://localhost:8000", token=None) as client:
        client.add("latency", [12.5, 14.0])
        with EventBatcher(client) as batcher:
            batcher.add({"type": "metric", "key": "orders", "value": 2})

The reference: clients/python/README.md.
"""

from .batcher import BatcherClosed, EventBatcher, Failure, QueueFull
from .client import Client
from .errors import (
    AuthError,
    ConnectionFailed,
    InvalidRequest,
    LivestatsError,
    NotFound,
    ServerError,
    Throttled,
    Unavailable,
)
from .models import (
    Accepted,
    Appended,
    AverageEvent,
    DayCount,
    DaySeries,
    Event,
    Hit,
    HitEvent,
    MetricEvent,
    Name,
    Names,
    PathCount,
    Quantiles,
    Ranking,
    Rejection,
    Series,
    SeriesPoint,
    Sessions,
    Snapshot,
    SnapshotQuantiles,
    ValueEvent,
    Window,
)
from .retry import RetryPolicy

__all__ = [
    "Accepted",
    "Appended",
    "AuthError",
    "AverageEvent",
    "BatcherClosed",
    "Client",
    "ConnectionFailed",
    "DayCount",
    "DaySeries",
    "Event",
    "EventBatcher",
    "Failure",
    "Hit",
    "HitEvent",
    "InvalidRequest",
    "LivestatsError",
    "MetricEvent",
    "Name",
    "Names",
    "NotFound",
    "PathCount",
    "Quantiles",
    "QueueFull",
    "Ranking",
    "Rejection",
    "RetryPolicy",
    "Series",
    "SeriesPoint",
    "ServerError",
    "Sessions",
    "Snapshot",
    "SnapshotQuantiles",
    "Throttled",
    "Unavailable",
    "ValueEvent",
    "Window",
]
