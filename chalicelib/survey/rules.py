"""The survey's rules: steps, fields, their bounds, changes, completion and the summary's counters.

The answers' shape (types, lengths, syntax) is checked by the models in chalicelib/survey/models.py.

Pure: no AWS, no Chalice. The store applies what these functions compute.

Answers are a dict of field -> value holding only answered fields (an
unanswered or cleared field is absent). The summary is a set of integer
counters; `contribution(answers, completed)` is what one response adds to
them, so a change adds `delta(old, new)` and a delete subtracts the old
contribution. Summing contributions over every stored response must equal
the stored counters (the tests check exactly that).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

STEPS: tuple[tuple[str, str], ...] = (
    ("name", "email"),
    ("age", "about"),
    ("address", "gender"),
    ("book", "colours"),
)
FIELDS: tuple[str, ...] = tuple(field for step in STEPS for field in step)
FIRST_STEP, LAST_STEP = 1, len(STEPS)
REQUIRED: tuple[str, ...] = STEPS[0] + STEPS[1]  # steps 1-2 are required, 3-4 optional

GENDERS: tuple[str, ...] = ("female", "male", "non-binary", "prefer not to say")
PALETTE: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")

NAME_MAX = 100
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
AGE_MIN, AGE_MAX = 3, 125
ABOUT_MAX = 2000
ADDRESS_MAX = 300
BOOK_MAX = 200  # the issue sets no bound for the favourite book; ours
MULTILINE: tuple[str, ...] = ("about", "address")  # may hold line breaks and tabs

LABELS = {
    "name": "Name",
    "email": "Email",
    "age": "Age",
    "about": "About me",
    "address": "Address",
    "gender": "Gender",
    "book": "Favourite book",
    "colours": "Favourite colours",
}


class AnswerError(ValueError):
    """An answer that breaks a rule; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- changes and completion -------------------------------------------------


def apply_changes(answers: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`answers` with `changes` (validated values, see survey/models.py) applied: None clears a field; fields not
    named are kept."""
    result = dict(answers)
    for field, value in changes.items():
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    return result


def email_identity(email: str | None) -> str | None:
    """What makes two addresses the same respondent: trimmed and case-insensitive, as a SHA-256 (no address in a
    key). None when there is no email."""
    if email is None:
        return None
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def missing_required(answers: Mapping[str, Any]) -> str | None:
    """The first required field (in survey order) without an answer, or None."""
    return next((field for field in REQUIRED if field not in answers), None)


def check_completion(answers: Mapping[str, Any], step: int) -> None:
    """A response may be completed only on the last step with every required answer given."""
    missing = missing_required(answers)
    if missing is not None:
        raise AnswerError(missing, f"{LABELS[missing]} is required to finish the survey.")
    if step != LAST_STEP:
        raise AnswerError("step", f"The survey can only be finished on step {LAST_STEP}.")


def step_of_field(field: str) -> int:
    return next(i for i, step in enumerate(STEPS, start=FIRST_STEP) if field in step)


# --- the summary's counters ---------------------------------------------------

RESPONSES = "responses"
COMPLETED = "completed"
AGE_SUM = "age_sum"
AGE_COUNT = "age_count"


def gender_counter(gender: str) -> str:
    return "gender_" + gender.replace(" ", "_").replace("-", "_")


def colour_counter(colour: str) -> str:
    return "colour_" + colour


COUNTERS: tuple[str, ...] = (
    RESPONSES,
    COMPLETED,
    AGE_SUM,
    AGE_COUNT,
    *(gender_counter(g) for g in GENDERS),
    *(colour_counter(c) for c in PALETTE),
)


def contribution(answers: Mapping[str, Any] | None, completed: bool = False) -> Counter[str]:
    """What one response adds to the summary's counters (None: no response at all)."""
    counts: Counter[str] = Counter()
    if answers is None:
        return counts
    counts[RESPONSES] += 1
    if completed:
        counts[COMPLETED] += 1
    if "age" in answers:
        counts[AGE_SUM] += int(answers["age"])
        counts[AGE_COUNT] += 1
    if "gender" in answers:
        counts[gender_counter(answers["gender"])] += 1
    for colour in answers.get("colours", ()):
        counts[colour_counter(colour)] += 1
    return counts


def delta(
    old: Mapping[str, Any] | None, old_completed: bool, new: Mapping[str, Any] | None, new_completed: bool
) -> dict[str, int]:
    """The counter changes that take the summary from `old` to `new` (None: absent); zeros omitted."""
    before, after = contribution(old, old_completed), contribution(new, new_completed)
    changes = {name: after[name] - before[name] for name in COUNTERS}
    return {name: change for name, change in changes.items() if change}


def recompute(responses: Iterable[tuple[Mapping[str, Any], bool]]) -> dict[str, int]:
    """Every counter, from scratch, over (answers, completed) pairs."""
    total: Counter[str] = Counter()
    for answers, completed in responses:
        total.update(contribution(answers, completed))
    return {name: total[name] for name in COUNTERS}


@dataclass(frozen=True)
class Summary:
    responses: int
    completed: int
    average_age: float | None  # to 1 decimal
    genders: dict[str, int]  # every gender, in GENDERS order
    gender_ratio: dict[str, float]  # share of answered genders, 0..1 (3 decimals); empty when none answered
    top_colours: list[tuple[str, int]]  # up to 3, most chosen first, ties by name; only chosen colours
    colours: dict[str, int]


def summarise(counters: Mapping[str, int]) -> Summary:
    def get(name: str) -> int:
        return int(counters.get(name, 0))

    age_count = get(AGE_COUNT)
    average = None if age_count == 0 else mean_to_one_decimal(get(AGE_SUM), age_count)
    genders = {g: get(gender_counter(g)) for g in GENDERS}
    answered = sum(genders.values())
    ratio = {g: round(n / answered, 3) for g, n in genders.items()} if answered else {}
    colours = {c: get(colour_counter(c)) for c in PALETTE}
    top = sorted(((c, n) for c, n in colours.items() if n > 0), key=lambda cn: (-cn[1], cn[0]))[:3]
    return Summary(get(RESPONSES), get(COMPLETED), average, genders, ratio, top, colours)


def mean_to_one_decimal(total: int, count: int) -> float:
    """total / count to 1 decimal, computed exactly, halves rounded up (32.25 -> 32.3)."""
    return float((Decimal(total) / Decimal(count)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def compact_count(n: int) -> str:
    """How the dashboard shows the number of responses: exact below 10,000, then 10k, 12.3k, 1.2M."""
    if n < 10_000:
        return str(n)
    if n < 1_000_000:
        value, unit = n / 1000, "k"
    else:
        value, unit = n / 1_000_000, "M"
    text = f"{int(value * 10) / 10:.1f}".removesuffix(".0")  # truncate: 12,399 shows 12.3k, never 12.4k
    return text + unit
