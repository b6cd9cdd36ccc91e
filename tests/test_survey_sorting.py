"""The dashboard's orders: the pure sort-key encoding (hypothesis), and paging through the store's indexes on
both backends equals a sort of every response, in every order; index entries follow changes and deletes."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.storage import keys
from chalicelib.survey import rules, sorting
from chalicelib.survey.store import Change, Position, StoredResponse, SurveyStore
from tests.conftest import TABLE, partition_items

ids = st.from_regex(r"[0-9a-f]{28}", fullmatch=True)
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=80)


def values_of(column: str) -> st.SearchStrategy[Any]:
    if column == "age":
        return st.integers(rules.AGE_MIN, rules.AGE_MAX)
    if column == "colours":
        return st.lists(st.sampled_from(rules.PALETTE), min_size=1, unique=True).map(
            lambda cs: [c for c in rules.PALETTE if c in cs]
        )
    if column == "completed":
        return st.booleans()
    if column == "step":
        return st.integers(rules.FIRST_STEP, rules.LAST_STEP)
    if column in ("created_at", "updated_at"):
        return st.integers(0, 10**14)
    if column == "gender":
        return st.sampled_from(rules.GENDERS)
    return texts


def natural(column: str, value: Any) -> Any:
    """The order a column's values have, independently of the encoding."""
    if column == "colours":
        return [rules.PALETTE.index(c) for c in value]
    if column == "updated_at":  # by the minute: saves within one minute are ties, ordered by id
        return value // 60_000
    if isinstance(value, str):
        return sorting.normalized_text(value)
    return value


@pytest.mark.pure
@pytest.mark.parametrize("column", sorting.SORTABLE)
@settings(deadline=None)
@given(data=st.data())
def test_encoded_keys_order_as_the_values_then_the_id(column: str, data: st.DataObject) -> None:
    a, b = data.draw(values_of(column)), data.draw(values_of(column))
    id_a, id_b = data.draw(ids), data.draw(ids)
    key_a, key_b = sorting.sort_key(column, a, id_a), sorting.sort_key(column, b, id_b)
    # DynamoDB compares string keys as UTF-8 bytes.
    assert (key_a.encode() < key_b.encode()) == ((natural(column, a), id_a) < (natural(column, b), id_b))
    assert len(key_a.encode()) <= 1024
    assert sorting.response_id_of(key_a) == id_a


@pytest.mark.pure
@given(a=ids, b=ids)
def test_packed_ids_order_as_the_ids_and_unpack_to_them(a: str, b: str) -> None:
    packed_a, packed_b = sorting.packed_id(a), sorting.packed_id(b)
    assert len(packed_a) == 19 and sorting.SEPARATOR not in packed_a
    assert (packed_a.encode() < packed_b.encode()) == (a < b)
    assert sorting.unpacked_id(packed_a) == a


@pytest.mark.pure
def test_updated_at_keys_move_only_when_the_minute_changes() -> None:
    rid = "0" * 28
    minute = 1_800_000_000_000 // 60_000 * 60_000
    key = sorting.sort_key("updated_at", minute, rid)
    assert sorting.sort_key("updated_at", minute + 59_999, rid) == key
    assert sorting.sort_key("updated_at", minute + 60_000, rid) > key
    assert sorting.sort_key("updated_at", minute - 1, rid) < key


@pytest.mark.pure
@settings(deadline=None)
@given(text=st.text(max_size=3000))
def test_text_keys_are_bounded_and_case_blind(text: str) -> None:
    assert sorting.body("about", text) == sorting.body("about", text.upper().casefold())
    assert len(sorting.normalized_text(text)) <= sorting.TEXT_CHARS
    assert all(ch >= " " for ch in sorting.normalized_text(text))


@pytest.mark.pure
@given(size=st.integers(0, 30), skip=st.integers(0, 30), taken=st.integers(1, 10))
def test_take_is_the_window_and_says_whether_more_follow(size: int, skip: int, taken: int) -> None:
    window, more = sorting.take(iter(range(size)), skip, taken)
    assert window == list(range(size))[skip : skip + taken]
    assert more == (size > skip + taken)


# --- through the store, on both backends ------------------------------------------------------------------------

WORDS = ["Ann", "ann", "Bo", "zoë", "Émile", "a" * 70, "a" * 70 + "b", " spaced", "line\nbreak"]


