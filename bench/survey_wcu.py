"""What the survey's per-column sort indexes cost a save, and what other key layouts would cost: a measurement.

Each variant is its own table on DynamoDB Local with the response item built as the store builds it
(SurveyStore._item), its index key attributes laid out the variant's way. A save is replayed as the store does it
(one TransactWriteItems: the response conditioned on its version + one summary shard ADD) and as alternatives
(UpdateItem SET of the changed attributes; plain PutItem outside a transaction). Write units are what DynamoDB
Local reports with ReturnConsumedCapacity INDEXES. Item sizes follow DynamoDB's rules (names + values).

    python -m bench.survey_wcu
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bench.common import Meter, table_md, use_endpoint
from bench.survey import _responses, item_size
from chalicelib import keys
from chalicelib.dynamo import num, string
from chalicelib.survey import sorting
from chalicelib.survey.store import StoredResponse, SurveyStore
from chalicelib.table import (
    ATTRIBUTE_DEFINITIONS,
    KEY_SCHEMA,
    SURVEY_SORT_CODES,
    SURVEY_SORT_COLUMNS,
    survey_sort_attributes,
)

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
        ]
    )


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
