"""The table's key layout: every partition and sort key is built here.

One table holds everything (see chalicelib/storage/table.py). Partition keys start
with the kind of thing they hold, so features never collide:

  STREAM#{stream}#SHARD#{k}   STATE                 one of SHARDS Welford partial states
                              VALUE#{at}#{id}       audit entry (the values of one request)
  STREAM#{stream}             SESSION#{n:010d}      a closed session and its final figures
  STREAM#{stream}#G{g}#SHARD#{k}  VALUE#{at}#{id}   audit entry of the stream's incarnation g >= 1 (after g deletions; the
                                                    STATE items carry `gen`: g 0's entries are in the STATE partitions)
  STREAM#{stream}#G{g}        SESSION#{n:010d}      a closed session of incarnation g >= 1
  NAMES#{kind}                {name}                the registry of names that exist (kind stream, metric or average):
                                                    `updated_at` (epoch ms of a minute's start: written at most about
                                                    once a minute per name and writer); listed by a Query of the
                                                    partition with begins_with(prefix) (chalicelib/storage/registry.py)
  PURGE                       {kind}#{name}#{g:06d} a deletion's background purge of incarnation g's items: `requested_at`,
                                                    `removed` (items so far), `done_at` once finished (then TTL)
  IDEMPOTENCY                 {hash}                Powertools idempotency records (TTL)
  RECEIPT#{scope}             {n:04d}               "the keyed request's n-th transaction was applied" (TTL; write_once.py)
  AVERAGE#{key}               WINDOW                a moving-average window: size, cap, elements, version
  SURVEY#responses            RESPONSE#{id}         one survey response (ids sort by creation time); in each
                                                    column's `survey_{column}` GSI under {r} (r = crc32(id) %
                                                    SURVEY_SORT_SHARDS), sort key {1|0}{key} (answered or not)
  SURVEY#emails               EMAIL#{sha256}        an email's claim: the one response that holds it (sha256 of
                                                    the trimmed, lower-cased address), written with that response
  SURVEY#summary              SUMMARY#{k:02d}       one of SURVEY_SUMMARY_SHARDS shards of the survey's counters;
                                                    their sum is kept in step with every response
  HIT#{path}                  COUNT                 a path's counter: n (all time), day and day_base (that day's count is
                                                    n - day_base), per stream shard the last record applied
  HITDAY#{path}               {day}                 a path's count on a past UTC day (YYYY-MM-DD) (TTL)
  HITR#{scope}#{path}         RANK                  a path's ranking entry for scope ALL or a day: in the `ranking` GSI under
                                                    HITRANK#{scope}#{r} (r = crc32(path) % HIT_RANK_SHARDS) (a day's: TTL)
  HITTOTAL#{scope}            {writer}              one writer's part of total_hits / distinct_paths: d{k} for direct hits
                                                    (k < HIT_TOTAL_SHARDS), s{shard id} for a stream shard (a day's: TTL)
  HITSWEEP#{minute}#{p}       {entry}               paths whose ranking entries wait for the sweep: p{digest of day, path} (a
                                                    direct hit), b{shard}#{seq} (a stream batch's list) (TTL)
  HITSWEPT                    {minute:010d}         "the sweep ranked every path of this minute" (TTL)
  HITDELTA#{k}#{path}         COUNT                 overflow shard k of a throttled (hot) path: per day d{day} hits, folded
                                                    into HIT# by the sweep
  HITMARK#{k}#{path}          COUNT                 "shard k has unfolded hits" marker; in `ranking` under HITFOLD#{k}
  SUMEV#{key}#{minute}#{k}    {ms:013d}#{id}        one posted value (TTL); k < SUM_EVENT_SHARDS
  SUMEV#{key}#{minute}#{k}    {s_ms:013d}#{shard}#{seq}#{c}  a stream batch's values of up to 2 s (batch.PACK_SPAN_MS), packed
                                                    (TTL): s_ms is their first second's first ms, seq their first record's
                                                    sequence number, c their place in the batch; `run` names the write that
                                                    counts them (batch.run_id)
  SUMSUB#{key}                {minute:010d}#{k:02d} write-time sub-total k < SUM_WRITE_SHARDS of a minute (direct posts): total,
                                                    n, per-second s00..s59 (TTL); one Query reads a key's sub-totals for a
                                                    range of minutes
  SUMSUB#{key}                {minute:010d}#ST      the minute's stream item: what the events stream added before the minute was
                                                    sealed (total, n, s00..s59, `sketch` encoded), `sealed` (compaction's fence),
                                                    `v` (version), `runs` (committed runs), per stream shard the last record
                                                    applied (TTL)
  SUMDIRTY#{p}                {minute:010d}#{key}   "key has values in minute" (TTL); p = crc32(key) % SUM_DIRTY_PARTITIONS
  SUMB#{key}                  {minute:010d}         a key's minute: total, n, q (the bucket, written once), stream values that
                                                    came after its stream item was sealed (lt, ln, l00..l59, `lsketch` encoded,
                                                    `v`, `runs`, per stream shard the last record applied) (TTL)
  SUMGEN#{key}                GEN#{k:02d}           copy k < SUM_WRITE_SHARDS of a metric key's incarnation: `gen` (absent: 0),
                                                    every copy bumped by DELETE in one transaction; the items of
                                                    incarnation g >= 1 are those of the physical key "{key}~{g}" (every
                                                    SUM* key above takes the physical key; metrics/generations.py)
  SUMDONE                     {minute:010d}         "every key's bucket for this minute is written" (TTL)
  SUMPROGRESS                 {minute:010d}         `through`: the last key (in sort order) whose bucket a compaction run wrote,
                                                    every key before it done too (TTL)
  SUMQ#{key}                  S{minute:010d}#{k:02d}#{part:02d}  the bins (`sketch.bin_key` -> count) of a minute's values
                                                    written to sub-total k, those of bin group `part` (TTL)
  SUMQ#{key}                  B{minute:010d}        a key's minute sketch: `sketch`, the bucket (encoded, written once by
                                                    compaction) (TTL)
  SUMQ#{key}                  B{minute:010d}#L{part:02d}  the bins of late values, group `part`, as written before late values kept
                                                    their sketch in the state item (read while such items live) (TTL)
  SUMQ#{key}                  H                     the head of the key's prefix chain: `minute`, `chain`, `k`, `n`, `cum`
  SUMQ#{key}                  P{minute:010d}        a prefix: `cum`, the merged buckets of the chain's minutes up to this one
                                                    (encoded), `chain` (its first minute), `k` (its minutes), `n` (count) (TTL)
  SUMR#{key}                  H{hour:08d}, D{day:06d}  a key's rolled-up hour or day (metrics/rollup.py): total, n, mn, mx,
                                                    written once when the period is final (TTL)
  SUMRQ#{key}                 H{hour:08d}, D{day:06d}  its sketch: `sketch` (encoded), written once just before it; apart, so
                                                    that a series without quantiles does not pay for bins (TTL)
  SUMRDONE                    H{hour:08d}, D{day:06d}  "every key's bucket of this period is written" (TTL)
  SUMRPROGRESS                H{hour:08d}, D{day:06d}  `through`: the last key (in sort order) a rollup run did (TTL)
  SUMRKEYS#{p}                H{hour:08d}#{key}     "key has stream values in hour" (the consumer, before applying them), and
                              D{day:06d}#{key}      "key has an hour bucket in day" (the hour rollup, before writing it) (TTL)
  ORIGIN#{origin}             BLOCK#{b}             the events stream's registry of first copies, for the events at
                                                    positions b*120.. of one POST /events: per position (its offset
                                                    in base 36) the fingerprint of the copy applied, or "refused"
                                                    (chalicelib/ingest/dedupe.py) (TTL)

Each shard lives in its own partition so that a hot stream spreads its writes
over SHARDS partitions instead of one item's ~1,000 writes/s.
"""

