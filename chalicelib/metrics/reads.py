"""The sums' reads: a window's sum (window.plan: buckets, sub-totals of minutes not compacted, raw values of
the edge seconds) and its quantiles (prefix sketches of the compacted minutes, sub-total sketches of the others), in
at most two rounds of parallel requests. See chalicelib/metrics/store.py."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import islice
from typing import Any

from chalicelib.metrics import batch, window
from chalicelib.metrics.items import (
    HIGH,
    LOW,
    PREFIX_MINUTE,
    RUNS,
    SKETCH_BUCKET,
    STREAM_SKETCH,
    SumItems,
    bins_of,
    extremes_in,
    minute_state_of,
    prefix_of,
    raw_item,
    runs_of,
    second_attr,
    sketch_of,
    sub_total_of,
)
from chalicelib.metrics.window import MinuteParts, MinuteState, Totals
from chalicelib.process import runtime
from chalicelib.pure import sketch
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import item_key, query_items, read_int, sort_key_between, sort_key_of


def _committed_runs(sub_items: Iterable[dict[str, Any]], states: Mapping[int, MinuteState]) -> dict[int, set[bytes]]:
    """Per minute, the stream runs whose packed values count: those its stream item (read with the sub-totals) and
    its state item (late values) record."""
    committed: dict[int, set[bytes]] = {m: set(state.runs) for m, state in states.items()}
    for item in sub_items:
        committed.setdefault(keys.sum_sub_minute(sort_key_of(item)), set()).update(runs_of(item))
    return committed


def _late_sketches(states: Mapping[int, MinuteState], found: Iterable[Mapping[int, Sketch]]) -> dict[int, Sketch]:
    """Each minute's late values' sketch: the state item's, plus `found`, bins older versions wrote to their own
    items."""
    late = {m: state.late_sketch for m, state in states.items() if state.late_sketch.count}
    for bins in found:
        for m, more in bins.items():
            late[m] = late.get(m, sketch.EMPTY).merge(more)
    return late


def _with_sub_total_items(
    sketches: dict[int, Sketch], sub_items: Iterable[dict[str, Any]], wanted: set[int]
) -> tuple[dict[int, Sketch], dict[int, window.Extremes]]:
    """The minutes' sketches plus their stream items', and the extremes of the sub-total items (shards and stream)."""
    extremes: dict[int, window.Extremes] = {}
    for item in sub_items:
        minute = keys.sum_sub_minute(sort_key_of(item))
        if minute not in wanted:
            continue
        if STREAM_SKETCH in item:
            sketches[minute] = sketches.get(minute, sketch.EMPTY).merge(sketch_of(item, STREAM_SKETCH))
        kept = extremes_in(item, read_int(item.get("n")), LOW, HIGH)
        extremes[minute] = extremes.get(minute, window.NO_VALUES).merge(kept)
    return sketches, extremes


def _call(read: Callable[[], Any]) -> Any:
    return read()


class SumReads(SumItems):
    """Sums and quantiles of a window, and the reads compaction shares."""

    def sum(self, key: str, now_ms: int, window_ms: int) -> int:
        """The sum of the values posted at t with now - window < t <= now."""
        p = window.plan(now_ms, window_ms)
        partial_minutes = [part.minute for part in p.partial]
        seconds = {part.minute: part.seconds for part in p.partial}
        totals = self._minute_totals(key, p.whole, now_ms, also=seconds, raw_ranges=p.raw_ranges)
        return window.combine(
            p,
            {m: t.total for m, t in totals.items() if m in p.whole},
            {m: totals[m].seconds for m in partial_minutes if m in totals},
            totals.raw,
        )

    def quantile_sketch(self, key: str, now_ms: int, window_ms: int) -> Sketch:
        """The sketch of the values of every minute overlapping (now - window, now] (see quantile_values)."""
        return self.quantile_values(key, now_ms, window_ms)[0]

    def quantile_values(self, key: str, now_ms: int, window_ms: int) -> tuple[Sketch, window.Extremes]:
        """The sketch of the values of every minute overlapping (now - window, now] (whole minutes: see the README).

        The compacted minutes come from two prefixes of the key's chain (window.prefix_sketch), the others from
        their sub-total sketches (and their stream item's), plus the late values' sketches of the state items: reads
        that do not grow with the window's values. If the prefixes cannot be shown to hold exactly the compacted
        minutes, it merges each minute's bucket instead (window.window_sketch). Never raw values."""
        span = window.minutes_overlapping(now_ms, window_ms)
        reads = window.minute_reads(span, now_ms, {})
        first: list[Callable[[], Any]] = [
            partial(self.minute_states, key, span[0], span[-1]),
            partial(self.done_minutes, span[0], span[-1]),
            partial(self.prefix_at_or_before, key, span[-1]),
            partial(self.prefix_at_or_before, key, span[0] - 1),
            *(partial(self.sub_sketches_and_extremes, key, range(a, b + 1)) for (a, b), _ in reads.sub_total_runs),
        ]
        states, done, end, start, *fresh = runtime.fan_out(_call, first)
        subs: dict[int, Sketch] = {m: sk for found, _ in fresh for m, sk in found.items()}
        sub_extremes: dict[int, window.Extremes] = {m: e for _, found in fresh for m, e in found.items()}
        missing = reads.missing(states, done)
        # Late bins older versions wrote to their own items: the late values count more than the state's sketch.
        with_late_bins = [m for m, state in states.items() if state.late.count > state.late_sketch.count]
        # Second round, only if a minute is not compacted (as for sums) or has such late bins.
        missing_reads: list[Callable[[], Any]] = (
            [partial(self.sub_sketches_and_extremes, key, missing)] if missing else []
        )
        late_reads: list[Callable[[], Any]] = [
            partial(self.sketch_buckets_of, key, a, b) for a, b in window.runs(with_late_bins)
        ]
        results = runtime.fan_out(_call, [*missing_reads, *late_reads])
        for found, found_extremes in results[: len(missing_reads)]:
            subs.update(found)
            sub_extremes.update(found_extremes)
        extremes = window.window_extremes(span, states, sub_extremes)
        late = _late_sketches(states, [late_bins for _, late_bins in results[len(missing_reads) :]])
        merged = window.prefix_sketch(span, states, end, start, subs, late)
        if merged is not None:
            return merged, extremes
        buckets, late_bins = self.sketch_buckets_of(key, span[0], span[-1])
        return window.window_sketch(span, buckets, subs, _late_sketches(states, [late_bins])), extremes

    def prefix_at_or_before(self, key: str, minute: int) -> window.Prefix | None:
        """The latest prefix of the key's chain at or before `minute` (one Query of one item)."""
        lo, hi = keys.sum_sketch_prefix_sk_range(0, minute)
        items = self.client.query(
            TableName=self.table,
            **sort_key_between(keys.sum_sketch_pk(key), lo, hi),
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        ).get("Items", [])
        return prefix_of(items[0], keys.sum_sketch_minute(sort_key_of(items[0]))) if items else None

    def prefix_head(self, key: str) -> window.Prefix | None:
        """The head of the key's prefix chain: its last prefix (strongly consistent)."""
        item = self.client.get_item(
            TableName=self.table,
            Key=item_key(keys.sum_sketch_pk(key), keys.SUM_SKETCH_HEAD_SK),
            ConsistentRead=True,
        ).get("Item")
        return prefix_of(item, read_int(item[PREFIX_MINUTE])) if item else None

    def sketch_buckets_of(self, key: str, first: int, last: int) -> tuple[dict[int, Sketch], dict[int, Sketch]]:
        """The minutes' sketch buckets (where compaction wrote them) and late bins in their own items, first..last
        (one Query)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_sketch_pk(key), *keys.sum_sketch_bucket_sk_range(first, last)),
                "ConsistentRead": True,
            },
        )
        buckets: dict[int, Sketch] = {}
        late: dict[int, dict[str, int]] = {}
        for item in items:
            minute = keys.sum_sketch_minute(sort_key_of(item))
            if SKETCH_BUCKET in item:
                buckets[minute] = Sketch.decode(item[SKETCH_BUCKET]["B"])
            into = late.setdefault(minute, {})
            for name, count in bins_of(item).items():
                into[name] = into.get(name, 0) + count
        return buckets, {m: Sketch.from_bins(b) for m, b in late.items() if b}

    def sub_sketches(self, key: str, minutes: Iterable[int]) -> dict[int, Sketch]:
        """The sub-total sketches of a key's minutes (see sub_sketches_and_extremes)."""
        return self.sub_sketches_and_extremes(key, minutes)[0]

    def sub_sketches_and_extremes(
        self, key: str, minutes: Iterable[int]
    ) -> tuple[dict[int, Sketch], dict[int, window.Extremes]]:
        """The sub-total sketches of a key's minutes, merged over shards, groups of bins and the minute's stream item,
        and their extremes (from the sub-total items, read for the stream item's sketch anyway): two strongly
        consistent Queries per run of minutes (at most window.MAX_RUNS); minutes read but not asked for are
        dropped."""
        wanted = set(minutes)

        def run_items(run: tuple[int, int]) -> list[dict[str, Any]]:
            return query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(keys.sum_sketch_pk(key), *keys.sum_sketch_sub_sk_range(*run)),
                    "ConsistentRead": True,
                },
            )

        def stream_items(run: tuple[int, int]) -> list[dict[str, Any]]:
            return self._sub_total_items(key, run, {"#q": STREAM_SKETCH, "#n": "n", "#lo": LOW, "#hi": HIGH})

        runs = window.runs(wanted)
        merged: dict[int, dict[str, int]] = {}
        found = runtime.fan_out(
            _call, [*(partial(run_items, r) for r in runs), *(partial(stream_items, r) for r in runs)]
        )
        for items in found[: len(runs)]:
            for item in items:
                minute = keys.sum_sketch_minute(sort_key_of(item))
                if minute in wanted:
                    into = merged.setdefault(minute, {})
                    for name, count in bins_of(item).items():
                        into[name] = into.get(name, 0) + count
        sketches = {m: Sketch.from_bins(b) for m, b in merged.items()}
        sub_items = [item for items in found[len(runs) :] for item in items]
        return _with_sub_total_items(sketches, sub_items, wanted)

    def minutes(self, key: str, now_ms: int, window_ms: int) -> list[tuple[int, int]]:
        """(minute, that minute's total) for every minute overlapping the window; the last is the minute so far."""
        span = window.minutes_overlapping(now_ms, window_ms)
        totals = self._minute_totals(key, span, now_ms)
        return [(m, totals[m].total if m in totals else 0) for m in span]

    def _minute_totals(
        self,
        key: str,
        whole: range,
        now_ms: int,
        also: Mapping[int, Sequence[int]] | None = None,
        raw_ranges: Sequence[tuple[int, int]] = (),
    ) -> Totals:
        """Totals of the minutes in `whole` (bucket, or sub-totals if not compacted), sub-totals of the minutes
        `also` maps to the seconds wanted of them, and the raw sum over `raw_ranges`, in at most two rounds of
        parallel requests (window.minute_reads decides which)."""
        also = also or {}
        reads = window.minute_reads(whole, now_ms, also)
        # Round 1, in parallel: the minutes' state items (buckets, late values) and the whole minutes' done
        # markers, the sub-totals of the minutes that cannot be compacted yet (and of the edge minutes), the raw
        # edge seconds.
        marker_reads: list[Callable[[], Any]] = []
        if reads.state_span is not None:
            marker_reads.append(partial(self.minute_states, key, *reads.state_span))
        if len(whole):
            marker_reads.append(partial(self.done_minutes, whole[0], whole[-1]))
        run_reads: list[Callable[[], Any]] = [
            partial(self._sub_total_run, key, run, seconds) for run, seconds in reads.sub_total_runs
        ]
        raw_reads: list[Callable[[], Any]] = [partial(self._raw, key, lo, hi) for lo, hi in raw_ranges]
        results = iter(runtime.fan_out(_call, [*marker_reads, *run_reads, *raw_reads]))
        states: dict[int, MinuteState] = next(results) if reads.state_span is not None else {}
        done: set[int] = next(results) if len(whole) else set()
        sub_items = [item for items in islice(results, len(run_reads)) for item in items]
        parts = window.merge_sub_totals((sub_total_of(item) for item in sub_items), set(reads.fresh))
        committed = _committed_runs(sub_items, states)
        raw = sum(
            batch.raw_sum(found, committed.get(window.minute_of(lo), set()), lo, hi)
            for (lo, hi), found in zip(raw_ranges, results, strict=True)
        )
        # Round 2 (only if a minute is not compacted: compaction behind or crashed, or values came after it).
        missing = reads.missing(states, done)
        if missing:
            parts.update(self.sub_totals(key, missing))
        return window.minute_totals(whole, also, states, parts, raw)

    def minute_states(self, key: str, first: int, last: int) -> dict[int, MinuteState]:
        """The key's minute state items first..last: bucket (if compacted) and late values (one Query)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_bucket_pk(key), keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)): minute_state_of(item) for item in items}

    def done_minutes(self, first: int, last: int) -> set[int]:
        """The minutes first..last that compaction finished (their SUMDONE markers)."""
        items = query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.SUM_DONE_PK, keys.sum_minute_sk(first), keys.sum_minute_sk(last)),
                "ProjectionExpression": table.SORT_KEY,
                "ConsistentRead": True,
            },
        )
        return {int(sort_key_of(item)) for item in items}

    def sub_totals(self, key: str, minutes: Iterable[int]) -> dict[int, MinuteParts]:
        """Sub-totals of a key's minutes, merged over shards: one strongly consistent Query per run of minutes
        (at most window.MAX_RUNS), whatever their number; minutes read but not asked for are dropped."""
        wanted = set(minutes)
        pages = runtime.fan_out(lambda run: self._sub_total_run(key, run, ()), window.runs(wanted))
        return window.merge_sub_totals((sub_total_of(item) for items in pages for item in items), wanted)

    def _sub_total_run(self, key: str, run: tuple[int, int], seconds: Iterable[int]) -> list[dict[str, Any]]:
        """Every sub-total item of the minutes run[0]..run[1] (one Query) with total, n, the stream item's committed
        runs and only the per-second sums of `seconds` (less to send and parse; the read capacity is the same)."""
        seconds_read = {f"#{second_attr(s)}": second_attr(s) for s in seconds}
        return self._sub_total_items(
            key, run, {"#total": "total", "#n": "n", "#runs": RUNS, "#lo": LOW, "#hi": HIGH, **seconds_read}
        )

    def _sub_total_items(self, key: str, run: tuple[int, int], names: Mapping[str, str]) -> list[dict[str, Any]]:
        """The sub-total items of the minutes run[0]..run[1], every shard's and the stream item, with their sort key
        and the attributes `names` maps (one strongly consistent Query)."""
        lo, hi = keys.sum_sub_sk_range(*run)
        projected = {"#sk": table.SORT_KEY, **names}
        return query_items(
            self.client,
            {
                "TableName": self.table,
                **sort_key_between(keys.sum_sub_pk(key), lo, hi),
                "ProjectionExpression": ", ".join(projected),
                "ExpressionAttributeNames": projected,
                "ConsistentRead": True,
            },
        )

    def _raw(self, key: str, lo: int, hi: int) -> list[batch.RawItem]:
        """The items holding raw values with lo <= t <= hi (inclusive ms, inside one second), over every shard:
        posted events, and packed items of stream events (which sort with their first second's first ms, and may
        start up to batch.PACK_SPAN_MS - 1 s earlier, within the minute)."""
        minute = window.minute_of(lo)
        second_ms = max(lo - lo % window.SECOND_MS - batch.PACK_SPAN_MS + window.SECOND_MS, minute * window.MINUTE_MS)

        def one_shard(shard: int) -> list[dict[str, Any]]:
            return query_items(
                self.client,
                {
                    "TableName": self.table,
                    **sort_key_between(
                        keys.sum_event_pk(key, minute, shard),
                        keys.sum_event_sk_bound(second_ms),
                        keys.sum_event_sk_bound(hi + 1),
                    ),
                    "ConsistentRead": True,
                },
            )

        return [raw_item(item) for items in runtime.fan_out(one_shard, range(keys.SUM_EVENT_SHARDS)) for item in items]
