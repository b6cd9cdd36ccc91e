"""The events stream's consumer: applies each batch of records, aggregated per key, exactly once."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import KinesisEvent

from chalicelib import settings

bp = Blueprint(__name__)


@bp.on_kinesis_record(
    stream=settings.get().events_stream_name,
    batch_size=1000,
    starting_position="TRIM_HORIZON",
    maximum_batching_window_in_seconds=1,
)
def apply_events(event: KinesisEvent) -> dict[str, Any]:
    raise NotImplementedError("the consumer is being built")