from __future__ import annotations

import zlib

# --- running statistics -----------------------------------------------------
SHARDS = 16
STATE_SK = "STATE"
VALUE_PREFIX = "VALUE#"
SESSION_PREFIX = "SESSION#"


def stream_shard_pk(stream: str, shard: int) -> str:
    return f"STREAM#{stream}#SHARD#{shard}"


def stream_pk(stream: str) -> str:
    return f"STREAM#{stream}"


def value_sk(at_iso: str, request_id: str) -> str:
    # ISO timestamps of fixed width sort in time order; the id breaks ties.
    return f"{VALUE_PREFIX}{at_iso}#{request_id}"


def session_sk(session: int) -> str:
    return f"{SESSION_PREFIX}{session:010d}"


def stream_audit_pk(stream: str, gen: int, shard: int) -> str:
    """The partition of a shard's audit entries in the stream's incarnation `gen` (0: the STATE item's own)."""
    return stream_shard_pk(stream, shard) if gen == 0 else f"STREAM#{stream}#G{gen}#SHARD#{shard}"


def stream_sessions_pk(stream: str, gen: int) -> str:
    """The partition of the closed sessions of the stream's incarnation `gen`."""
    return stream_pk(stream) if gen == 0 else f"STREAM#{stream}#G{gen}"


