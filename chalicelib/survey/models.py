"""What the survey and dashboard routes take and answer (the contract: chalicelib/contract.py).

The answers' rules (and their messages) are in chalicelib/survey/rules.py; these models describe them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from chalicelib.contract import Reply, Strict, Timestamp
from chalicelib.survey import rules

Gender = Literal["female", "male", "non-binary", "prefer not to say"]
Colour = Literal["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"]
Step = Annotated[int, Field(ge=rules.FIRST_STEP, le=rules.LAST_STEP)]
Clear = Literal[""]  # "" or null clears an answer


class Answers(Strict):
    """Any subset of the 8 fields; null or "" clears one."""

    name: Annotated[str, Field(max_length=rules.NAME_MAX, description="1 to 100 characters (trimmed)")] | None = None
    email: Annotated[str, Field(max_length=rules.EMAIL_MAX, description="a syntactically valid address")] | None = None
    age: Annotated[int, Field(ge=rules.AGE_MIN, le=rules.AGE_MAX)] | Clear | None = None
    about: Annotated[str, Field(max_length=rules.ABOUT_MAX, description="tab and line breaks allowed")] | None = None
    address: Annotated[str, Field(max_length=rules.ADDRESS_MAX, description="tab and line breaks allowed")] | None = (
        None
    )
    gender: Gender | Clear | None = None
    book: Annotated[str, Field(max_length=rules.BOOK_MAX)] | None = None
    colours: Annotated[list[Colour], Field(max_length=len(rules.PALETTE), description="distinct")] | Clear | None = None


class StartBody(Answers):
    step: Step | None = None


class AnswerBody(Answers):
    step: Step | None = None
    complete: bool | None = Field(
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


class DashboardQuery(Strict):
    sort: Sortable = "updated_at"
    order: Literal["asc", "desc"] = "desc"
    size: Annotated[int, Field(default=25, ge=1, le=200)]
    page: Annotated[int, Field(default=1, ge=1, le=2000)]


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
    truncated: bool = Field(description="the table covers only the newest `window` responses")
    window: int


class Deleted(Reply):
    id: str
    deleted: Literal[True]
