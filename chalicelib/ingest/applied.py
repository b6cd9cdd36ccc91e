"""How an aggregate item records which records of the events stream it has applied: the exactly-once rule every
applier follows. Pure: no AWS.

Each item a consumer writes carries, per Kinesis shard, the marker (records.sequence_marker) of the last record
applied to it, as a top-level attribute `applied#{shard id}`, set in the same conditional write that applies the
change. Events at or below that marker are skipped: Lambda retries a failed batch from its first failed record
(possibly bisected), so a retried batch may hold records already applied. One attribute per shard (not a map): a
map's entry cannot be SET before the map exists, and a resharded stream's shard ids are new ones. Writes that
rewrite a whole item (Put) carry these attributes over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chalicelib.ingest.records import Delivered

MARKER_PREFIX = "applied#"
# In a condition: the item has applied nothing of this shard, or only records before the first one to apply.
NOT_APPLIED = "(attribute_not_exists(#applied) OR #applied < :first)"


class Unappliable(Exception):
    """Events that can never apply (e.g. a moving-average window that does not exist): dead-letter them."""


def marker_attr(shard_id: str) -> str:
    return f"{MARKER_PREFIX}{shard_id}"


def applied_marker(item: Mapping[str, Any] | None, shard_id: str) -> str | None:
    """The marker of the last record of `shard_id` applied to the stored item (None: none yet)."""
    attr = (item or {}).get(marker_attr(shard_id))
    return None if attr is None else str(attr["S"])


def marker_attrs(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored item's marker attributes, as stored (a Put that rewrites the item keeps them)."""
    return {name: value for name, value in (item or {}).items() if name.startswith(MARKER_PREFIX)}


def unapplied(delivered: Sequence[Delivered], marker: str | None) -> list[Delivered]:
    """The events of records after `marker` (all of them when nothing was applied yet)."""
    return list(delivered) if marker is None else [d for d in delivered if d.marker > marker]


def marker_condition(shard_id: str, todo: Sequence[Delivered]) -> tuple[dict[str, str], dict[str, Any]]:
    """Names and values of NOT_APPLIED and of `SET #applied = :last` for the events `todo` (in stream order)."""
    return (
        {"#applied": marker_attr(shard_id)},
        {":first": {"S": todo[0].marker}, ":last": {"S": todo[-1].marker}},
    )


def by_shard(delivered: Iterable[Delivered]) -> dict[str, list[Delivered]]:
    """Events per Kinesis shard, each list in stream order (a Lambda batch comes from one shard; be general)."""
    shards: dict[str, list[Delivered]] = {}
    for d in delivered:
        shards.setdefault(d.shard_id, []).append(d)
    return shards


def by_record(delivered: Iterable[Delivered]) -> list[list[Delivered]]:
    """Consecutive events of one record together: a marker names a whole record, so it applies whole or not at all."""
    records: list[list[Delivered]] = []
    for d in delivered:
        if records and records[-1][0].sequence_number == d.sequence_number:
            records[-1].append(d)
        else:
            records.append([d])
    return records


def chunks(delivered: Sequence[Delivered], most: int) -> list[list[Delivered]]:
    """Consecutive runs of events, each of whole records and of at most `most` events unless one record holds
    more: a marker names a whole record, so a record's events are applied in one write."""
    runs: list[list[Delivered]] = []
    for record in by_record(delivered):
        if runs and len(runs[-1]) + len(record) <= most:
            runs[-1].extend(record)
        else:
            runs.append(list(record))
    return runs