# --- the registry of names, and deletions' purges ---------------------------
# Names never hold "#" (their patterns: chalicelib/edge/web.py KEY_NAME, streams/models.py StreamName), so a kind's
# partition sorts its names in byte order and a prefix is a begins_with on the sort key.
NAME_KINDS = ("stream", "metric", "average")
PURGE_PK = "PURGE"


def names_pk(kind: str) -> str:
    return f"NAMES#{kind}"


def purge_sk(kind: str, name: str, gen: int) -> str:
    return f"{kind}#{name}#{gen:06d}"


def purge_entry(sk: str) -> tuple[str, str, int]:
    kind, rest = sk.split("#", 1)
    name, gen = rest.rsplit("#", 1)
    return kind, name, int(gen)


# --- idempotency (Powertools) -----------------------------------------------
# Powertools' composite-key layout puts every record under one partition key;
# the sort key is a hash, so DynamoDB can split that partition for heat.
IDEMPOTENCY_PARTITION = "IDEMPOTENCY"


def receipt_pk(scope: str) -> str:
    return f"RECEIPT#{scope}"


# --- survey -----------------------------------------------------------------
# All responses in one partition, ordered by creation (response ids begin with their creation time). Every
# other order is a GSI per column, its partition key spread over SURVEY_SORT_SHARDS so that saves do not
# all write one index partition; a page merges the shards (chalicelib/survey/sorting.py).
# The summary is SURVEY_SUMMARY_SHARDS items of one partition: a save ADDs to one of them, a poll reads
# all of them with one Query (they fit in one 4 KB read unit). Any item of that partition is part of the
# sum, so the single SUMMARY item of earlier versions still counts.
SURVEY_RESPONSES_PK = "SURVEY#responses"
SURVEY_RESPONSE_PREFIX = "RESPONSE#"
SURVEY_SUMMARY_PK = "SURVEY#summary"
SURVEY_SUMMARY_SK = "SUMMARY"
SURVEY_SUMMARY_SHARDS = 8
SURVEY_SORT_SHARDS = 8


def survey_response_sk(response_id: str) -> str:
    return f"{SURVEY_RESPONSE_PREFIX}{response_id}"


SURVEY_EMAILS_PK = "SURVEY#emails"


def survey_email_sk(identity_hash: str) -> str:
    return f"EMAIL#{identity_hash}"


def survey_summary_sk(shard: int) -> str:
    return f"{SURVEY_SUMMARY_SK}#{shard:02d}"


def survey_sort_shard(response_id: str) -> int:
    """The index partition of a response: stable across processes (unlike hash())."""
    return zlib.crc32(response_id.encode()) % SURVEY_SORT_SHARDS


def survey_sort_pk(shard: int) -> str:
    """A partition of every column's sort index (each column has an index of its own, so the column is implied):
    one attribute for all of them, as an item's size is what a save costs."""
    return str(shard)


