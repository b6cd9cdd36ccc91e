"""The survey's pure rules: validation, completion, summary deltas (no database)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.survey import rules
from chalicelib.survey.rules import AnswerError, clean_answer


def rejects(field: str, value: Any) -> str:
    with pytest.raises(AnswerError) as info:
        clean_answer(field, value)
    assert info.value.field == field
    return info.value.message


def test_four_steps_of_two_fields() -> None:
    assert rules.STEPS == (("name", "email"), ("age", "about"), ("address", "gender"), ("book", "colours"))
    assert rules.REQUIRED == ("name", "email", "age", "about")
    assert [rules.step_of_field(f) for f in rules.FIELDS] == [1, 1, 2, 2, 3, 3, 4, 4]


def test_name_is_trimmed_and_1_to_100_characters() -> None:
    assert clean_answer("name", "  Ann Lee \t") == "Ann Lee"
    assert clean_answer("name", "x" * 100) == "x" * 100
    assert clean_answer("name", "  " + "x" * 100 + "  ") == "x" * 100
    rejects("name", "x" * 101)
    rejects("name", 5)
    assert clean_answer("name", "   ") is None  # cleared, not stored; required only to finish


@pytest.mark.parametrize(
    "email", ["ann@example.com", "a.b+tag@sub.example.co.uk", "o'brien@x-y.org", " ann@example.com "]
)
def test_valid_emails(email: str) -> None:
    assert clean_answer("email", email) == email.strip()


def test_email_length_limit_is_254() -> None:
    longest = "a@" + ".".join(["b" * 60] * 4) + ".commmmmm"
    assert len(longest) == 254 and clean_answer("email", longest) == longest


@pytest.mark.parametrize(
    "email",
    [
        "ann",
        "ann@",
        "@example.com",
        "ann@example",
        "ann@@example.com",
        "ann@exa mple.com",
        "an n@example.com",
        ".ann@example.com",
        "ann.@example.com",
        "a..b@example.com",
        "ann@-example.com",
        "ann@example-.com",
        "ann@example..com",
        "x" * 65 + "@example.com",
        "a@" + ".".join(["b" * 60] * 4) + ".commmmmmm",  # 255 characters
    ],
)
def test_invalid_emails(email: str) -> None:
    assert "valid email" in rejects("email", email)


def test_age_is_an_integer_from_3_to_125() -> None:
    assert clean_answer("age", 3) == 3 and clean_answer("age", 125) == 125
    for bad in (2, 126, -1, 30.5, 30.0, True, "30", "abc", [30]):
        rejects("age", bad)
    assert clean_answer("age", None) is None and clean_answer("age", "") is None


def test_text_bounds() -> None:
    assert clean_answer("about", "a" * 2000) == "a" * 2000
    rejects("about", "a" * 2001)
    assert clean_answer("address", "a" * 300) == "a" * 300
    rejects("address", "a" * 301)
    assert clean_answer("book", "b" * rules.BOOK_MAX)
    rejects("book", "b" * (rules.BOOK_MAX + 1))
    assert clean_answer("about", "  keeps\nits spaces ") == "  keeps\nits spaces "


def test_gender_is_one_of_the_list() -> None:
    for gender in ("female", "male", "non-binary", "prefer not to say"):
        assert clean_answer("gender", gender) == gender
    for bad in ("Female", "other", "nonbinary", 1):
        rejects("gender", bad)


def test_colours_are_a_subset_of_the_palette_without_repeats() -> None:
    assert clean_answer("colours", ["white", "red", "blue"]) == ["red", "blue", "white"]  # palette order
    assert clean_answer("colours", []) is None
    rejects("colours", ["red", "red"])
    rejects("colours", ["red", "cyan"])
    rejects("colours", "red")
    rejects("colours", ["red", 1])


def test_unknown_field() -> None:
    rejects("favourite_food", "pie")


def test_completion_needs_steps_1_and_2_and_the_last_step() -> None:
    full = {"name": "Ann", "email": "a@b.co", "age": 30, "about": "hi"}
    rules.check_completion(full, 4)
    for field in rules.REQUIRED:
        with pytest.raises(AnswerError) as info:
            rules.check_completion({k: v for k, v in full.items() if k != field}, 4)
        assert info.value.field == field
    with pytest.raises(AnswerError) as info:
        rules.check_completion(full, 3)
    assert info.value.field == "step"


def test_summary_figures() -> None:
    answers = [
        {"age": 30, "gender": "female", "colours": ["blue", "red"]},
        {"age": 31, "gender": "male", "colours": ["blue", "green"]},
        {"age": 36, "gender": "female", "colours": ["green", "red", "black"]},
        {"age": 32},
        {},
    ]
    counters = rules.recompute([(a, i < 2) for i, a in enumerate(answers)])
    summary = rules.summarise(counters)
    assert summary.responses == 5 and summary.completed == 2
    assert summary.average_age == 32.3  # 129 / 4 = 32.25, rounded half up
    assert summary.genders == {"female": 2, "male": 1, "non-binary": 0, "prefer not to say": 0}
    assert summary.gender_ratio == {"female": 0.667, "male": 0.333, "non-binary": 0.0, "prefer not to say": 0.0}
    # blue, green and red tie at 2: broken by name; black (1) is fourth.
    assert summary.top_colours == [("blue", 2), ("green", 2), ("red", 2)]
    empty = rules.summarise({})
    assert empty.average_age is None and empty.gender_ratio == {} and empty.top_colours == []


@pytest.mark.parametrize(
    "n,shown",
    [(0, "0"), (9999, "9999"), (10_000, "10k"), (12_345, "12.3k"), (12_399, "12.3k"), (999_999, "999.9k")],
)
def test_compact_count(n: int, shown: str) -> None:
    assert rules.compact_count(n) == shown


answers_strategy = st.fixed_dictionaries(
    {},
    optional={
        "age": st.integers(rules.AGE_MIN, rules.AGE_MAX),
        "gender": st.sampled_from(rules.GENDERS),
        "colours": st.lists(st.sampled_from(rules.PALETTE), min_size=1, unique=True).map(
            lambda cs: [c for c in rules.PALETTE if c in cs]
        ),
        "name": st.just("n"),
    },
)
operation = st.tuples(st.sampled_from(["create", "change", "complete", "delete"]), st.integers(0, 5), answers_strategy)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, max_size=40))
def test_deltas_always_sum_to_a_recomputation(ops: list[tuple[str, int, dict[str, Any]]]) -> None:
    responses: dict[int, tuple[dict[str, Any], bool]] = {}
    counters: Counter[str] = Counter()
    next_id = 0
    for kind, pick, answers in ops:
        ids = sorted(responses)
        target = ids[pick % len(ids)] if ids else None
        if kind == "create" or target is None:
            counters.update(rules.delta(None, False, answers, False))
            responses[next_id] = (answers, False)
            next_id += 1
        elif kind == "delete":
            old, done = responses.pop(target)
            counters.update(rules.delta(old, done, None, False))
        else:
            old, done = responses[target]
            new = (answers, done or kind == "complete")
            counters.update(rules.delta(old, done, *new))
            responses[target] = new
    expected = rules.recompute(responses.values())
    assert {k: counters[k] for k in rules.COUNTERS} == expected
