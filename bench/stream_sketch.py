"""What the quantile sketch costs a stream write: write and read units per value and the shard item's size, with
and without the sketch, side by side in one run, for a narrow and a wide spread of values.

"Without" is the same store with the sketch attribute left out of the shard's Put: the write path is otherwise
identical, so the difference is the sketch's.

    python -m bench stream_sketch
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import Meter, fresh_table, table_md, use_endpoint
from chalicelib.pure import clock
from chalicelib.pure.sketch import Sketch
from chalicelib.storage import keys
from chalicelib.streams.store import ShardState, StreamStore

VALUES = 1000  # single-value writes per case, one writer (the figures are per value, not contended)


class _WithoutSketch(StreamStore):
    def _shard_put(self, stream: str, state: ShardState, expected_version: int) -> dict[str, Any]:
        put = super()._shard_put(stream, state, expected_version)
        put["Item"].pop("sketch", None)
        return put


def _item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted as their text, a close upper bound)."""
    size = 0
    for name, value in item.items():
        ((kind, raw),) = value.items()
        size += len(name.encode()) + (len(raw) if kind == "B" else len(str(raw).encode()))
    return size


SPREADS: dict[str, Callable[[random.Random], float]] = {
    "latency-like (lognormal, ms)": lambda rng: rng.lognormvariate(3, 1),
    "wide (signed, 1e-6 to 1e6)": lambda rng: rng.choice((-1, 1)) * 10 ** rng.uniform(-6, 6),
}


def _case(
    client: Any, table: str, store_type: type[StreamStore], spread: Callable[[random.Random], float]
) -> dict[str, float]:
    store = store_type(client, table)
    stream = f"s-{uuid.uuid4().hex[:8]}"
    rng = random.Random(3)
    with Meter(client) as meter:
        for _ in range(VALUES):
            now = clock.now_ms()
            store.add_values(stream, [spread(rng)], "bench", uuid.uuid4().hex[:16], now, clock.iso(now))
        writes, reads = meter.write_units, meter.read_units
    items = [
        client.get_item(TableName=table, Key={"pk": {"S": keys.stream_shard_pk(stream, k)}, "sk": {"S": keys.STATE_SK}})
        for k in range(store.shards)
    ]
    sizes = [_item_bytes(found["Item"]) for found in items if "Item" in found]
    bins = [
        len(Sketch.decode(bytes(found["Item"]["sketch"]["B"])).bins())
        for found in items
        if "sketch" in found.get("Item", {})
    ]
    return {"wcu": writes / VALUES, "rcu": reads / VALUES, "item": max(sizes), "bins": max(bins, default=0)}


def run(endpoint_url: str) -> str:
    client = use_endpoint(endpoint_url)
    table = fresh_table(client, "sketch")
    rows = []
    for spread_name, spread in SPREADS.items():
        without = _case(client, table, _WithoutSketch, spread)
        with_sketch = _case(client, table, StreamStore, spread)
        for name, figures in (("without sketch", without), ("with sketch", with_sketch)):
            rows.append(
                [
                    spread_name,
                    name,
                    f"{figures['wcu']:.2f}",
                    f"{figures['rcu']:.2f}",
                    f"{figures['item']:.0f}",
                    f"{figures['bins']:.0f}",
                ]
            )
    return "\n".join(
        [
            "### Stream quantile sketches: cost per value (`bench/stream_sketch.py`)",
            "",
            table_md(["values", "case", "WCU/value", "RCU/value", "largest shard item (bytes)", "bins in it"], rows),
            "",
            f"{VALUES} single-value writes per case, one writer, {keys.SHARDS} shards; both cases of a spread in one run.",
        ]
    )


if __name__ == "__main__":
    from devtools.ddblocal import DynamoDBLocal

    with DynamoDBLocal() as database:
        print(run(database.endpoint_url))