def random_response(rng: random.Random, i: int) -> tuple[dict[str, Any], int, bool]:
    answers: dict[str, Any] = {}
    for field in rules.FIELDS:
        if rng.random() < 0.3:
            continue
        if field == "age":
            answers[field] = rng.choice([3, 30, 30, 125])
        elif field == "colours":
            answers[field] = [c for c in rules.PALETTE if rng.random() < 0.3] or ["red"]
        elif field == "gender":
            answers[field] = rng.choice(rules.GENDERS)
        elif field == "email":  # an address answers once: made unique at its end (past the sort key's prefix)
            answers[field] = f"{rng.choice(WORDS)}-{i}"
        else:
            answers[field] = rng.choice(WORDS)
    return answers, rng.randint(1, 4), rng.random() < 0.3


def fill(store: SurveyStore, rng: random.Random, n: int) -> list[StoredResponse]:
    created = []
    for i in range(n):
        answers, step, _ = random_response(rng, i)
        now = 1_800_000_000_000 + rng.randint(0, 5) * 1000  # equal timestamps: ties broken by id
        rid = f"{now:012x}{rng.getrandbits(64):016x}"
        created.append(store.create(rid, "0" * 64, answers, step, now))
    return created


def every_page(store: SurveyStore, column: str, descending: bool, size: int) -> list[str]:
    seen: list[str] = []
    after: Position | None = None
    while True:
        page = store.page(column, descending, after, 0, size)
        seen += [row.id for row in page.rows]
        if page.next is None:
            return seen
        after = page.next


def expected(store: SurveyStore, column: str, descending: bool) -> list[str]:
    responses = [store.get(rid) for rid in store_ids(store)]
    rows = []
    for r in responses:
        assert r is not None
        state = {"completed": r.completed, "step": r.step, "updated_at": r.updated_at, "created_at": r.created_at}
        value = r.id if column == "created_at" else sorting.column_value(column, r.answers, state)
        rows.append((r.id, value))
    if column == "created_at":  # the table's own order: by id, which starts with the creation time
        return sorted((rid for rid, _ in rows), reverse=descending)
    return sorting.reference_order(rows, column, descending)


def store_ids(store: SurveyStore) -> list[str]:
    page = store.page("created_at", False, None, 0, 10_000)
    return [row.id for row in page.rows]


@pytest.fixture
def store(dynamodb: Any) -> SurveyStore:
    return SurveyStore(dynamodb, TABLE)


@pytest.mark.parametrize("column", sorting.SORTABLE)
def test_paging_every_order_equals_a_sort_of_every_response(store: SurveyStore, column: str) -> None:
    rng = random.Random(column)
    fill(store, rng, 23)
    for descending in (False, True):
        want = expected(store, column, descending)
        assert len(want) == 23
        assert every_page(store, column, descending, size=4) == want
        # A page number (offset) lands on the same rows as the cursors.
        assert [r.id for r in store.page(column, descending, None, 8, 4).rows] == want[8:12]


def test_index_entries_follow_changes_and_deletes(store: SurveyStore) -> None:
    rng = random.Random(7)
    created = fill(store, rng, 12)
    for i, response in enumerate(created[:8]):
        current = store.get(response.id)
        assert current is not None
        answers = dict(current.answers)
        if i % 2:
            answers.pop("name", None)  # answered -> unanswered: the entry moves to the other partition
        else:
            answers.update(name=f"Renamed {i}", age=40 + i)

        def change(c: StoredResponse, a: dict[str, Any] = answers) -> Change:
            return Change(a, c.step, not c.completed)

        store.update(current, change, 1_900_000_000_000 + i)
    for response in created[8:10]:
        store.delete(response.id, 1_900_000_000_100)
    remaining = set(store_ids(store))
    assert len(remaining) == 10
    for column in sorting.SORTABLE:
        for descending in (False, True):
            got = every_page(store, column, descending, size=3)
            assert got == expected(store, column, descending)
            assert set(got) == remaining


def test_summary_shards_share_one_partition_and_sum_up(store: SurveyStore, dynamodb: Any) -> None:
    fill(store, random.Random(3), 40)
    shards = partition_items(dynamodb, keys.SURVEY_SUMMARY_PK)
    assert 1 < len(shards) <= keys.SURVEY_SUMMARY_SHARDS
    summary = store.summary()
    assert summary.counters[rules.RESPONSES] == 40 and summary.version == 40
