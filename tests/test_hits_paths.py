"""Pure hit-counter logic: path normalisation, load-test paths, the ranking score and the page merge."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.hits import paths, ranking
from chalicelib.hits.ranking import Entry

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("one", "/api/one/"),
        ("one/", "/api/one/"),
        ("product/1", "/api/product/1/"),
        ("product/1/", "/api/product/1/"),
        ("a//b///c", "/api/a/b/c/"),
        ("/a/", "/api/a/"),
        ("One/TWO", "/api/One/TWO/"),
        ("one?x=1&y=2", "/api/one/"),
        ("one/?x=1", "/api/one/"),
        ("one#frag", "/api/one/"),
        ("", "/api/"),
        ("//", "/api/"),
        ("caf%C3%A9/é", "/api/caf%C3%A9/é/"),
    ],
)
def test_normalise(rest: str, expected: str) -> None:
    assert paths.normalise(rest) == expected


@given(st.text(max_size=40))
def test_normalise_is_idempotent_and_well_formed(rest: str) -> None:
    path = paths.normalise(rest)
    assert path.startswith("/api/") and path.endswith("/") and "//" not in path
    assert "?" not in path and "#" not in path
    assert paths.normalise(path[len("/api/") :]) == path


def test_too_long_counts_bytes() -> None:
    assert not paths.too_long("/api/" + "a" * (paths.MAX_PATH_BYTES - 6) + "/")
    assert paths.too_long("/api/" + "a" * (paths.MAX_PATH_BYTES - 5) + "/")
    assert paths.too_long("/api/" + "é" * 510 + "/")  # 2 bytes each


def test_generated_paths_are_seedable_and_well_formed() -> None:
    pool = paths.make_pool(random.Random(7))
    assert len(pool) == 3 and len(set(pool)) == 3
    assert pool == paths.make_pool(random.Random(7))
    generated = paths.generate_paths(2000, pool, random.Random(1))
    assert generated == paths.generate_paths(2000, pool, random.Random(1))
    assert len(generated) == 2000
    depths = set()
    for path in generated:
        assert paths.normalise(path[len("/api/") :]) == path
        segments = paths.segments(path)
        depths.add(len(segments))
        assert set(segments) <= set(pool)
    assert depths == {1, 2, 3, 4, 5, 6}


# --- the ranking score ----------------------------------------------------------

_path_chars = st.sampled_from([*"-./09AZ_az~é%!", "\x00", "\U0001f600"])
_paths = st.lists(_path_chars, max_size=16).map(lambda cs: "/api/" + "".join(cs))


@given(_paths, _paths)
def test_path_code_is_monotone(a: str, b: str) -> None:
    if a < b:
        assert ranking.path_code(a) <= ranking.path_code(b)
    assert 0 <= ranking.path_code(a) < ranking.SCALE


@given(st.integers(0, ranking.MAX_COUNT), st.integers(0, ranking.MAX_COUNT), _paths, _paths)
def test_score_orders_by_count_then_path(c1: int, c2: int, a: str, b: str) -> None:
    s1, s2 = ranking.score(c1, a), ranking.score(c2, b)
    assert ranking.count_of(s1) == c1 and len(str(s1)) <= 38
    if (-c1, a) < (-c2, b):
        assert s1 >= s2  # equal only when the paths share their encoded prefix and count


def test_distinct_short_paths_have_distinct_scores() -> None:
    assert ranking.score(1, "/api/a/") > ranking.score(1, "/api/b/") > ranking.score(1, "/api/b/c/")


# --- the merge of ranking partitions -----------------------------------------------


class FakeIndex:
    """Ranking partitions in memory, with DynamoDB's "equal scores in any order" made adversarial."""

    def __init__(self, entries: list[Entry], shards: int, rng: random.Random) -> None:
        self.parts: list[list[Entry]] = [[] for _ in range(shards)]
        for e in entries:
            self.parts[hash(e.path) % shards].append(e)
        for part in self.parts:
            rng.shuffle(part)
            part.sort(key=lambda e: -e.score)  # stable: ties stay shuffled
        self.reads = 0

    def fetch(self, shard: int, bound: int | None, inclusive: bool, limit: int) -> tuple[list[Entry], bool]:
        matching = [
            e for e in self.parts[shard] if bound is None or e.score < bound or (inclusive and e.score == bound)
        ]
        self.reads += min(limit, len(matching))
        return matching[:limit], len(matching) > limit

    def first_round(self, shards: Iterable[int], bound: int | None, limit: int) -> list[tuple[list[Entry], bool]]:
        return [self.fetch(s, bound, True, limit) for s in shards]

    def group(self, shard: int, score: int) -> list[Entry]:
        found = [e for e in self.parts[shard] if e.score == score]
        self.reads += len(found)
        return found