def survey_sort_segment(answered: bool) -> str:
    """The first character of an index sort key: a shard's unanswered entries ("0"), then its answered ones."""
    return "1" if answered else "0"


# --- moving averages --------------------------------------------------------
# One item per window: the elements live in one List attribute, so an append is
# a single atomic UpdateItem (list_append) on one item.
AVERAGE_WINDOW_SK = "WINDOW"


def average_pk(key: str) -> str:
    return f"AVERAGE#{key}"


# --- hit counters -----------------------------------------------------------
# One counter item per path holds both its all-time and its current day's count (chalicelib/hits/counts.py); its
# past days are history items. Ranking entries are items of their own, kept by the consumer and the sweep
# (chalicelib/hits/store.py), spread over HIT_RANK_SHARDS index partition keys per scope and merged on read. Service
# totals are one item per writer (direct shards, stream shards), read with one Query. A throttled (hot) counter
# overflows into HIT_DELTA_SHARDS delta items, each in its own partition.
HIT_RANK_SHARDS = 16
HIT_TOTAL_SHARDS = 8
HIT_DELTA_SHARDS = 8
HIT_SWEEP_PARTITIONS = 8
HIT_COUNT_SK = "COUNT"
HIT_RANK_SK = "RANK"
HIT_ALL = "ALL"  # the all-time scope; a day scope is its UTC date, YYYY-MM-DD
HIT_SWEPT_PK = "HITSWEPT"


def hit_pk(path: str) -> str:
    return f"HIT#{path}"


def hit_day_pk(path: str) -> str:
    return f"HITDAY#{path}"


def hit_rank_item_pk(scope: str, path: str) -> str:
    return f"HITR#{scope}#{path}"


def hit_rank_shard(path: str) -> int:
    """The ranking partition of a path: stable across processes (unlike hash())."""
    return zlib.crc32(path.encode("utf-8")) % HIT_RANK_SHARDS


def hit_rank_pk(scope: str, shard: int) -> str:
    return f"HITRANK#{scope}#{shard}"


def hit_totals_pk(scope: str) -> str:
    return f"HITTOTAL#{scope}"


def hit_direct_writer(shard: int) -> str:
    return f"d{shard:02d}"


def hit_stream_writer(shard_id: str) -> str:
    return f"s{shard_id}"


def hit_sweep_pk(slot: int, partition: int) -> str:
    """A partition of the paths listed for the sweep under a slot (chalicelib/hits/slots.py)."""
    return f"HITSWEEP#{slot}#{partition}"


def hit_swept_sk(slot: int) -> str:
    return f"{slot:010d}"


def hit_sweep_partition(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) % HIT_SWEEP_PARTITIONS


def minute_sk(minute: int) -> str:
    return f"{minute:010d}"


def hit_delta_pk(path: str, shard: int) -> str:
    return f"HITDELTA#{shard}#{path}"


def hit_mark_pk(path: str, shard: int) -> str:
    return f"HITMARK#{shard}#{path}"


def hit_fold_pk(shard: int) -> str:
    return f"HITFOLD#{shard}"


# --- last-hour sums ---------------------------------------------------------
# A key's minute lives in two partitions: its events and its sub-totals. Raising SUM_EVENT_SHARDS spreads one
# key's events over more partitions (past ~1,000 posts/s per key) at the price of that many Queries per edge second.
SUM_EVENT_SHARDS = 1
# Sub-total items per key and minute; a post's transaction ADDs to one at random. Concurrent transactions on one item
# conflict, so this is how many posters to one key can commit at once. They share the key's SUMSUB partition (as its
# events share theirs): one Query reads every shard of a whole range of minutes.
SUM_WRITE_SHARDS = 8
SUM_DIRTY_PARTITIONS = 8  # partitions listing (minute, key) pairs with values: one Query each per compaction run
SUM_DONE_PK = "SUMDONE"
SUM_PROGRESS_PK = "SUMPROGRESS"


