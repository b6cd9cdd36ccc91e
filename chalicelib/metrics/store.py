"""Data access for last-hour sums. Every DynamoDB expression for sums lives here.

Writes:
  0. once per client (process) and key-minute, a SUMDIRTY marker (idempotent Put) listing the key
     under its minute: the compactor's work list. It is written before any sub-total of
     that key-minute can exist, so compaction never misses a key;
  1. ONE TransactWriteItems: Put the event item (conditional on a fresh id) + `ADD` to one of
     SUM_WRITE_SHARDS sub-total items of the key's minute, chosen at random: total, n, and the sum of its
     second (s00..s59). Both or neither: a post that fails stored nothing, and a retry whose event already
     exists is cancelled whole (ConditionalCheckFailed: it was stored). The ClientRequestToken, derived from
     the event id, makes botocore's own retries of a lost response apply once. Two transactions on one
     sub-total item conflict (TransactionConflict): retried with backoff on another random shard, Busy after
     POST_ATTEMPTS.
Sub-totals of a key live in one partition, sorted by minute then shard, so one Query reads every shard of a
whole range of minutes.
Stream events (apply_delivered) count at their own time. Per key, minute and stream shard, per batch, one
conditional UpdateItem (no transaction) of the minute's stream item (SUMSUB# {minute}#ST, read first): ADD the sums
(total, n, s00..s59), SET the sketch of its values merged with the batch's (encoded), SET the stream shard's marker
of the last record applied, and ADD the run's id; on condition the item is as read (its version), the records are
after the marker, and it is not sealed. Before it, the batch's values packed (items of up to 2 s: the raw edge
seconds), each packed item naming its run: it counts only once the run's id is in the item, so packed items of a
write that never happened count nothing. A sealed stream item refuses the write: the same records then go to the state item's late
values (lt, ln, l00..l59, `lsketch`, with its own marker and runs) the same way. A batch that comes too late for
compaction to surely list its key (window.listed_in_time) seals the stream item itself and goes to the late values.
Compaction (chalicelib/metrics/compaction.py, every minute, for minutes that ended SEAL_LAG_MS ago): for each
key listed, it first seals the minute's stream item, then reads the sub-totals (the stream item's among them) and
writes their sum once as the bucket, in the state item; when every key of the minute is done, a SUMDONE marker says
so. A consumer write either lands before the seal (and is in the bucket) or is refused and goes to the late values:
exact however late. Direct posts are not fenced: they count at arrival and commit within the request's budget, well
inside SEAL_LAG_MS.
Reads (see window.plan and window.minute_reads): the state items of every minute read (buckets and late values,
one Query), sub-totals for whole minutes not compacted yet (no bucket: compaction behind, or values that came
after compaction listed the minute, whose state item exists without a bucket) and for the per-second sums of the
two edge minutes (one Query per run of such minutes, not per minute), raw values only for the two edge *seconds*.
A bucket equals the sum of the sub-totals it was made from, late values are in neither, so the answer does not
depend on how far compaction got.
Quantile sketches (chalicelib/pure/sketch.py) follow the same life in their own partition (SUMQ#{key}; reads of sums are
charged by the size of the items they read, so they must not read bins): every post also ADDs its value's bin
(`sketch.bin_key` -> count, no read) to the sketch items of the sub-total it adds to, in the same transaction; the
stream keeps its sketch in the stream item (and the late values' in the state item), encoded, a few hundred bytes;
compaction merges a minute's sub-total sketches and its stream item's, after the seal, into one bounded encoded
bucket and appends it to the key's prefix chain (P{minute}: the merged buckets of every chained minute so far), both
before the sum's bucket, which says whether the minute is in the chain. A quantile read (whole minutes only, see
`quantile_sketch`) takes the compacted minutes as the difference of two prefixes (bins are exact counts), the others
from their sub-total and stream sketches, plus the late values' sketches of the state items; when the prefixes cannot
be shown to hold exactly the compacted minutes (window.prefix_sketch), it merges each minute's bucket as before.
"""

from __future__ import annotations

from chalicelib.metrics.reads import SumReads
from chalicelib.metrics.writes import SumWrites


class SumStore(SumWrites, SumReads):
    """Data access for last-hour sums: its writes (chalicelib/metrics/writes.py) and reads
    (chalicelib/metrics/reads.py), over the items of chalicelib/metrics/items.py."""
