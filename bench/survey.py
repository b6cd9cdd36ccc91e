"""Survey dashboard at scale: a poll that changed nothing (304) vs a changed one, at 100 to 100,000 responses,
and the cost of one answer save (response + summary shard in one transaction, plus the sort indexes it moves)
vs a bare response write.

Tables are loaded with BatchWriteItem of the items the store itself builds (SurveyStore._item, with their index
keys) and a summary recomputed from them (rules.recompute), then the real handlers answer through Chalice's local
gateway, interleaved across tables and cases for several rounds; medians of latency, consumed capacity (what
DynamoDB Local reports, index writes included) and round trips.

    python -m bench survey --write
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bench.common import Meter, fresh_table, load_items, local_gateway, median, set_env, table_md, use_endpoint
from chalicelib.pure import clock
from chalicelib.storage import keys
from chalicelib.storage.dynamo import num, query_items, string
from chalicelib.storage.table import SURVEY_SORT_COLUMNS, survey_sort_attributes
from chalicelib.survey import rules
from chalicelib.survey.store import StoredResponse, SurveyStore

SIZES = (100, 1_000, 10_000, 100_000)
ROUNDS = 9
WARMUP = 2
SAVES = 31
ADMIN_TOKEN = "bench-admin-token-" + "x" * 30
# The polls measured: (label, query). The cursor case asks for the page after the first one.
POLLS = (
    ("name", "sort=name&order=asc&size=25"),
    ("updated_at", "sort=updated_at&order=desc&size=25"),
    ("name, next page", "sort=name&order=asc&size=25"),
)


def _responses(n: int, rng: random.Random) -> list[StoredResponse]:
    words = ["river", "stone", "lamp", "cloud", "maple", "harbour", "quiet", "amber"]
    out = []
    for i in range(n):
        answers: dict[str, Any] = {
            "name": f"{rng.choice(words).title()} {rng.choice(words).title()} {i}",
            "email": f"person{i}@example.com",
            "age": rng.randint(3, 125),
            "about": " ".join(rng.choice(words) for _ in range(rng.randint(5, 60))),
        }
        if rng.random() < 0.7:
            answers["address"] = f"{i} {rng.choice(words).title()} Street"
            answers["gender"] = rng.choice(rules.GENDERS)
        if rng.random() < 0.6:
            answers["book"] = rng.choice(words).title()
            answers["colours"] = [c for c in rules.PALETTE if rng.random() < 0.3] or ["blue"]
        created = 1_800_000_000_000 + i * 1000
        rid = f"{created:012x}{secrets.token_hex(8)}"
        out.append(StoredResponse(rid, "0" * 64, answers, 4, rng.random() < 0.6, 1, created, created + 500))
    return out


def _load(client: Any, store: SurveyStore, responses: list[StoredResponse]) -> None:
    counters = rules.recompute((r.answers, r.completed) for r in responses)
    summary = {
        "pk": string(keys.SURVEY_SUMMARY_PK),
        "sk": string(keys.survey_summary_sk(0)),
        "version": num(1),
        "updated_at": num(1_800_000_000_000),
        "epoch": string(secrets.token_hex(6)),
        **{name: num(value) for name, value in counters.items()},
    }
    items = [store._item(r) for r in responses] + [summary]

    load_items(client, store.table, items)


def _call(gateway: Any, meter: Meter, method: str, path: str, headers: dict[str, str], body: Any = None) -> Any:
    meter.reset()
    payload = b"" if body is None else json.dumps(body).encode()
    started = time.perf_counter()
    response = gateway.handle_request(method, path, {"Content-Type": "application/json", **headers}, payload)
    elapsed = (time.perf_counter() - started) * 1000
    return response, elapsed, meter.read_units, meter.write_units, meter.round_trips


Samples = dict[tuple[int, str], list[tuple[float, float, int]]]


def _poll_dashboard(gateway: Any, meter: Meter, tables: dict[int, str], admin: dict[str, str]) -> Samples:
    """(ms, read units, round trips) of each measured poll, by (table size, case): "304", or a POLLS label (200).

    A 200 is what a poll costs after any change: nothing is cached between polls."""
    cases = ["304", *(label for label, _ in POLLS)]
    etags: dict[int, str] = {}
    samples: Samples = {(n, c): [] for n in SIZES for c in cases}
    for round_ in range(WARMUP + ROUNDS):
        order = list(SIZES) if round_ % 2 else list(reversed(SIZES))
        for n in order:
            set_env("TABLE_NAME", tables[n])
            for case in cases if round_ % 2 else reversed(cases):
                path, headers = _request(gateway, n, case, admin, etags)
                response, ms, rcu, _, trips = _call(gateway, meter, "GET", path, headers)
                assert str(response["statusCode"]) == ("304" if case == "304" else "200"), response["statusCode"]
                if case != "304":
                    data = json.loads(response["body"])
                    assert data["total"] == n and len(data["responses"]) == 25, (data["total"], n)
                if round_ >= WARMUP:
                    samples[(n, case)].append((ms, rcu, trips))
    return samples


def _request(
    gateway: Any, n: int, case: str, admin: dict[str, str], etags: dict[int, str]
) -> tuple[str, dict[str, str]]:
    """The path and headers of one measured poll (any request needed to set it up is not measured)."""
    if case == "304":
        if n not in etags:
            first = gateway.handle_request("GET", "/dashboard/data?" + POLLS[0][1], admin, b"")
            etags[n] = first["headers"]["ETag"]
        return "/dashboard/data?" + POLLS[0][1], {**admin, "If-None-Match": etags[n]}
    query = dict(POLLS)[case]
    if case.endswith("next page"):
        first = json.loads(gateway.handle_request("GET", "/dashboard/data?" + query, admin, b"")["body"])
        query += f"&page=2&cursor={first['cursor']}"
    return "/dashboard/data?" + query, dict(admin)


# --- what a save costs ---------------------------------------------------------------------------------------------

INDEX_ATTRIBUTES = frozenset(name for column in SURVEY_SORT_COLUMNS for name in survey_sort_attributes(column))
KB = 1024


def _number_size(text: str) -> int:
    digits = Decimal(text).normalize().as_tuple().digits
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    """An attribute value's size by DynamoDB's rules (UTF-8 bytes; numbers 1 byte per 2 digits + 1)."""
    (kind, inner), *_ = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in inner)
    raise ValueError(kind)


def item_size(item: Mapping[str, Any] | None) -> int:
    return 0 if item is None else sum(len(name.encode()) + value_size(value) for name, value in item.items())


def _kb(*items: Mapping[str, Any] | None) -> int:
    """Write units of 1 KB each for writing an item: of the larger of its image before and after."""
    return max(1, -(-max(item_size(i) for i in items) // KB))


def index_moves(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, int]:
    """AWS's rules for a keys-only GSI: an entry whose key changes is a delete and a put (1 WCU each, the entries
    are far below 1 KB); one that appears or goes is one write; an unchanged key costs nothing. Per column."""
    out = {}
    for column in SURVEY_SORT_COLUMNS:
        pk, sk = survey_sort_attributes(column)
        old = None if before is None or sk not in before else (before[pk]["S"], before[sk]["S"])
        new = None if after is None or sk not in after else (after[pk]["S"], after[sk]["S"])
        out[column] = 0 if old == new else (old is not None) + (new is not None)
    return out


@dataclass(frozen=True)
class Written:
    """The images one save wrote, as read around it, and what DynamoDB Local reported."""

    response: tuple[dict[str, Any] | None, dict[str, Any] | None]
    summary: tuple[dict[str, Any] | None, dict[str, Any] | None]
    claims: int  # email claim items written or deleted
    local_units: float
    local_index_units: float


def _without_indexes(item: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if item is None else {k: v for k, v in item.items() if k not in INDEX_ATTRIBUTES}


def aws_units(w: Written, indexes: bool = True, transactional: bool = True) -> tuple[float, float]:
    """(table units, index units) of a save by AWS's published rules: a transactional write costs 2 WCU per KB
    of each item (the response, its summary shard, each email claim item), a standard write 1 per KB."""
    per_kb = 2 if transactional else 1
    response = w.response if indexes else (_without_indexes(w.response[0]), _without_indexes(w.response[1]))
    table = per_kb * (_kb(*response) + _kb(*w.summary) + w.claims)
    return float(table), float(sum(index_moves(*w.response).values()) if indexes else 0)


def _claims(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> int:
    old, new = (rules.email_identity(i["email"]["S"]) if i and "email" in i else None for i in (before, after))
    return 0 if old == new else (old is not None) + (new is not None)


class SaveProbe:
    """Drives saves through the real handler and reads, around each, the items it wrote (not metered)."""

    def __init__(self, gateway: Any, meter: Meter, store: SurveyStore) -> None:
        self.gateway, self.meter, self.store = gateway, meter, store
        self.id: str | None = None
        self.token: dict[str, str] = {}

    def _response_item(self) -> dict[str, Any] | None:
        if self.id is None:
            return None
        item = self.store.client.get_item(TableName=self.store.table, Key=self.store._key(self.id), ConsistentRead=True)
        return item.get("Item")  # type: ignore[no-any-return]

    def _shards(self) -> dict[str, dict[str, Any]]:
        items = query_items(
            self.store.client,
            {
                "TableName": self.store.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": string(keys.SURVEY_SUMMARY_PK)},
                "ConsistentRead": True,
            },
        )
        return {item["sk"]["S"]: item for item in items}

    def save(self, body: dict[str, Any]) -> tuple[Written, float]:
        """One save (the start if there is no response yet): what it wrote, and its milliseconds."""
        before, shards = self._response_item(), self._shards()
        if self.id is None:
            response, ms, _, units, _ = _call(self.gateway, self.meter, "POST", "/survey/responses", {}, body)
            assert response["statusCode"] == 201, response
            created = json.loads(response["body"])
            self.id, self.token = created["id"], {"X-Response-Token": created["token"]}
        else:
            path = f"/survey/responses/{self.id}"
            response, ms, _, units, _ = _call(self.gateway, self.meter, "PATCH", path, self.token, body)
            assert response["statusCode"] == 200, response
        index_units = self.meter.index_units
        after, shards_after = self._response_item(), self._shards()
        changed = [sk for sk, item in shards_after.items() if shards.get(sk) != item]
        summary = (shards.get(changed[0]), shards_after[changed[0]]) if changed else (None, None)
        return Written((before, after), summary, _claims(before, after), units, index_units), ms


# A respondent's session as the page sends it: each answer saved at a pause in the typing (400 ms debounce), the
# step with each save, a save at every step change. (seconds since the start, kind, body)
ABOUT = (
    "I grew up by the harbour and still walk there every morning before work. I teach mathematics at the "
    "secondary school, and in the evenings I restore old bicycles for the neighbours' children. Lately I have "
    "been learning to sail, slowly, and reading everything I can find about the history of the lighthouse on "
    "the point. Ask me about tides, gear ratios or good bread."
)
SESSION: tuple[tuple[float, str, dict[str, Any]], ...] = (
    (4, "start", {"step": 1, "name": "Mari"}),
    (7, "text, its sort key moves", {"step": 1, "name": "Maria Lop"}),
    (9, "text, its sort key moves", {"step": 1, "name": "Maria Lopez"}),
    (16, "email change (claims)", {"step": 1, "email": "maria.lopez@example.co"}),
    (18, "email change (claims)", {"step": 1, "email": "maria.lopez@example.com"}),
    (22, "number, its sort key moves", {"step": 1, "age": 4}),
    (23, "number, its sort key moves", {"step": 1, "age": 42}),
    (26, "step change", {"step": 2}),
    *(
        (
            30 + 9 * i,
            "text, its sort key moves" if n <= 40 else "text past its sort key",
            {"step": 2, "about": ABOUT[:n]},
        )
        for i, n in enumerate((18, 40, 75, 120, 160, 205, 250, 290, len(ABOUT)))
    ),
    (118, "step change", {"step": 3}),
    (124, "text, its sort key moves", {"step": 3, "address": "12 Harbour"}),
    (129, "text, its sort key moves", {"step": 3, "address": "12 Harbour Street, Springfield"}),
    (133, "choice (counters change)", {"step": 3, "gender": "female"}),
    (136, "step change", {"step": 4}),
    (141, "text, its sort key moves", {"step": 4, "book": "The Quiet"}),
    (143, "text, its sort key moves", {"step": 4, "book": "The Quiet River"}),
    (147, "choice (counters change)", {"step": 4, "colours": ["blue"]}),
    (149, "choice (counters change)", {"step": 4, "colours": ["green", "blue"]}),
    (152, "choice (counters change)", {"step": 4, "colours": ["red", "green", "blue"]}),
    (158, "completion", {"step": 4, "complete": True}),
)
SESSION_START = 1_800_000_030.0  # 30 s into a minute: the session spans the minutes 0:00-2:38 after


def _at(seconds: float) -> Callable[[], float]:
    return lambda: seconds


def _session(probe: SaveProbe) -> list[tuple[str, Written]]:
    out = []
    try:
        for at, kind, body in SESSION:
            clock.set_source(_at(SESSION_START + at))
            out.append((kind, probe.save(body)[0]))
    finally:
        clock.set_source(None)
    return out


def _repeated_saves(probe: SaveProbe) -> dict[str, list[tuple[float, Written]]]:
    """SAVES saves of each case, 2 s apart: "short", an answer whose sort key changes every save (a name being
    typed); "long", typing past the 32 characters the sort key keeps."""
    out: dict[str, list[tuple[float, Written]]] = {"short": [], "long": []}
    try:
        probe.save({"name": "Bench"})
        for i in range(SAVES):
            text = "about me, and more about me: " * 2 + str(i)  # the first 32 characters stay the same
            for j, (case, answer) in enumerate((("short", {"name": f"Bench {i}"}), ("long", {"about": text}))):
                clock.set_source(_at(SESSION_START + 4 * i + 2 * j))
                written, ms = probe.save(answer)
                out[case].append((ms, written))
    finally:
        clock.set_source(None)
    return out


def _bare_puts(store: SurveyStore, meter: Meter) -> list[tuple[float, float]]:
    """(ms, write units) of a bare PutItem of a response as it was stored before the sort indexes."""
    out = []
    bare = StoredResponse("f" * 28, "0" * 64, {"name": "Bench"}, 1, False, 1, 0, 0)
    for i in range(SAVES):
        text = "about me, and more about me: " * 2 + str(i)
        item = _without_indexes(store._item(replace(bare, answers={"name": "Bench", "about": text})))
        meter.reset()
        started = time.perf_counter()
        store.client.put_item(TableName=store.table, Item=item)
        out.append(((time.perf_counter() - started) * 1000, meter.write_units))
    return out


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    meter = Meter(client, capacity="INDEXES")
    rng = random.Random(5)
    saved_env = {k: os.environ.get(k) for k in ("TABLE_NAME", "ADMIN_TOKEN", "CURSOR_SECRET")}
    set_env("ADMIN_TOKEN", ADMIN_TOKEN)
    set_env("CURSOR_SECRET", "bench-cursor-secret")  # the dev stage would read it from SSM
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tables: dict[int, str] = {}
    load_seconds: dict[int, float] = {}
    try:
        for n in SIZES:
            tables[n] = fresh_table(client, f"survey-{n}")
            started = time.perf_counter()
            _load(client, SurveyStore(client, tables[n]), _responses(n, rng))
            load_seconds[n] = time.perf_counter() - started
        gateway = local_gateway()
        samples = _poll_dashboard(gateway, meter, tables, admin)
        set_env("TABLE_NAME", tables[SIZES[0]])
        store = SurveyStore(client, tables[SIZES[0]])
        saves = Saves(
            _repeated_saves(SaveProbe(gateway, meter, store)),
            _session(SaveProbe(gateway, meter, store)),
            _bare_puts(store, meter),
        )
    finally:
        for key, value in saved_env.items():
            set_env(key, value)
        for name in tables.values():
            client.delete_table(TableName=name)
    return _report(samples, saves, load_seconds)


# Before the sort indexes and summary shards (measured 2026-11-24, same machine): a changed poll read the summary and
# every response (the newest 2,000 at most) and sorted them in the Lambda; kept as the baseline of the figures above.
BEFORE = """Before (one summary item; the dashboard sorted the newest 2,000 responses in the Lambda), measured 2026-11-24:

