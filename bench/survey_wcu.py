"""What the survey's per-column sort indexes cost a save, and what other key layouts would cost: a measurement.

Each variant is its own table on DynamoDB Local with the response item built as the store builds it
(SurveyStore._item), its index key attributes laid out the variant's way. A save is replayed as the store does it
(one TransactWriteItems: the response conditioned on its version + one summary shard ADD) and as alternatives
(UpdateItem SET of the changed attributes; plain PutItem outside a transaction). Write units are what DynamoDB
Local reports with ReturnConsumedCapacity INDEXES. Item sizes follow DynamoDB's rules (names + values). The last
section (async_report) measures keeping the sort keys on a separate item written by a stream consumer.

    python -m bench.survey_wcu          # everything
    python -m bench.survey_wcu async    # only the stream consumer's section
"""

from __future__ import annotations

import contextlib
import os
import random
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from unittest.mock import patch

from bench.common import Meter, fresh_table, local_gateway, set_env, table_md, use_endpoint
from bench.survey import (
    ADMIN_TOKEN,
    INDEX_ATTRIBUTES,
    SESSION,
    SaveProbe,
    Written,
    _kb,
    _responses,
    _session,
    aws_units,
    index_moves,
    item_size,
)
from chalicelib.storage import keys
from chalicelib.storage.dynamo import num, string
from chalicelib.storage.table import (
    ATTRIBUTE_DEFINITIONS,
    KEY_SCHEMA,
    SURVEY_SORT_CODES,
    SURVEY_SORT_COLUMNS,
    survey_sort_attributes,
)
from chalicelib.survey import sorting
from chalicelib.survey.store import StoredResponse, SurveyStore

SAVES = 5
SHARED_PK = "sP"
FORMER_PK = "{code}P"  # before: each index had its own partition key attribute, valued {a|u}{shard}


def packed_id(response_id: str) -> str:
    return sorting.packed_id(response_id)


def _body(column: str, value: Any, minutes: bool) -> str:
    if column == "updated_at" and not minutes:
        return f"{int(value):015d}"  # before: to the millisecond
    return sorting.body(column, value)


