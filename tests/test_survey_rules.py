"""The survey's pure rules (completion, summary deltas) and its answers' validation by the models (no database)."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.edge import contract
from chalicelib.survey import rules
from chalicelib.survey.models import AnswerBody, Answers
from chalicelib.survey.rules import AnswerError

pytestmark = pytest.mark.pure  # no database: runs once, not once per backend


def clean_answer(field: str, value: Any) -> Any:
    """The value the survey's model keeps for `field` (None: cleared)."""
    return getattr(AnswerBody.model_validate({field: value}), field)


def rejects(field: str, value: Any) -> str:
    """The 400's message for people, naming `field`."""
    with pytest.raises(ValidationError) as info:
        AnswerBody.model_validate({field: value})
    error = contract.invalid_input(info.value)
    assert error.field == field
    return error.message


def test_four_steps_of_two_fields() -> None:
    assert rules.STEPS == (("name", "email"), ("age", "about"), ("address", "gender"), ("book", "colours"))
    assert rules.REQUIRED == ("name", "email", "age", "about")
    assert [rules.step_of_field(f) for f in rules.FIELDS] == [1, 1, 2, 2, 3, 3, 4, 4]


def test_name_is_trimmed_and_1_to_100_characters() -> None:
    assert clean_answer("name", "  Ann Lee \t") == "Ann Lee"
    assert clean_answer("name", "x" * 100) == "x" * 100
    # The length is the text as sent, as the document's maxLength says; what is kept is trimmed.
    assert clean_answer("name", " " + "x" * 98 + " ") == "x" * 98
    rejects("name", "  " + "x" * 100 + "  ")
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
    assert clean_answer("age", 30.0) == 30  # JSON Schema's integer: a whole number, whatever its notation
    for bad in (2, 126, -1, 30.5, True, "30", "abc", [30]):
        rejects("age", bad)
    assert clean_answer("age", None) is None and clean_answer("age", "") is None


def test_text_bounds() -> None:
    assert clean_answer("about", "a" * 2000) == "a" * 2000
    rejects("about", "a" * 2001)
    assert clean_answer("address", "a" * 300) == "a" * 300
    rejects("address", "a" * 301)
    assert clean_answer("book", "b" * rules.BOOK_MAX)
    rejects("book", "b" * (rules.BOOK_MAX + 1))
    # Every text answer is trimmed around; what is inside (line breaks, spaces) is kept.
    assert clean_answer("about", "  keeps\nits  spaces \n") == "keeps\nits  spaces"


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
    with pytest.raises(ValidationError):
        Answers.model_validate({"complete": True})  # only an answer may submit


def test_messages_are_for_people() -> None:
    assert rejects("name", 5) == "Name must be text."
    assert rejects("about", "a" * 2001) == "About me must be at most 2,000 characters."
    assert rejects("name", "Ann\nLee") == "Name must not hold control characters."
    assert rejects("email", "ann@example") == "Enter a valid email address, like name@example.com."
    assert rejects("age", 2) == "Age must be a whole number from 3 to 125."
    assert rejects("colours", ["cyan"]) == "'cyan' is not one of the colours offered."
    assert rejects("step", 5) == "step must be an integer from 1 to 4."
    assert rejects("complete", "yes") == "complete must be true or false."


def test_step_and_complete() -> None:
    assert clean_answer("step", 4) == 4 and clean_answer("step", None) is None
    assert clean_answer("step", 2.0) == 2
    for bad in (0, 5, True, 2.5, "2"):
        rejects("step", bad)
    assert clean_answer("complete", True) is True
    rejects("complete", 1)


def test_changes_are_the_fields_sent_and_none_clears() -> None:
    body = AnswerBody.model_validate({"name": " Ann ", "email": "", "age": None, "step": 2})
    assert body.changes() == {"name": "Ann", "email": None, "age": None}
    assert rules.apply_changes({"email": "a@b.co", "age": 30, "book": "Emma"}, body.changes()) == {
        "name": "Ann",
        "book": "Emma",
    }


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
    answers: list[dict[str, Any]] = [
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


# --- wider properties -------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=10,
)
# Values the rules accept, next to anything JSON can carry.
plausible = {
    "name": st.text(max_size=110),
    "email": st.emails(),
    "age": st.integers(0, 130),
    "about": st.text(max_size=50),
    "address": st.text(max_size=50),
    "gender": st.sampled_from([*rules.GENDERS, ""]),
    "book": st.text(max_size=50),
    "colours": st.lists(st.sampled_from(rules.PALETTE), max_size=4),
}
field_and_value = st.sampled_from(rules.FIELDS).flatmap(
    lambda f: st.tuples(st.just(f), st.one_of(plausible[f], json_values))
)


@settings(max_examples=400, deadline=None)
@given(field_and_value)
def test_any_json_value_is_cleaned_or_rejected_with_its_field(case: tuple[str, Any]) -> None:
    # Never another exception (that would be a 500); a cleaned value is canonical (cleaning it again keeps it).
    field, value = case
    try:
        cleaned = clean_answer(field, value)
    except ValidationError as error:
        invalid = contract.invalid_input(error)
        assert invalid.field == field and invalid.message
        return
    if cleaned is not None:
        assert clean_answer(field, cleaned) == cleaned


@given(st.emails())
def test_syntactically_valid_emails_within_the_length_limits_are_accepted(email: str) -> None:
    local = email.rsplit("@", 1)[0]
    if len(email) <= rules.EMAIL_MAX and len(local) <= rules.EMAIL_LOCAL_MAX:
        assert clean_answer("email", email) == email
    else:
        rejects("email", email)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(answers_strategy, st.booleans()), max_size=30))
def test_summary_equals_brute_force_over_the_responses(responses: list[tuple[dict[str, Any], bool]]) -> None:
    summary = rules.summarise(rules.recompute(responses))
    assert summary.responses == len(responses) and summary.completed == sum(done for _, done in responses)
    ages = [a["age"] for a, _ in responses if "age" in a]
    if ages:
        # Exact mean to one decimal, halves up: floor(10 * mean + 1/2) / 10.
        assert summary.average_age == math.floor(Fraction(sum(ages), len(ages)) * 10 + Fraction(1, 2)) / 10
    else:
        assert summary.average_age is None
    genders = Counter(a["gender"] for a, _ in responses if "gender" in a)
    assert summary.genders == {g: genders[g] for g in rules.GENDERS}
    answered = sum(genders.values())
    assert summary.gender_ratio == ({g: round(genders[g] / answered, 3) for g in rules.GENDERS} if answered else {})
    chosen = Counter(c for a, _ in responses for c in a.get("colours", ()))
    assert summary.colours == {c: chosen[c] for c in rules.PALETTE}
    assert summary.top_colours == sorted(chosen.items(), key=lambda cn: (-cn[1], cn[0]))[:3]


@given(st.integers(0, 10**10))
def test_compact_count_never_overstates(n: int) -> None:
    shown = rules.compact_count(n)
    if n < 10_000:
        assert shown == str(n)
        return
    unit = {"k": 1_000, "M": 1_000_000}[shown[-1]]
    value = Fraction(shown[:-1]) * unit
    # Truncated to one decimal of its unit: at most n, and less than a tenth of a unit below it.
    assert value <= n < value + Fraction(unit, 10)
