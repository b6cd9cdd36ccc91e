"""Each event applied once whatever copies of it the stream holds: event ids and the first-copy rule. Pure: no AWS.

Kinesis is at-least-once for producers: a PutRecords whose answer was lost is sent again (by the producer, or by a
client retrying its request), and Kinesis stores every copy under its own sequence number, possibly on another
shard after a reshard, where the per-shard markers of chalicelib/ingest/applied.py cannot see it. So every event
carries an id (records.EventId): its request's `origin` and its position in the request. The origin is random per
POST /events, or, for a request with an Idempotency-Key, derived from the key as bound to its credential and from
the body, so a keyed retry (after a 503) sends the same ids.

The consumer keeps, per origin, a registry of the first copy seen of each event (chalicelib/ingest/store.py): per
position, the fingerprint of that copy's (shard, sequence number), written if the position has none, before
anything is applied. A copy is applied iff the stored fingerprint is its own. That is decided once per position
and never changes, so a redelivered, bisected or retried batch decides each copy the same way, a copy in a child
shard loses to its parent's, and the per-item markers go on skipping redelivered records of the copy that won.
The registry is keyed by origin, not by record: a batch (or a record) holding events of many requests is decided
event by event.

The producer uses the same registry to make a refusal final: when a record's answer was lost, it writes REFUSED
for the record's positions that have no copy yet, and no copy of those events is ever applied; a position already
claimed by a copy is on the stream, and its event is answered as accepted.

Registry items are blocks of BLOCK positions, each under 1 KB (one write unit) however full: per batch, one write
per origin and block that the batch holds events of.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence

from chalicelib.ingest.records import Delivered, EventId

ORIGIN_BYTES = 12  # 16 characters of base64url; random ones collide with odds of 2^-96
FINGERPRINT_BYTES = 6  # two copies of one event are mistaken for one another with odds of 2^-48
# A fingerprint is never one byte long, so this can never be a copy's.
REFUSED = b"\x00"
# Positions per registry item: 120 one- or two-character names and 6-byte fingerprints, with the item's key and
# expiry, are at most 973 bytes (tests/test_ingest_dedupe.py), so every write of one is one write unit.
BLOCK = 120
# How long a registry item is kept: past the stream's retention (24 h) plus an idempotency record's (24 h), with
# margin. Nothing reads its expiry: an id never names another event, so an expired item that lingers decides the
# same way it did.
TTL_S = 7 * 24 * 3600

Block = tuple[str, int]  # origin, block number
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def random_origin() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(ORIGIN_BYTES)).decode()


def keyed_origin(identity: str) -> str:
    """The origin of a keyed request: the same for every retry of it (same key, credential, route and body)."""
    digest = hashlib.sha256(b"events-origin\0" + identity.encode()).digest()
    return base64.urlsafe_b64encode(digest[:ORIGIN_BYTES]).decode()


def fingerprint(shard_id: str, sequence_number: str) -> bytes:
    return hashlib.sha256(f"{shard_id}\0{int(sequence_number)}".encode()).digest()[:FINGERPRINT_BYTES]


def block_of(event_id: EventId) -> Block:
    return event_id.origin, event_id.position // BLOCK


def slot(position: int) -> str:
    """The attribute of a position in its block's item: its offset in the block, in base 36 (one or two
    characters, never the name of a key attribute)."""
    offset = position % BLOCK
    return _DIGITS[offset] if offset < 36 else _DIGITS[offset // 36] + _DIGITS[offset % 36]


def claims(delivered: Iterable[Delivered]) -> dict[Block, dict[str, bytes]]:
    """What a batch writes to the registry: per block, each position's fingerprint of the first copy of its event
    in the batch (stream order). Events without an id claim nothing."""
    wanted: dict[Block, dict[str, bytes]] = {}
    for d in delivered:
        if d.id is not None:
            wanted.setdefault(block_of(d.id), {}).setdefault(slot(d.id.position), _fingerprint(d))
    return wanted


def first_copies(delivered: Sequence[Delivered], stored: Mapping[Block, Mapping[str, bytes]]) -> list[Delivered]:
    """The events to apply: those without an id, and the copies whose fingerprint the registry holds for them."""
    return [d for d in delivered if d.id is None or _stored(stored, d.id) == _fingerprint(d)]


def refusals(ids: Iterable[EventId]) -> dict[Block, dict[str, bytes]]:
    """What the producer writes to make these events refused for good (where no copy claimed them first)."""
    wanted: dict[Block, dict[str, bytes]] = {}
    for event_id in ids:
        wanted.setdefault(block_of(event_id), {})[slot(event_id.position)] = REFUSED
    return wanted


def refused(ids: Iterable[EventId], stored: Mapping[Block, Mapping[str, bytes]]) -> list[EventId]:
    """The ids whose events are refused for good: REFUSED is what the registry holds for them."""
    return [i for i in ids if _stored(stored, i) == REFUSED]


def _stored(stored: Mapping[Block, Mapping[str, bytes]], event_id: EventId) -> bytes | None:
    return stored.get(block_of(event_id), {}).get(slot(event_id.position))


def _fingerprint(d: Delivered) -> bytes:
    return fingerprint(d.shard_id, d.sequence_number)