def sum_event_pk(key: str, minute: int, shard: int) -> str:
    return f"SUMEV#{key}#{minute}#{shard}"


def sum_event_sk(at_ms: int, event_id: str) -> str:
    # Fixed-width epoch milliseconds sort in time order; the id breaks ties.
    return f"{at_ms:013d}#{event_id}"


def sum_packed_sk(second_ms: int, shard_id: str, sequence_number: str, chunk: int) -> str:
    """A packed item of a stream batch's values: the same records give the same key, so a replay rewrites the item;
    sorts with its first second's first ms (reads of a partial second start up to a packed item's span before)."""
    return f"{second_ms:013d}#{shard_id}#{sequence_number}#{chunk}"


def sum_event_sk_bound(at_ms: int) -> str:
    """Sorts before every event sk at `at_ms` and after every one before it (for BETWEEN ranges)."""
    return f"{at_ms:013d}"


def sum_sub_pk(key: str) -> str:
    return f"SUMSUB#{key}"


def sum_sub_sk(minute: int, shard: int) -> str:
    return f"{minute:010d}#{shard:02d}"


def sum_stream_sk(minute: int) -> str:
    """The minute's stream item: with the sub-totals (a Query of sub-totals reads it too), after every shard's."""
    return f"{minute:010d}#ST"


def sum_sub_sk_range(first: int, last: int) -> tuple[str, str]:
    """BETWEEN bounds holding every shard's sub-total of the minutes first..last."""
    return f"{first:010d}#", f"{last:010d}#~"


def sum_sub_minute(sk: str) -> int:
    return int(sk.split("#", 1)[0])


def sum_dirty_partition(key: str) -> int:
    """Stable across processes (unlike hash())."""
    return zlib.crc32(key.encode("utf-8")) % SUM_DIRTY_PARTITIONS


def sum_dirty_pk(partition: int) -> str:
    return f"SUMDIRTY#{partition}"


def sum_dirty_sk(minute: int, key: str) -> str:
    return f"{minute:010d}#{key}"


def sum_dirty_sk_range(first: int, last: int) -> tuple[str, str]:
    """BETWEEN bounds holding every key listed under the minutes first..last (keys sort after '#', before '~')."""
    return f"{first:010d}#", f"{last:010d}#~"


def sum_dirty_entry(sk: str) -> tuple[int, str]:
    minute, key = sk.split("#", 1)
    return int(minute), key


def sum_bucket_pk(key: str) -> str:
    return f"SUMB#{key}"


def sum_minute_sk(minute: int) -> str:
    return f"{minute:010d}"


# A metric key's incarnations (chalicelib/metrics/generations.py). "~" is in no key's pattern, so a physical key
# never collides with a key, and (after every character a key holds) sorts its incarnations after the key.
SUM_GEN_SK = "GEN"


def sum_gen_sk(shard: int) -> str:
    """Copy `shard` (< SUM_WRITE_SHARDS) of a key's incarnation: a post checks the copy of its sub-total's shard,
    so that concurrent posts conflict no more than their sub-totals do (an item in two transactions at once, even
    as a ConditionCheck, cancels one)."""
    return f"{SUM_GEN_SK}#{shard:02d}"


PHYSICAL_MARK = "~"


def sum_gen_pk(key: str) -> str:
    return f"SUMGEN#{key}"


def metric_physical(key: str, gen: int) -> str:
    """The key under which the items of incarnation `gen` of a metric key are stored."""
    return key if gen == 0 else f"{key}{PHYSICAL_MARK}{gen}"


def metric_logical(physical: str) -> tuple[str, int]:
    """The key and incarnation of a physical key."""
    key, mark, gen = physical.partition(PHYSICAL_MARK)
    return (key, int(gen)) if mark else (key, 0)


# Rollups of metric values (chalicelib/metrics/rollup.py): a period is H{hour} or D{day}, hours and days since the epoch.
SUM_ROLLUP_DONE_PK = "SUMRDONE"
SUM_ROLLUP_PROGRESS_PK = "SUMRPROGRESS"
SUM_ROLLUP_TIERS = {"hour": "H", "day": "D"}
_ROLLUP_DIGITS = {"H": 8, "D": 6}


