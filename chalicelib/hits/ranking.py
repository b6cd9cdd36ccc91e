"""Pure ranking logic: the GSI sort key of a path's counter, and the k-way merge of ranked pages.

The `ranking` index sorts by one number, and items with equal numbers come back in no
particular order. To list paths by (count descending, path ascending) without reading
whole groups of equal counts, the index number carries both:

    score = count * SCALE + tiebreak(path)        0 <= tiebreak(path) < SCALE

tiebreak is non-increasing in the path (code point order), so a descending index scan yields
count descending, then path ascending. It encodes only the first TIE_CHARS characters after
/api/ exactly (URL-safe characters; any other character ends the encoding), so paths that
agree there and have the same count share a score: the merge below reads such a group
completely (`group`) and sorts it in memory. Counts stay below MAX_COUNT (38 digits in all,
DynamoDB's number precision).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SCALE = 10**24
MAX_COUNT = 10**14 - 1
# Characters encoded exactly, in code point order; others fall into the gap buckets between them.
_ALPHABET = "-./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
_BASE = 2 * len(_ALPHABET) + 2  # digit 0 = end of string, odd = a gap bucket, even = an exact character
TIE_CHARS = 11  # _BASE ** TIE_CHARS < SCALE
PREFIX_LEN = len("/api/")

assert _BASE**TIE_CHARS < SCALE and list(_ALPHABET) == sorted(_ALPHABET)


def _digit(ch: str) -> tuple[int, bool]:
    j = bisect_left(_ALPHABET, ch)
    if j < len(_ALPHABET) and _ALPHABET[j] == ch:
        return 2 * j + 2, True
    return 2 * j + 1, False


def path_code(path: str) -> int:
    """Non-decreasing in `path` (code point order), in [0, _BASE ** TIE_CHARS)."""
    code = 0
    exact = True
    tail = path[PREFIX_LEN:]
    for i in range(TIE_CHARS):
        digit = 0
        if exact and i < len(tail):
            digit, exact = _digit(tail[i])
        elif i >= len(tail):
            exact = False
        code = code * _BASE + digit
    return code


def tiebreak(path: str) -> int:
    return SCALE - 1 - path_code(path)


def score(count: int, path: str) -> int:
    return count * SCALE + tiebreak(path)


def count_of(score_value: int) -> int:
    return score_value // SCALE


@dataclass(frozen=True)
class Entry:
    path: str
    score: int

    @property
    def count(self) -> int:
        return count_of(self.score)

    def order(self) -> tuple[int, str]:
        return (-self.score, self.path)


# fetch(shard, bound, inclusive, limit): up to `limit` entries of the shard with score < bound
# (<= if inclusive; any score if bound is None), score descending, and whether more may follow.
Fetch = Callable[[int, int | None, bool, int], tuple[list[Entry], bool]]
# group(shard, score): every entry of the shard with exactly this score.
Group = Callable[[int, int], list[Entry]]
# first_round(shards, bound, limit): fetch(shard, bound, True, limit) for every shard (may run them concurrently).
FirstRound = Callable[[Iterable[int], int | None, int], list[tuple[list[Entry], bool]]]


@dataclass
class _Shard:
    known: dict[str, Entry]
    low: int = 0  # every entry with score > low is known (>= low if low_inclusive)
    low_inclusive: bool = False
    exhausted: bool = False

    def add(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.known[e.path] = e

    def covers(self, e: Entry) -> bool:
        return self.exhausted or e.score > self.low or (self.low_inclusive and e.score == self.low)


def merge_page(
    shards: int,
    limit: int,
    after: Entry | None,
    first_round: FirstRound,
    fetch: Fetch,
    group: Group,
) -> tuple[list[Entry], Entry | None]:
    """One page of the ranking across `shards` index partitions, and the entry to continue after.

    Every entry is returned exactly once over successive pages (absent concurrent changes), in
    (score descending, path ascending) order. Reads about limit/shards + 2 entries per shard in
    the first round; further rounds fetch only from the shard(s) bounding the page.
    """
    batch = -(-limit // shards) + 2
    bound = after.score if after else None
    states: list[_Shard] = []
    for entries, more in first_round(range(shards), bound, batch):
        state = _Shard(known={})
        state.add(entries)
        if more and entries:
            state.low = entries[-1].score
        else:
            state.exhausted = not more
            state.low = bound if bound is not None else 0
            state.low_inclusive = True
        states.append(state)

    def wanted(e: Entry) -> bool:
        return after is None or e.order() > after.order()

    while True:
        candidates = sorted(
            (e for s in states for e in s.known.values() if wanted(e) and all(t.covers(e) for t in states)),
            key=Entry.order,
        )
        open_shards = [i for i, s in enumerate(states) if not s.exhausted]
        if len(candidates) > limit or not open_shards:
            break
        floor = max(states[i].low for i in open_shards)
        for i in open_shards:
            state = states[i]
            if state.low != floor:
                continue
            if not state.low_inclusive:
                state.add(group(i, floor))
                state.low_inclusive = True
                continue
            entries, more = fetch(i, floor, False, max(batch, limit + 1 - len(candidates)))
            state.add(entries)
            if not more or not entries:  # (a fetch returns entries whenever more may follow)
                state.exhausted = True
            else:
                state.low, state.low_inclusive = entries[-1].score, False
    page = candidates[:limit]
    more_left = len(candidates) > limit
    return page, (page[-1] if more_left and page else None)