def _all_pages(index: FakeIndex, shards: int, limit: int) -> list[Entry]:
    seen: list[Entry] = []
    after = None
    for _ in range(10_000):
        page, after = ranking.merge_page(shards, limit, after, index.first_round, index.fetch, index.group)
        assert len(page) <= limit
        assert page or after is None
        seen.extend(page)
        if after is None:
            return seen
    raise AssertionError("paging did not end")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", "aa", "ab", "b/c", "é"]), st.integers(0, 30)), max_size=60),
    st.integers(1, 5),
    st.integers(1, 12),
    st.integers(1, 4),
    st.integers(0, 2**32),
)
def test_pages_cover_every_entry_once_in_order(
    raw: list[tuple[str, int]], counts: int, limit: int, shards: int, seed: int
) -> None:
    # Few distinct counts and a shared long prefix: many equal scores, so groups are exercised.
    entries = {}
    for stem, n in raw:
        path = f"/api/{'x' * 12}{stem}{n}/"
        entries[path] = Entry(path, ranking.score(n % counts + 1, path))
    index = FakeIndex(list(entries.values()), shards, random.Random(seed))
    assert _all_pages(index, shards, limit) == sorted(entries.values(), key=Entry.order)


def test_first_page_reads_are_bounded_by_the_limit() -> None:
    entries = [Entry(f"/api/p{i}/", ranking.score(i % 997 + 1, f"/api/p{i}/")) for i in range(20_000)]
    index = FakeIndex(entries, 16, random.Random(3))
    page, after = ranking.merge_page(16, 20, None, index.first_round, index.fetch, index.group)
    assert page == sorted(entries, key=Entry.order)[:20] and after == page[-1]
    assert index.reads <= 16 * 4 + 40


# --- wider properties -------------------------------------------------------------------------------------

_segment = st.text(st.characters(blacklist_characters="/?#", blacklist_categories=["Cs"]), min_size=1, max_size=8)


@given(st.lists(_segment, max_size=6), st.lists(st.integers(1, 3), min_size=7, max_size=7), st.text(max_size=10))
def test_normalise_keeps_segments_and_drops_query_and_fragment(
    segments: list[str], slashes: list[int], tail: str
) -> None:
    # Any number of slashes between, before and after the segments; anything after ? or #.
    rest = "/" * (slashes[0] - 1) + "".join(s + "/" * n for s, n in zip(segments, slashes[1:], strict=False))
    path = paths.normalise(rest)
    assert paths.segments(path) == segments
    assert path == "/api/" + "".join(s + "/" for s in segments)
    for mark in "?#":
        assert paths.normalise(rest + mark + tail) == path


_url_safe = st.text(st.sampled_from(ranking._ALPHABET), max_size=3)


_common = st.one_of(
    st.text(st.sampled_from(ranking._ALPHABET), max_size=ranking.TIE_CHARS + 1),
    st.text(st.sampled_from(ranking._ALPHABET), min_size=ranking.TIE_CHARS - 2, max_size=ranking.TIE_CHARS + 1),
)


@given(_common, _url_safe, _url_safe)
def test_url_safe_prefixes_are_encoded_exactly(common: str, tail_a: str, tail_b: str) -> None:
    a, b = common + tail_a, common + tail_b  # often alike up to (or just past) the encoded length
    # Paths that differ within their first TIE_CHARS URL-safe characters never share a score.
    code_a, code_b = ranking.path_code("/api/" + a), ranking.path_code("/api/" + b)
    if a[: ranking.TIE_CHARS] == b[: ranking.TIE_CHARS]:
        assert code_a == code_b
    else:
        assert (code_a < code_b) == (a < b) and code_a != code_b


class AssignedIndex(FakeIndex):
    """FakeIndex with the partition of every entry chosen by the test (any assignment, not a hash)."""

    def __init__(self, entries: list[Entry], shard_of: list[int], shards: int, rng: random.Random) -> None:
        self.parts = [[] for _ in range(shards)]
        for e, shard in zip(entries, shard_of, strict=True):
            self.parts[shard % shards].append(e)
        for part in self.parts:
            rng.shuffle(part)
            part.sort(key=lambda e: -e.score)
        self.reads = 0


_any_path = st.text(max_size=14).map(lambda t: "/api/" + t)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(_any_path, st.integers(1, 4), max_size=70),
    st.lists(st.integers(0, 15), min_size=70, max_size=70),
    st.integers(1, 16),
    st.one_of(st.integers(1, 5), st.integers(1, 100)),
    st.integers(0, 2**32),
)
def test_pages_list_every_path_once_by_count_then_path(
    counts: dict[str, int], shard_of: list[int], shards: int, limit: int, seed: int
) -> None:
    # Any text after /api/ (characters outside the encoded alphabet share scores), any partition assignment,
    # up to the 16 partitions the service uses.
    entries = [Entry(path, ranking.score(n, path)) for path, n in counts.items()]
    index = AssignedIndex(entries, shard_of[: len(entries)], shards, random.Random(seed))
    listed = [(e.count, e.path) for e in _all_pages(index, shards, limit)]
    assert listed == sorted(((n, p) for p, n in counts.items()), key=lambda cp: (-cp[0], cp[1]))
