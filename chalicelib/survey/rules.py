"""The survey's rules: steps, fields, validation, completion and the summary's counters.

Pure: no AWS, no Chalice. The store applies what these functions compute.

Answers are a dict of field -> value holding only answered fields (an
unanswered or cleared field is absent). The summary is a set of integer
counters; `contribution(answers, completed)` is what one response adds to
them, so a change adds `delta(old, new)` and a delete subtracts the old
contribution. Summing contributions over every stored response must equal
the stored counters (the tests check exactly that).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from chalicelib import textcheck

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

# Syntactically valid for a survey: dot-atom local part, a domain of DNS labels with at least one dot.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + _LABEL + r"(?:\." + _LABEL + r")+"
)


class AnswerError(ValueError):
    """An answer that breaks a rule; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# --- validation ---------------------------------------------------------------


def _string(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise AnswerError(field, f"{LABELS[field]} must be text.")
    return value


def _bounded(field: str, value: str, maximum: int) -> str:
    if len(value) > maximum:
        raise AnswerError(field, f"{LABELS[field]} must be at most {maximum:,} characters.")
    return value


def clean_answer(field: str, value: Any) -> Any:
    """The value to store for `field`, or None to clear it. Raises AnswerError when a rule is broken.

    None and "" (for text, also whitespace only) clear an answer, and an empty colour list
    clears the colours: requiredness is checked when the survey is completed, not while typing.
    """
    if field not in LABELS:
        raise AnswerError(field, f"{field} is not a survey field.")
    if value is None:
        return None
    if field == "age":
        return _clean_age(value)
    if field == "colours":
        return _clean_colours(value)
    text = _string(field, value)
    if field == "gender":
        return _clean_gender(text)
    return _clean_text(field, text)


def _clean_age(value: Any) -> int | None:
    if isinstance(value, str) and value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not AGE_MIN <= value <= AGE_MAX:
        raise AnswerError("age", f"Age must be a whole number from {AGE_MIN} to {AGE_MAX}.")
    return value


def _clean_colours(value: Any) -> list[str] | None:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise AnswerError("colours", "Favourite colours must be a list of colour names.")
    unknown = [c for c in value if c not in PALETTE]
    if unknown:
        raise AnswerError("colours", f"{unknown[0]!r} is not one of the colours offered.")
    if len(set(value)) != len(value):
        raise AnswerError("colours", "Favourite colours must not repeat a colour.")
    return [c for c in PALETTE if c in value] or None  # palette order: one canonical form


def _clean_gender(text: str) -> str | None:
    if text == "":
        return None
    if text not in GENDERS:
        raise AnswerError("gender", "Gender must be one of: " + ", ".join(GENDERS) + ".")
    return text


# The free-text fields other than email, and their lengths.
_TEXT_MAX = {"name": NAME_MAX, "about": ABOUT_MAX, "address": ADDRESS_MAX, "book": BOOK_MAX}


def _clean_text(field: str, text: str) -> str | None:
    if field in ("name", "email"):
        text = text.strip()  # surrounding whitespace (a pasted tab or newline) is trimmed, not refused
    if textcheck.control_character(text, multiline=field in MULTILINE):
        allowed = " other than line breaks and tabs" if field in MULTILINE else ""
        raise AnswerError(field, f"{LABELS[field]} must not hold control characters{allowed}.")
    if text.strip() == "":
        return None
    if field == "email":
        return _clean_email(text)
    return _bounded(field, text, _TEXT_MAX[field])


def _clean_email(text: str) -> str:
    local = text.rsplit("@", 1)[0]
    if len(text) > EMAIL_MAX or len(local) > EMAIL_LOCAL_MAX or not _EMAIL.fullmatch(text):
        raise AnswerError("email", "Enter a valid email address, like name@example.com.")
    return text


def clean_step(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not FIRST_STEP <= value <= LAST_STEP:
        raise AnswerError("step", f"step must be an integer from {FIRST_STEP} to {LAST_STEP}.")
    return value


def apply_changes(answers: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`answers` with `changes` (raw client values) validated and applied; fields not named are kept."""
    result = dict(answers)
    for field, raw in changes.items():
        value = clean_answer(field, raw)
        if value is None:
            result.pop(field, None)
        else:
            result[field] = value
    return result


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
