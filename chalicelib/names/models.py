"""What the listings of names and the deletions' progress take and answer (the contract: chalicelib/edge/contract.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chalicelib.edge.contract import PARAM_INT, Reply, Strict, Timestamp

# A name's first characters: what every name is made of (streams' names hold no `:`; such a prefix lists none).
Prefix = Annotated[
    str,
    Field(
        default="",
        pattern=r"^[A-Za-z0-9_.:-]{0,128}$",
        description="only names that start with this (0 to 128 characters of A-Z a-z 0-9 _ . : -)",
    ),
]
ListLimit = Annotated[int, Field(default=50, ge=1, le=100), PARAM_INT]
Cursor = Annotated[str | None, Field(default=None, description="opaque: the `cursor` of the previous page")]


class ListQuery(Strict):
    prefix: Prefix
    limit: ListLimit
    cursor: Cursor


UPDATED_AT = (
    "the start of the UTC minute of the name's latest write a writer registered (at most about a minute behind its "
    "newest write; metrics: of its latest compacted minute)"
)


class StreamName(Reply):
    stream: str
    updated_at: Timestamp | None = Field(description=UPDATED_AT)


class KeyName(Reply):
    key: str
    updated_at: Timestamp | None = Field(description=UPDATED_AT)


class StreamsPage(Reply):
    streams: list[StreamName] = Field(description="the streams that exist, by name (byte order)")
    cursor: str | None = Field(description="the next page's cursor; null on the last page")


class MetricsPage(Reply):
    metrics: list[KeyName] = Field(description="the metric keys that hold values, by name (byte order)")
    cursor: str | None = Field(description="the next page's cursor; null on the last page")


class AveragesPage(Reply):
    averages: list[KeyName] = Field(description="the moving-average windows, by name (byte order)")
    cursor: str | None = Field(description="the next page's cursor; null on the last page")


Kind = Literal["stream", "metric", "average"]


class DeletionsQuery(Strict):
    kind: Kind | None = Field(default=None, description="only deletions of this kind")
    prefix: Prefix
    limit: ListLimit
    cursor: Cursor


class Deletion(Reply):
    kind: Kind
    name: str
    incarnation: int = Field(description="which incarnation of the name was deleted: 0 for the first")
    requested_at: Timestamp
    removed_items: int = Field(description="items the background purge removed so far")
    done: bool = Field(description="every item of that incarnation is removed")
    done_at: Timestamp | None


class DeletionsPage(Reply):
    deletions: list[Deletion] = Field(
        description="deletions whose purge is under way or finished in the last 7 days, by kind, name, incarnation"
    )
    cursor: str | None = Field(description="the next page's cursor; null on the last page")
