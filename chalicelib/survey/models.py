"""What the survey and dashboard routes take and answer (the contract: chalicelib/edge/contract.py).

The answers' shape is checked here, with messages for people (the survey page shows them next to the field);
what is not about shape (completion, clearing, the summary) is in chalicelib/survey/rules.py.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from chalicelib.edge.contract import PARAM_INT, Reply, Sentence, Strict, Timestamp, integral
from chalicelib.pure import textcheck
from chalicelib.survey import listing, rules
from chalicelib.survey.rules import LABELS

Gender = Literal["female", "male", "non-binary", "prefer not to say"]
Colour = Literal["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
Clear = Literal[""]  # "" or null clears an answer

# Syntactically valid for a survey: dot-atom local part, a domain of DNS labels with at least one dot.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" + _LABEL + r"(?:\." + _LABEL + r")+"
)
# The free-text fields and their lengths (email's is checked with its syntax).
_TEXT_MAX = {"name": rules.NAME_MAX, "about": rules.ABOUT_MAX, "address": rules.ADDRESS_MAX, "book": rules.BOOK_MAX}


def _text(field: str) -> BeforeValidator:
    """A text answer, trimmed: null, blank or whitespace only clears it (None)."""

    def check(raw: Any) -> str | None:
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise Sentence(f"{LABELS[field]} must be text.")
        # Surrounding whitespace (a pasted tab or newline, a trailing space) is trimmed, not refused.
        value = raw.strip()
        if textcheck.control_character(value, multiline=field in rules.MULTILINE):
            allowed = " other than line breaks and tabs" if field in rules.MULTILINE else ""
            raise Sentence(f"{LABELS[field]} must not hold control characters{allowed}.")
        if value.strip() == "":
            return None
        # Lengths count the text as sent, trimmed whitespace too: the document's maxLength can say only that.
        if field == "email":
            local = value.rsplit("@", 1)[0]
            if len(raw) > rules.EMAIL_MAX or len(local) > rules.EMAIL_LOCAL_MAX or not _EMAIL.fullmatch(value):
                raise Sentence("Enter a valid email address, like name@example.com.")
        elif len(raw) > _TEXT_MAX[field]:
            raise Sentence(f"{LABELS[field]} must be at most {_TEXT_MAX[field]:,} characters.")
        return value

    return BeforeValidator(check)


def _age(value: Any) -> int | None:
    value = integral(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not rules.AGE_MIN <= value <= rules.AGE_MAX:
        raise Sentence(f"Age must be a whole number from {rules.AGE_MIN} to {rules.AGE_MAX}.")
    return value


def _gender(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Sentence("Gender must be text.")
    if value not in rules.GENDERS:
        raise Sentence("Gender must be one of: " + ", ".join(rules.GENDERS) + ".")
    return value


def _colours(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise Sentence("Favourite colours must be a list of colour names.")
    unknown = [c for c in value if c not in rules.PALETTE]
    if unknown:
        raise Sentence(f"{unknown[0]!r} is not one of the colours offered.")
    if len(set(value)) != len(value):
        raise Sentence("Favourite colours must not repeat a colour.")
    return [c for c in rules.PALETTE if c in value] or None  # palette order: one canonical form; [] clears


def _step(value: Any) -> int | None:
    value = integral(value)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not rules.FIRST_STEP <= value <= rules.LAST_STEP:
        raise Sentence(f"step must be an integer from {rules.FIRST_STEP} to {rules.LAST_STEP}.")
    return value


def _complete(value: Any) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise Sentence("complete must be true or false.")
    return value


# What `_text` accepts, as patterns: surrounding whitespace (trimmed), then the field's kind of text. An email's local
# part (before the @) is at most EMAIL_LOCAL_MAX characters: a run of more, before an @, is refused (`not`).
_LINE = {"pattern": textcheck.TRIMMED_LINE_PATTERN}
_LINES = {"pattern": textcheck.TRIMMED_LINES_PATTERN}
_TRIM = f"[{textcheck.TRIMMED}]*"
_EMAIL_TEXT = {
    "pattern": f"^{_TRIM}(?:{_EMAIL.pattern})?{_TRIM}$",
    "not": {"type": "string", "pattern": f"[^@{textcheck.TRIMMED}]{{{rules.EMAIL_LOCAL_MAX + 1}}}@"},
}

# Each answer's schema is what it accepts; its validator gives the message a person reads. None means cleared.
Name = Annotated[
    str | None,
    Field(max_length=rules.NAME_MAX, description="1 to 100 characters (trimmed)", json_schema_extra=_LINE),
    _text("name"),
]
Email = Annotated[
    str | None,
    Field(
        max_length=rules.EMAIL_MAX, description="a syntactically valid address (trimmed)", json_schema_extra=_EMAIL_TEXT
    ),
    _text("email"),
]
Age = Annotated[Annotated[int, Field(ge=rules.AGE_MIN, le=rules.AGE_MAX)] | Clear | None, BeforeValidator(_age)]
About = Annotated[
    str | None,
    Field(max_length=rules.ABOUT_MAX, description="tab and line breaks allowed (trimmed)", json_schema_extra=_LINES),
    _text("about"),
]
Address = Annotated[
    str | None,
    Field(max_length=rules.ADDRESS_MAX, description="tab and line breaks allowed (trimmed)", json_schema_extra=_LINES),
    _text("address"),
]
Book = Annotated[
    str | None, Field(max_length=rules.BOOK_MAX, description="trimmed", json_schema_extra=_LINE), _text("book")
]
Colours = Annotated[
    Annotated[
        list[Colour],
        Field(
            max_length=len(rules.PALETTE), description="distinct; [] clears", json_schema_extra={"uniqueItems": True}
        ),
    ]
    | None,
    BeforeValidator(_colours),
]
Step = Annotated[Annotated[int, Field(ge=rules.FIRST_STEP, le=rules.LAST_STEP)] | None, BeforeValidator(_step)]


class Answers(Strict):
    """Any subset of the 8 fields; null or "" clears one (and [] the colours). Unknown fields are refused."""

    name: Name = None
    email: Email = None
    age: Age = None
    about: About = None
    address: Address = None
    gender: Annotated[Gender | Clear | None, BeforeValidator(_gender)] = None
    book: Book = None
    colours: Colours = None

    def changes(self) -> dict[str, Any]:
        """The answers the client sent, validated: field -> value, None to clear it."""
        return {field: getattr(self, field) for field in rules.FIELDS if field in self.model_fields_set}


class StartBody(Answers):
    step: Step = None


class AnswerBody(Answers):
    step: Step = None
    complete: Annotated[bool | None, BeforeValidator(_complete)] = Field(
        default=None, description="true submits: needs step 4 and name, email, age and about; then nothing changes"
    )


class ResponsePath(Strict):
    response_id: Annotated[str, Field(pattern=r"^[0-9a-f]{28}$")]


class StoredAnswers(Reply):
    name: str | None
    email: str | None
    age: int | None
    about: str | None
    address: str | None
    gender: str | None
    book: str | None
    colours: list[str] | None


class SurveyResponse(Reply):
    id: str
    answers: StoredAnswers
    step: int
    completed: bool
    created_at: Timestamp | None
    updated_at: Timestamp | None
    completed_at: Timestamp | None


class Started(SurveyResponse):
    token: str | None = Field(
        default=None, description="the response's token: absent when the client sent its own in X-Response-Token"
    )


Sortable = Literal[
    "name", "email", "age", "about", "address", "gender", "book", "colours", "completed", "step", "created_at",
    "updated_at",
]  # fmt: skip


def _blank_is_default(default: str) -> BeforeValidator:
    return BeforeValidator(lambda value: default if value == "" else value)


class DashboardQuery(Strict):
    # An empty `sort` or `order` (`?sort=`) is the default, as it always was.
    sort: Annotated[Sortable, _blank_is_default("updated_at")] = "updated_at"
    order: Annotated[Literal["asc", "desc"], _blank_is_default("desc")] = "desc"
    size: Annotated[int, Field(default=25, ge=1, le=listing.PAGE_SIZE_MAX), PARAM_INT]
    page: Annotated[
        int,
        Field(
            default=1,
            ge=1,
            le=listing.PAGE_MAX,
            description="without a cursor, the page to read (deeper pages read the keys before them first); "
            "with one, only its number as the client counts",
        ),
        PARAM_INT,
    ]
    cursor: Annotated[
        str | None,
        Field(default=None, description="opaque: the `cursor` of the previous answer, for the page after it"),
    ]


class ColourCount(Reply):
    colour: str
    count: int


class Summary(Reply):
    responses: int
    responses_display: str
    completed: int
    average_age: float | None
    genders: dict[str, int]
    gender_ratio: dict[str, float]
    top_colours: list[ColourCount]
    updated_at: Timestamp | None
    version: int


class Row(StoredAnswers):
    """A dashboard row: the answers, flat, and the response's state."""

    id: str
    completed: bool
    step: int
    created_at: Timestamp | None
    updated_at: Timestamp | None


class DashboardPage(Reply):
    summary: Summary
    responses: list[Row]
    sort: str
    order: str
    size: int
    page: int
    pages: int
    total: int
    cursor: str | None = Field(description="the next page's cursor (`&cursor=`); null on the last page")
    truncated: bool = Field(description="always false: every response is listed (kept for older clients)")
    window: int = Field(description="the number of responses the table covers: all of them (kept for older clients)")


class Deleted(Reply):
    id: str
    deleted: Literal[True]
