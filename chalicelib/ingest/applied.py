"""How an aggregate item records which records of the events stream it has applied: the exactly-once rule every
applier follows. Pure: no AWS.

Each item a consumer writes carries, per Kinesis shard, the marker of the last record of that shard applied to it,
as a top-level attribute `applied#{shard id}`, set in the same conditional write that applies the change. Events
at or below that marker are skipped: Lambda retries a failed batch from its first failed record (possibly
bisected), so a retried batch may hold records already applied. One attribute per shard (not a map): a map's
entry cannot be SET before the map exists, and a resharded stream's shard ids are new ones. Writes that rewrite a
whole item (Put) carry these attributes over.

A marker's value is the record's sequence number at its real length (records.sequence_marker: its length, then its
digits, so that text order is number order) and, after `@`, when it was written (epoch seconds): about 70
characters. Markers written before that (128 zero-padded digits) are still read and compared correctly, and the
shard's next write rewrites its marker in the new form.

Pruning: an item's markers all come from one key, whose records live on one shard at a time, so the item's other
markers belong to the shards that key lived on before the current one: its ancestors, closed, with lower shard
numbers (Kinesis numbers new shards after every existing one). A closed shard's record is never delivered again
once it is older than the event source mapping's MAX_RECORD_AGE_S, and all of its records for this item are at
most as old as its marker's last write. So a write from shard C may drop the marker of a shard numbered below C's
that was last written more than MAX_RECORD_AGE_S ago (`pruning`, `pruned`): in the same write, at no extra cost,
so an item keeps the markers of its current shard and of those closed within the hour. A shard number that does
not parse, or a marker of the older form (its time unknown), is kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chalicelib.ingest.records import LEGACY_MARKER_DIGITS, Delivered, sequence_marker
from chalicelib.pure import clock

MARKER_PREFIX = "applied#"
# The event source mapping's MaximumRecordAgeInSeconds (deploy/template.py reads it from here): older records are
# never delivered to the consumer.
MAX_RECORD_AGE_S = 3600
# In a condition: the item has applied nothing of this shard, or only records before the first one to apply (a
# marker of either form compared with the first record in that form).
NOT_APPLIED = (
    "(attribute_not_exists(#applied)"
    " OR (contains(#applied, :at) AND #applied < :first)"
    " OR (NOT contains(#applied, :at) AND #applied < :first_legacy))"
)
_WRITTEN_AT = "@"
_SHARD_NUMBER = re.compile(r"shardId-(\d+)")


class Unappliable(Exception):
    """Events that can never apply (e.g. a moving-average window that does not exist): dead-letter them."""


def marker_attr(shard_id: str) -> str:
    return f"{MARKER_PREFIX}{shard_id}"


def applied_marker(item: Mapping[str, Any] | None, shard_id: str) -> str | None:
    """The marker (records.sequence_marker) of the last record of `shard_id` applied to the stored item (None: none
    yet), whichever form it is stored in."""
    attr = (item or {}).get(marker_attr(shard_id))
    return None if attr is None else _sequence_part(str(attr["S"]))


def marker_attrs(item: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stored item's marker attributes, as stored (a Put that rewrites the item keeps them)."""
    return {name: value for name, value in (item or {}).items() if name.startswith(MARKER_PREFIX)}


def unapplied(delivered: Sequence[Delivered], marker: str | None) -> list[Delivered]:
    """The events of records after `marker` (all of them when nothing was applied yet)."""
    return list(delivered) if marker is None else [d for d in delivered if d.marker > marker]


def marker_condition(
    shard_id: str, todo: Sequence[Delivered], now_s: float | None = None
) -> tuple[dict[str, str], dict[str, Any]]:
    """Names and values of NOT_APPLIED and of `SET #applied = :last` for the events `todo` (in stream order),
    written at `now_s` (default: the clock's now)."""
    written = math.ceil(clock.now() if now_s is None else now_s)  # never earlier than the write: pruning waits
    first = todo[0].marker
    return (
        {"#applied": marker_attr(shard_id)},
        {
            ":first": {"S": first},
            ":first_legacy": {"S": str(int(todo[0].sequence_number)).zfill(LEGACY_MARKER_DIGITS)},
            ":at": {"S": _WRITTEN_AT},
            ":last": {"S": f"{todo[-1].marker}{_WRITTEN_AT}{written}"},
        },
    )


def prunable(item: Mapping[str, Any] | None, shard_id: str, now_s: float | None = None) -> list[str]:
    """The item's marker attributes that a write from `shard_id` may drop (see the module docstring)."""
    current = _shard_number(shard_id)
    if current is None:
        return []
    now = clock.now() if now_s is None else now_s
    found = []
    for name, value in marker_attrs(item).items():
        number = _shard_number(name.removeprefix(MARKER_PREFIX))
        written = _written_at(str(value["S"]))
        if number is not None and number < current and written is not None and now - written > MAX_RECORD_AGE_S:
            found.append(name)
    return sorted(found)


def pruning(item: Mapping[str, Any] | None, shard_id: str) -> tuple[str, dict[str, str]]:
    """For an UpdateItem from `shard_id`: ` REMOVE #pruned0, ...` and its names, to append to the update expression
    (nothing when no marker can go)."""
    names = {f"#pruned{n}": name for n, name in enumerate(prunable(item, shard_id))}
    return (f" REMOVE {', '.join(names)}" if names else ""), names


def pruned(markers: Mapping[str, Any], shard_id: str) -> dict[str, Any]:
    """For a Put from `shard_id`: the marker attributes to carry over (marker_attrs), less those that can go."""
    gone = set(prunable(markers, shard_id))
    return {name: value for name, value in markers.items() if name not in gone}


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


def _sequence_part(value: str) -> str:
    """A stored marker's sequence marker: the part before `@`, or a marker of the older form rewritten."""
    if _WRITTEN_AT in value:
        return value.split(_WRITTEN_AT, 1)[0]
    return sequence_marker(value)


def _written_at(value: str) -> float | None:
    return float(value.split(_WRITTEN_AT, 1)[1]) if _WRITTEN_AT in value else None


def _shard_number(shard_id: str) -> int | None:
    found = _SHARD_NUMBER.fullmatch(shard_id)
    return int(found.group(1)) if found else None