# --- layouts -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    name: str
    shared_pk: bool = False  # one shard attribute for every index; answered/unanswered moves into the sort key
    short_id: bool = False  # the tiebreak is the packed id (19 characters), not the 28-character id
    columns: tuple[str, ...] = SURVEY_SORT_COLUMNS
    minutes: bool = False  # updated_at's key counts minutes (as now), not milliseconds

    def attributes(self, column: str) -> tuple[str, str]:
        _, sk = survey_sort_attributes(column)
        return (SHARED_PK if self.shared_pk else FORMER_PK.format(code=SURVEY_SORT_CODES[column])), sk

    def sort_keys(self, response: StoredResponse) -> dict[str, Any]:
        state = {"completed": response.completed, "step": response.step, "updated_at": response.updated_at}
        shard = keys.survey_sort_shard(response.id)
        tiebreak = packed_id(response.id) if self.short_id else response.id
        out: dict[str, Any] = {}
        for column in self.columns:
            value = sorting.column_value(column, response.answers, state)
            pk_name, sk_name = self.attributes(column)
            key = tiebreak if value is None else _body(column, value, self.minutes) + sorting.SEPARATOR + tiebreak
            if self.shared_pk:
                out[pk_name] = string(str(shard))
                segment = "1" if value is not None else "0"  # answered after unanswered: a Query per segment
                out[sk_name] = string(segment + key)
            else:
                out[pk_name] = string(f"{'a' if value is not None else 'u'}{shard}")
                out[sk_name] = string(key)
        return out

    def item(self, store: SurveyStore, response: StoredResponse) -> dict[str, Any]:
        index_names = {n for c in SURVEY_SORT_COLUMNS for n in (*survey_sort_attributes(c), *self.attributes(c))}
        base = {k: v for k, v in store._item(response).items() if k not in index_names}
        return {**base, **self.sort_keys(response)}

    def create_table(self, client: Any) -> str:
        table = f"wcu-{uuid.uuid4().hex[:8]}"
        names = sorted({n for c in self.columns for n in self.attributes(c)})
        definitions = [d for d in ATTRIBUTE_DEFINITIONS if d["AttributeName"] in ("pk", "sk")]
        definitions += [{"AttributeName": n, "AttributeType": "S"} for n in names]
        indexes = [
            {
                "IndexName": f"survey_{column}",
                "KeySchema": [
                    {"AttributeName": self.attributes(column)[0], "KeyType": "HASH"},
                    {"AttributeName": self.attributes(column)[1], "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
            for column in self.columns
        ]
        client.create_table(
            TableName=table,
            AttributeDefinitions=definitions,
            KeySchema=KEY_SCHEMA,
            BillingMode="PAY_PER_REQUEST",
            **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
        )
        return table


LAYOUTS = (
    Layout("former (22 attributes, 28-char id)"),
    Layout("shared shard pk (12 attributes)", shared_pk=True),
    Layout("packed id (19 chars)", short_id=True),
    Layout("shared pk + packed id", shared_pk=True, short_id=True),
    Layout("as now: shared pk + packed id, updated_at by the minute", shared_pk=True, short_id=True, minutes=True),
    Layout(
        "shared pk + packed id, no updated_at index",
        shared_pk=True,
        short_id=True,
        columns=tuple(c for c in SURVEY_SORT_COLUMNS if c != "updated_at"),
    ),
    Layout("no indexes (before)", columns=()),
)


# --- saves ----------------------------------------------------------------------------------------------------------


def _summary_update(table: str) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": table,
            "Key": {"pk": string(keys.SURVEY_SUMMARY_PK), "sk": string(keys.survey_summary_sk(0))},
            "UpdateExpression": "ADD #v :one SET #u = :now",
            "ExpressionAttributeNames": {"#v": "version", "#u": "updated_at"},
            "ExpressionAttributeValues": {":one": num(1), ":now": num(1)},
        }
    }


def _put(table: str, item: dict[str, Any], version: int) -> dict[str, Any]:
    return {
        "TableName": table,
        "Item": item,
        "ConditionExpression": "version = :v",
        "ExpressionAttributeValues": {":v": num(version)},
    }


def _set(table: str, old: dict[str, Any], new: dict[str, Any], version: int) -> dict[str, Any]:
    """UpdateItem that SETs only the attributes whose value changed (and REMOVEs those that went away)."""
    changed = [k for k, v in new.items() if old.get(k) != v]
    removed = [k for k in old if k not in new]
    names = {f"#a{i}": k for i, k in enumerate(changed + removed)}
    values = {f":a{i}": new[k] for i, k in enumerate(changed)}
    expression = "SET " + ", ".join(f"#a{i} = :a{i}" for i in range(len(changed)))
    if removed:
        expression += " REMOVE " + ", ".join(f"#a{len(changed) + i}" for i in range(len(removed)))
    return {
        "TableName": table,
        "Key": {"pk": new["pk"], "sk": new["sk"]},
        "UpdateExpression": expression,
        "ConditionExpression": "version = :v",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": {**values, ":v": num(version)},
    }


Save = Callable[[Any, str, dict[str, Any], dict[str, Any], int], None]


def transact_put(client: Any, table: str, old: dict[str, Any], new: dict[str, Any], version: int) -> None:
    client.transact_write_items(TransactItems=[{"Put": _put(table, new, version)}, _summary_update(table)])


def transact_set(client: Any, table: str, old: dict[str, Any], new: dict[str, Any], version: int) -> None:
    client.transact_write_items(TransactItems=[{"Update": _set(table, old, new, version)}, _summary_update(table)])


def plain_put(client: Any, table: str, old: dict[str, Any], new: dict[str, Any], version: int) -> None:
    client.put_item(**_put(table, new, version))


def plain_set(client: Any, table: str, old: dict[str, Any], new: dict[str, Any], version: int) -> None:
    client.update_item(**_set(table, old, new, version))


ALWAYS = ("transaction Put + summary (as now)", "transaction Update SET + summary")
SAVE_KINDS: dict[str, Save] = {
    "transaction Put + summary (as now)": transact_put,
    "transaction Update SET + summary": transact_set,
    "PutItem alone": plain_put,
    "UpdateItem SET alone": plain_set,
}


def _change(response: StoredResponse, case: str, i: int) -> StoredResponse:
    answers = dict(response.answers)
    if case == "short":  # the name's sort key changes
        answers["name"] = f"{answers['name'][:20]} {i}"
    else:  # past the 32 characters a text's sort key keeps: only updated_at's index moves
        answers["about"] = answers["about"][:60].ljust(60, ".") + f" {i}"
    return replace(response, answers=answers, version=response.version + 1, updated_at=response.updated_at + 1000)


def measure(client: Any, layout: Layout, response: StoredResponse, save: Save) -> dict[str, tuple[float, float]]:
    """Median (write units, index units) of a save in each case, on a fresh table."""
    table = layout.create_table(client)
    store = SurveyStore(client, table)
    try:
        client.put_item(TableName=table, Item=layout.item(store, response))
        client.put_item(TableName=table, Item=_summary_update(table)["Update"]["Key"])
        out = {}
        current = response
        with Meter(client, capacity="INDEXES") as meter:
            for case in ("short", "long"):
                samples = []
                for i in range(SAVES):
                    new = _change(current, case, i)
                    old_item, new_item = layout.item(store, current), layout.item(store, new)
                    meter.reset()
                    save(client, table, old_item, new_item, current.version)
                    samples.append((meter.write_units, meter.index_units))
                    current = new
                out[case] = (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
        return out
    finally:
        client.delete_table(TableName=table)


def local_accounting(client: Any) -> list[list[Any]]:
    """How DynamoDB Local bills a Put of an n-byte item (by these size rules): alone, in a transaction, with the
    summary update or a second Put in the same transaction, and over an older 2,500-byte item."""
    table = Layout("plain", columns=()).create_table(client)
    summary = _summary_update(table)
    client.put_item(TableName=table, Item=summary["Update"]["Key"])

    def item(n: int, sk: str = "a") -> dict[str, Any]:
        return {"pk": string("p"), "sk": string(sk), "x": string("y" * (n - 4))}  # n bytes in all

    def units(response: dict[str, Any]) -> float:
        consumed = response["ConsumedCapacity"]
        return float((consumed[0] if isinstance(consumed, list) else consumed)["CapacityUnits"])

    def tx(*writes: dict[str, Any]) -> float:
        return units(client.transact_write_items(TransactItems=list(writes), ReturnConsumedCapacity="TOTAL"))

    rows: list[list[Any]] = []
    try:
        for n in (1000, 1024, 2100):
            client.delete_item(TableName=table, Key={"pk": string("p"), "sk": string("a")})
            put = {"Put": {"TableName": table, "Item": item(n)}}
            alone = units(client.put_item(TableName=table, Item=item(n), ReturnConsumedCapacity="TOTAL"))
            in_tx, with_summary = tx(put), tx(put, summary)
            two_puts = tx(put, {"Put": {"TableName": table, "Item": item(n, "b")}})
            client.put_item(TableName=table, Item=item(2500))
            over_big = units(client.put_item(TableName=table, Item=item(n), ReturnConsumedCapacity="TOTAL"))
            rows.append([n, alone, in_tx, with_summary, two_puts, over_big])
        rows.append(["summary alone", "", tx(summary), "", "", ""])
    finally:
        client.delete_table(TableName=table)
    return rows


def typical_responses(store: SurveyStore) -> list[StoredResponse]:
    rng = random.Random(5)
    out = []
    for r in _responses(2000, rng):
        answers = {**r.answers, "about": r.answers["about"].ljust(60, ".")}  # long enough for the "long" case
        out.append(replace(r, answers=answers))
    return out


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    store = SurveyStore(client, "unused")
    population = typical_responses(store)
    base = Layout("base", columns=())

    size_rows = []
    for layout in LAYOUTS:
        sizes = sorted(item_size(layout.item(store, r)) for r in population)
        index_bytes = [item_size(layout.item(store, r)) - item_size(base.item(store, r)) for r in population]
        over = sum(s > 1024 for s in sizes) / len(sizes)
        size_rows.append(
            [
                layout.name,
                f"{statistics.median(index_bytes):.0f}",
                f"{statistics.median(sizes):.0f}",
                f"{sizes[int(0.9 * len(sizes))]}",
                f"{100 * over:.0f}%",
            ]
        )
    base_sizes = [item_size(base.item(store, r)) for r in population]
    median_response = sorted(population, key=lambda r: item_size(base.item(store, r)))[len(population) // 2]

    save_rows = []
    for layout in LAYOUTS:
        for label, save in SAVE_KINDS.items():
            if label not in ALWAYS and layout not in (LAYOUTS[0], LAYOUTS[4], LAYOUTS[5], LAYOUTS[6]):
                continue  # every kind of save for the current layout, the leanest and none; the Put for the rest
            result = measure(client, layout, median_response, save)
            size = item_size(layout.item(store, median_response))
            save_rows.append(
                [
                    layout.name,
                    label,
                    size,
                    f"{result['short'][0]:.1f} ({result['short'][1]:.1f})",
                    f"{result['long'][0]:.1f} ({result['long'][1]:.1f})",
                ]
            )
    accounting = local_accounting(client)
    return "\n".join(
        [
            "DynamoDB Local's accounting (write units):",
            "",
            table_md(
                ["item B", "PutItem", "TX [Put]", "TX [Put, summary]", "TX [Put, Put]", "PutItem over a 2,500 B item"],
                accounting,
            ),
            "",
            f"Item size of {len(population):,} generated responses (bench/survey.py's mix; without index keys: median "
            f"{statistics.median(base_sizes):.0f} B, max {max(base_sizes)} B):",
            "",
            table_md(["layout", "index-key bytes (median)", "item median B", "item p90 B", "items > 1 KB"], size_rows),
            "",
            f"Write units of one save of the median response ({SAVES} saves each, medians; in brackets: of which "
            "index writes). short: the name's sort key changes; long: only updated_at's index moves.",
            "",
            table_md(["layout", "save", "item B", "short: WU (index)", "long: WU (index)"], save_rows),
            "",
            async_report(client),
        ]
    )


# --- sort keys kept by a stream consumer ----------------------------------------------------------------------------
# The save writes the response without index keys (its transaction: the response + one summary shard, as now); the
# keys live on a small sort item per response (pk SURVEY#sort, sk the response's id) that the 11 GSIs index instead,
# written by a consumer of the table's stream (DynamoDB Streams -> Lambda, batching window W s): once a window per
# response, the latest image's keys, if any changed, conditioned on the version. Stream reads by Lambda are free, so
# the consumer costs its writes only.

SORT_ITEM_PK = "SURVEY#sort"
WINDOWS = (0, 5, 10, 30, 60)
LOCAL_BEFORE = 2.0  # DynamoDB Local's units per save before the indexes (bench/survey.py's BEFORE)


def sort_item(store: SurveyStore, response_item: dict[str, Any]) -> dict[str, Any]:
    """The sort item of a response as stored: its id, version and its key in each column's index."""
    response = store._from_item(response_item)
    keys_ = SurveyStore._sort_keys(response)
    return {"pk": string(SORT_ITEM_PK), "sk": string(response.id), "version": num(response.version), **keys_}


def windows(times: list[float], seconds: float) -> list[list[int]]:
    """The saves each consumer invocation gets (by index): a window opens at the first save not yet consumed and
    closes `seconds` later; with 0, every save alone."""
    out: list[list[int]] = []
    for i, at in enumerate(times):
        if out and at < times[out[-1][0]] + seconds:
            out[-1].append(i)
        else:
            out.append([i])
    return out


@dataclass(frozen=True)
class Consumed:
    """What the consumer wrote over the session, in total."""

    writes: int
    keys_changed: int  # index entries whose key changed (or appeared)
    local_units: float
    local_index_units: float
    aws_units: float
    aws_index_units: float
    lags: list[float]  # per save: seconds from the save to its window's end (the consumer's own latency excluded)


def consume(
    client: Any, store: SurveyStore, images: list[dict[str, Any]], times: list[float], seconds: float
) -> Consumed:
    """Replay the consumer on a fresh table built as chalicelib/storage/table.py builds it (the same 11 keys-only GSIs): at
    each window's end, a conditioned PutItem of the sort item of the response's latest image, if a key changed."""
    table = fresh_table(client, "sort-items")
    last: dict[str, Any] | None = None
    writes = changed = 0
    local = local_index = aws = aws_index = 0.0
    lags: list[float] = []
    try:
        with Meter(client, capacity="INDEXES") as meter:
            for window in windows(times, seconds):
                closes = times[window[0]] + seconds
                lags += [closes - times[i] for i in window]
                new = sort_item(store, images[window[-1]])
                if last is not None and all(last.get(name) == new.get(name) for name in INDEX_ATTRIBUTES):
                    continue
                meter.reset()
                client.put_item(
                    TableName=table,
                    Item=new,
                    ConditionExpression="attribute_not_exists(pk) OR version < :v",
                    ExpressionAttributeValues={":v": new["version"]},
                )
                moves = index_moves(last, new)
                writes += 1
                changed += sum(units > 0 for units in moves.values())
                local, local_index = local + meter.write_units, local_index + meter.index_units
                aws, aws_index = aws + _kb(last, new) + sum(moves.values()), aws_index + sum(moves.values())
                last = new
    finally:
        client.delete_table(TableName=table)
    return Consumed(writes, changed, local, local_index, aws, aws_index, lags)


def _no_keys(response: StoredResponse) -> dict[str, Any]:
    return {}


def _session_saves(client: Any, gateway: Any, meter: Meter, with_index_keys: bool) -> list[Written]:
    """bench/survey.py's scripted session through the real handler on a fresh table; without index keys, the
    store's _sort_keys is stubbed out for the run, so the save is today's transaction minus those attributes."""
    table = fresh_table(client, "survey-async")
    set_env("TABLE_NAME", table)
    stub = (
        contextlib.nullcontext() if with_index_keys else patch.object(SurveyStore, "_sort_keys", staticmethod(_no_keys))
    )
    try:
        with stub:
            return [written for _, written in _session(SaveProbe(gateway, meter, SurveyStore(client, table)))]
    finally:
        client.delete_table(TableName=table)


def _sums(rows: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float]:
    return tuple(sum(r[i] for r in rows) for i in range(4))  # type: ignore[return-value]


def _row(
    name: str, lag: str, writes: str, changed: int, units: tuple[float, ...], n: int, aws_before: float
) -> list[str]:
    """A design's row; units: Local, Local index, AWS rules, AWS rules index, then the sort items' Local and AWS
    (totals over the session's n saves, shown per save)."""
    local, local_index, aws, aws_index, *sort_items = (u / n for u in units)
    return [
        name, lag, writes, str(changed), f"{local:.1f} ({local_index:.1f})", f"{local / LOCAL_BEFORE:.2f}x",
        f"{aws:.1f} ({aws_index:.1f})", f"{aws / aws_before:.2f}x",
        " / ".join(f"{u:.1f}" for u in sort_items) if sort_items else "",
    ]  # fmt: skip


def async_report(client: Any) -> str:
    """The session saved as now and without index keys, then the consumer replayed for each window."""
    saved_env = {name: os.environ.get(name) for name in ("TABLE_NAME", "ADMIN_TOKEN", "CURSOR_SECRET")}
    set_env("ADMIN_TOKEN", ADMIN_TOKEN)
    set_env("CURSOR_SECRET", "bench-cursor-secret")  # the dev stage would read it from SSM
    try:
        gateway = local_gateway()
        with Meter(client, capacity="INDEXES") as meter:
            current = _session_saves(client, gateway, meter, with_index_keys=True)
            bare = _session_saves(client, gateway, meter, with_index_keys=False)
    finally:
        for name, value in saved_env.items():
            set_env(name, value)
    assert not any(w.local_index_units or INDEX_ATTRIBUTES & set(w.response[1] or ()) for w in bare)
    store = SurveyStore(client, "unused")
    times = [at for at, _, _ in SESSION]
    images = [w.response[1] for w in bare if w.response[1] is not None]
    assert len(images) == len(times), "every save leaves a response"
    n = len(bare)
    aws_before = sum(aws_units(w, indexes=False)[0] for w in current) / n
    now = _sums([(w.local_units, w.local_index_units, sum(aws_units(w)), aws_units(w)[1]) for w in current])
    saves = _sums([(w.local_units, w.local_index_units, *aws_units(w)) for w in bare])
    now_changed = sum(units > 0 for w in current for units in index_moves(*w.response).values())
    rows = [
        _row("as now: keys in the save's transaction", "0 (in the save)", "", now_changed, now, n, aws_before),
        _row("the save alone, no sort keys kept", "never sorted", "", 0, saves, n, aws_before),
    ]
    for seconds in WINDOWS:
        c = consume(client, store, images, times, seconds)
        lag = f"{sum(c.lags) / n:.1f} / {max(c.lags):.0f}"
        consumer = (c.local_units, c.local_index_units, c.aws_units, c.aws_index_units)
        total = (*(a + b for a, b in zip(saves, consumer, strict=True)), c.local_units, c.aws_units)
        rows.append(_row(f"stream consumer, W = {seconds} s", lag, str(c.writes), c.keys_changed, total, n, aws_before))
    note = (
        f"DynamoDB Local's transactions: index entry writes cost {now[1] / n:.1f} units per save as now, against "
        f"{now[3] / n:.1f} entry writes by the rules (Local: 2 units each); the table part costs {(now[0] - now[1]) / n:.1f} "
        f"per save as now, against {saves[0] / n:.1f} for the same transaction without index keys. The sort items' "
        "plain PutItems: compare the last column's two figures."
    )
    return _async_section(rows, n, aws_before, item_size(sort_item(store, images[-1]))) + "\n\n" + note


def _async_section(rows: list[list[str]], n: int, aws_before: float, sort_item_bytes: int) -> str:
    headers = [
        "design", "sort lag s, mean / max (+ the consumer's latency)", "sort-item writes", "index keys changed",
        "Local WU per save (index)", f"Local / {LOCAL_BEFORE:.1f}", "AWS rules WU per save (index)",
        f"AWS rules / {aws_before:.1f}", "of which sort items: Local / AWS rules",
    ]  # fmt: skip
    return "\n".join(
        [
            f"Sort keys kept by a stream consumer instead of the save: bench/survey.py's scripted session ({n} saves "
            f"over {SESSION[-1][0] - SESSION[0][0]:.0f} s) through the real handler, once as now and once with the "
            "response's index keys left out of the save (the same transaction: response + one summary shard); then "
            "the consumer's writes replayed for each batching window W by the session's clock (a window opens at "
            "the first unconsumed save; W = 0: a write after every save): a PutItem of the sort item (pk "
            f"{SORT_ITEM_PK}, sk the id, {sort_item_bytes} B; a table with the 11 keys-only GSIs), conditioned on the "
            "version, if a key changed. Units per saved answer, the whole session: as DynamoDB Local reports them (INDEXES), and "
            "by AWS's published rules (transactional 2 WCU per KB of each item, standard 1 per KB of the larger "
            "image, a moved keys-only entry a delete + a put, a new one a put). Stream reads by Lambda are free. "
            f"Ratios to {LOCAL_BEFORE:.1f} (Local, before the indexes) and {aws_before:.1f} (AWS rules, the same "
            "saves without indexes). The lag is by the session's clock: W at most, plus the stream's and Lambda's "
            "own latency, not measured here.",
            "",
            table_md(headers, rows),
        ]
    )


if __name__ == "__main__":
    import sys

    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        if sys.argv[1:] == ["async"]:  # only the stream consumer's section
            print(async_report(use_endpoint(database.endpoint_url)))
        else:
            print(run(database.endpoint_url))