| responses | 304 ms | 304 read units | 200 ms | 200 read units | 200 round trips | 200 / 304 time | load s |
|---|---|---|---|---|---|---|---|
| 100 | 3.9 | 1.0 | 16.4 | 14.0 | 2 | **4x** | 0.1 |
| 1,000 | 4.2 | 1.0 | 148.1 | 129.0 | 3 | **35x** | 0.4 |
| 2,000 | 4.2 | 1.0 | 296.3 | 258.0 | 4 | **71x** | 0.9 |
| 5,000 | 4.0 | 1.0 | 310.1 | 260.0 | 4 | **78x** | 2.5 |

One answer save (`PATCH`, 31 saves, medians): 6.2 ms, 2.0 write units in 2 round trips (GetItem + TransactWriteItems
of the response and the summary), against 2.2 ms and 1.0 write units for a bare PutItem of the response alone."""


@dataclass(frozen=True)
class Saves:
    repeated: dict[str, list[tuple[float, Written]]]
    session: list[tuple[str, Written]]
    bare: list[tuple[float, float]]


def _report(samples: Samples, saves: Saves, load_seconds: dict[int, float]) -> str:
    def med(values: list[Any], i: int) -> float:
        return median([v[i] for v in values])

    rows = []
    for n in SIZES:
        cached = samples[(n, "304")]
        row = [f"{n:,}", f"{med(cached, 0):.1f}", f"{med(cached, 1):.1f}"]
        for label, _ in POLLS:
            full = samples[(n, label)]
            row += [f"{med(full, 0):.1f}", f"{med(full, 1):.1f}", f"{med(full, 2):.0f}"]
        rows.append([*row, f"{load_seconds[n]:.0f}"])
    headers = ["responses", "304 ms", "304 read units"]
    for label, _ in POLLS:
        headers += [f"200 {label} ms", "read units", "round trips"]
    first, last = SIZES[0], SIZES[-1]
    ratio = med(samples[(last, POLLS[0][0])], 1) / med(samples[(first, POLLS[0][0])], 1)
    section = [
        "### Survey dashboard: live polling at scale",
        "",
        f"`GET /dashboard/data` (25 a page) through the real handler, {ROUNDS} interleaved rounds after {WARMUP} "
        "warm-up rounds, medians; capacity as DynamoDB Local reports it (ReturnConsumedCapacity INDEXES). A poll "
        "with a current `If-None-Match` reads only the summary's shards, with one Query (304); a changed poll reads "
        "the summary and one page: each index shard's next keys (8 Queries, keys only), merged in the Lambda, then "
        "the page's rows with one BatchGetItem. The next page follows the answer's `cursor`.",
        "",
        table_md([*headers, "load s"], rows),
        "",
        f"A changed poll sorted by name at {last:,} responses reads **{ratio:.2f}x** the units of one at {first:,}.",
        "",
        *_save_report(saves),
        BEFORE,
    ]
    return "\n".join(section)


def _units(written: list[Written]) -> list[float]:
    """Means of: DynamoDB Local's units (and its index units); by AWS's rules (and the index part); by AWS's rules
    for the same saves without the indexes."""
    rows = [
        (w.local_units, w.local_index_units, sum(aws_units(w)), aws_units(w)[1], aws_units(w, False)[0])
        for w in written
    ]
    return [sum(r[i] for r in rows) / len(rows) for i in range(5)]


def _fmt(units: list[float]) -> list[str]:
    local, local_index, aws, aws_index, aws_before = units
    return [f"{local:.1f} ({local_index:.1f})", f"{aws:.1f} ({aws_index:.1f})", f"{aws_before:.1f}"]


UNIT_HEADERS = ["DynamoDB Local WU (index)", "AWS rules WU (index)", "AWS rules WU without the indexes"]


def _save_report(saves: Saves) -> list[str]:
    repeated = [
        [
            label,
            f"{median([ms for ms, _ in saves.repeated[case]]):.1f}",
            *_fmt(_units([w for _, w in saves.repeated[case]])),
        ]
        for case, label in (
            ("short", "an answer whose sort key changes (e.g. a name being typed)"),
            ("long", "typing past the 32 characters a text's sort key keeps"),
        )
    ]
    bare = saves.bare
    repeated.append(
        ["bare PutItem of the response (no summary, no indexes)", f"{median([b[0] for b in bare]):.1f}",
         f"{median([b[1] for b in bare]):.1f} (0.0)", "1.0 (0.0)", "1.0"]
    )  # fmt: skip
    kinds: dict[str, list[Written]] = {}
    for kind, written in saves.session:
        kinds.setdefault(kind, []).append(written)
    session = [[kind, str(len(ws)), *_fmt(_units(ws))] for kind, ws in kinds.items()]
    every = [w for _, w in saves.session]
    whole = _units(every)
    moved_updated = sum(index_moves(*w.response)["updated_at"] > 0 for w in every)
    session.append(["**per saved answer, the whole session**", str(len(every)), *_fmt(whole)])
    local, _, aws, _, aws_before = whole
    return [
        f"One answer save (`PATCH`, {SAVES} saves each 2 s apart, ms as medians, units as means), in 2 round trips "
        "(GetItem + TransactWriteItems of the response and one summary shard). Units as DynamoDB Local reports them, "
        "and computed by AWS's published rules from the items' sizes before and after and the index entries that "
        "moved (a transactional write is 2 WCU per KB of each item; a moved keys-only index entry is a delete and a "
        "put, 1 WCU each):",
        "",
        table_md(["save", "ms", *UNIT_HEADERS], repeated),
        "",
        f"A respondent's session: the 4 steps typed with pauses ({len(every)} saves over "
        f"{SESSION[-1][0] - SESSION[0][0]:.0f} s; each pause saves, as the page does; the `updated_at` index entry "
        f"moved on {moved_updated} of them, once a minute), means per save:",
        "",
        table_md(["save", "saves", *UNIT_HEADERS], session),
        "",
        f"Per saved answer: **{local:.1f}** write units as DynamoDB Local reports them, **{local / 2:.1f}x** its "
        f"2.0 before the indexes; **{aws:.1f}** by AWS's rules, **{aws / aws_before:.1f}x** the {aws_before:.1f} the "
        f"same saves cost by those rules without the indexes (and {aws / 2:.1f}x the 2.0).",
        "",
    ]


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
