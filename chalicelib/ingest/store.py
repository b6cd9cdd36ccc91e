"""Data access for the events stream's registry of first copies (chalicelib/ingest/dedupe.py). Every DynamoDB
expression for it lives here.

One item per origin and block of dedupe.BLOCK positions (keys.origin_pk, keys.origin_block_sk): per position, an
attribute named dedupe.slot holding the fingerprint of the first copy seen, or dedupe.REFUSED. A claim is ONE
UpdateItem, `SET s = if_not_exists(s, :value)` for each position it names, that returns what those positions hold
afterwards (theirs, or the value that was there first): DynamoDB applies updates to one item one at a time, so two
copies claiming at once (two shards' consumers, the producer refusing) cannot both win. The item is always under
1 KB: one write unit per claim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chalicelib.ingest import dedupe
from chalicelib.ingest.dedupe import Block
from chalicelib.pure import clock
from chalicelib.storage import keys, table
from chalicelib.storage.dynamo import batch_get, item_key, num, sort_key_of


class FirstCopyStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self.client = client
        self.table = table_name

    def claim(self, block: Block, slots: Mapping[str, bytes]) -> dict[str, bytes]:
        """Give each position of `slots` its value unless it holds one already; what each holds afterwards."""
        names = {f"#{name}": name for name in slots}
        names["#exp"] = table.TTL_ATTRIBUTE
        distinct = {value: f":v{n}" for n, value in enumerate(dict.fromkeys(slots.values()))}
        sets = [f"#{name} = if_not_exists(#{name}, {distinct[value]})" for name, value in slots.items()]
        response = self.client.update_item(
            TableName=self.table,
            Key=self._key(block),
            UpdateExpression=f"SET {', '.join(sets)}, #exp = :exp",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={
                **{alias: {"B": value} for value, alias in distinct.items()},
                ":exp": num(int(clock.now()) + dedupe.TTL_S),
            },
            # The whole item (under 1 KB, no extra cost): a position that kept its value is not "updated" everywhere.
            ReturnValues="ALL_NEW",
        )
        stored = response["Attributes"]
        return {name: bytes(stored[name]["B"]) for name in slots}

    def read(self, origin: str, numbers: Iterable[int]) -> dict[Block, dict[str, bytes]]:
        """What the registry holds for these blocks of one origin (one strongly consistent BatchGetItem)."""
        wanted = [(origin, number) for number in sorted(set(numbers))]
        if not wanted:
            return {}
        by_sk = {keys.origin_block_sk(number): (origin, number) for _, number in wanted}
        items = batch_get(self.client, self.table, [self._key(block) for block in wanted], consistent=True)
        return {by_sk[sort_key_of(item)]: {n: bytes(v["B"]) for n, v in item.items() if "B" in v} for item in items}

    @staticmethod
    def _key(block: Block) -> dict[str, Any]:
        origin, number = block
        return item_key(keys.origin_pk(origin), keys.origin_block_sk(number))