def sum_rollup_pk(key: str) -> str:
    return f"SUMR#{key}"


def sum_rollup_sk(tier: str, period: int) -> str:
    letter = SUM_ROLLUP_TIERS[tier]
    return f"{letter}{period:0{_ROLLUP_DIGITS[letter]}d}"


def sum_rollup_sketch_pk(key: str) -> str:
    return f"SUMRQ#{key}"


def sum_rollup_period(sk: str) -> int:
    return int(sk[1:].split("#", 1)[0])


def sum_rollup_keys_pk(key: str) -> str:
    return f"SUMRKEYS#{sum_dirty_partition(key)}"


def sum_rollup_keys_partitions() -> list[str]:
    return [f"SUMRKEYS#{p}" for p in range(SUM_DIRTY_PARTITIONS)]


def sum_rollup_keys_sk(tier: str, period: int, key: str) -> str:
    return f"{sum_rollup_sk(tier, period)}#{key}"


def sum_rollup_keys_prefix(tier: str, period: int) -> str:
    """What every sort key listing a key under the period starts with (keys sort between it and it + "~")."""
    return f"{sum_rollup_sk(tier, period)}#"


def sum_rollup_keys_entry(sk: str) -> str:
    return sk.split("#", 1)[1]


# Quantile sketches of last-hour sums: in their own partition per key, so that reads of sums (charged by the size of
# the items a Query reads) never pay for bins. A minute's bins are split into groups of at most SUM_SKETCH_PART_BINS
# bins per item, so one update's expression always fits DynamoDB's 4 KB.
SUM_SKETCH_PART_BINS = 200


def sum_sketch_pk(key: str) -> str:
    return f"SUMQ#{key}"


def sum_sketch_part(bin_key: str) -> int:
    """The group of a bin (`sketch.bin_key` form): 0 for zero, then groups of SUM_SKETCH_PART_BINS bin indexes per
    sign (positive odd, negative even); integer values (|v| >= 1) have indexes >= 0."""
    if bin_key == "z":
        return 0
    group = int(bin_key[1:]) // SUM_SKETCH_PART_BINS
    return 1 + 2 * group + (0 if bin_key[0] == "p" else 1)


def sum_sketch_sub_sk(minute: int, shard: int, part: int) -> str:
    return f"S{minute:010d}#{shard:02d}#{part:02d}"


def sum_sketch_sub_sk_range(first: int, last: int) -> tuple[str, str]:
    """BETWEEN bounds holding every sub-total sketch item of the minutes first..last."""
    return f"S{first:010d}#", f"S{last:010d}#~"


def sum_sketch_bucket_sk(minute: int) -> str:
    return f"B{minute:010d}"


def sum_sketch_late_sk(minute: int, part: int) -> str:
    return f"B{minute:010d}#L{part:02d}"


def sum_sketch_bucket_sk_range(first: int, last: int) -> tuple[str, str]:
    """BETWEEN bounds holding the buckets and late bins of the minutes first..last."""
    return f"B{first:010d}", f"B{last:010d}#~"


SUM_SKETCH_HEAD_SK = "H"


def sum_sketch_prefix_sk(minute: int) -> str:
    return f"P{minute:010d}"


def sum_sketch_prefix_sk_range(first: int, last: int) -> tuple[str, str]:
    """BETWEEN bounds holding the prefixes of the minutes first..last."""
    return sum_sketch_prefix_sk(max(first, 0)), sum_sketch_prefix_sk(last)


def sum_sketch_minute(sk: str) -> int:
    """The minute of any SUMQ# sort key."""
    return int(sk[1:11])


# --- the events stream's registry of first copies ---------------------------
# One partition per origin (a random or hashed id per POST /events), so its writes spread evenly.


def origin_pk(origin: str) -> str:
    return f"ORIGIN#{origin}"


def origin_block_sk(block: int) -> str:
    return f"BLOCK#{block}"
