"""The document's patterns say what the validators accept: the same strings, one by one (pure)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, create_model

from chalicelib.edge import contract, openapi
from chalicelib.pure import textcheck
from chalicelib.streams.models import ResetBody
from chalicelib.survey.models import AnswerBody

pytestmark = pytest.mark.pure

# Characters each rule is about, mixed with any others: controls, whitespace that str.strip() trims, line breaks.
EDGES = "\x00\t\n\r\x0b\x0c\x1c\x1f \x7f\x85\x9f\xa0\u2028\u3000a@.-_é"
# No lone surrogates: no JSON Schema string holds one, and the service refuses them before any model
# (tests/test_hostile_input.py).
TEXT = st.text(alphabet=st.sampled_from(EDGES) | st.characters(exclude_categories=["Cs"]), max_size=30)
ANSWERS = AnswerBody.model_json_schema()["properties"]


def documented(pattern: str, text: str) -> bool:
    """A JSON Schema pattern's verdict (ECMA-262: `$` is the very end; Python's `$` also matches before a last
    newline, so the anchored pattern is matched whole instead)."""
    assert pattern.startswith("^") and pattern.endswith("$")
    return re.fullmatch(pattern[1:-1], text) is not None


def accepted(model: Any, data: dict[str, Any]) -> bool:
    try:
        model.model_validate(data)
    except ValidationError:
        return False
    return True


@settings(max_examples=300, deadline=None)
@given(TEXT)
@example("a\n")
@example("a\x85b")
def test_a_stream_user_is_what_its_pattern_says(text: str) -> None:
    assert accepted(ResetBody, {"user": text}) == (
        documented(textcheck.ONE_LINE_PATTERN, text) and 1 <= len(text) <= 64
    )


@settings(max_examples=300, deadline=None)
@given(TEXT, st.sampled_from(["name", "book", "about", "address"]))
@example(" a\n", "name")
@example("a\rb", "about")
@example("a\r\nb\t", "about")
@example("\x1ca\x85", "book")
def test_a_survey_text_is_what_its_pattern_says(text: str, field: str) -> None:
    schema = ANSWERS[field]
    assert accepted(AnswerBody, {field: text}) == documented(schema["pattern"], text)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.emails().map(lambda address: f" {address}\n"),
        st.from_regex(r"[a-z]{60,70}@example\.com", fullmatch=True),
        TEXT,
    )
)
@example("a" * 64 + "@example.com")
@example("a" * 65 + "@example.com")
@example(" \t" + "a" * 64 + "@example.com")
def test_a_survey_email_is_what_its_schema_says(text: str) -> None:
    schema = ANSWERS["email"]
    too_long_local = re.search(schema["not"]["pattern"], text) is not None
    fits = documented(schema["pattern"], text) and not too_long_local and len(text) <= 254
    assert accepted(AnswerBody, {"email": text}) == fits


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.lists(st.from_regex(r"[01]?\.?[0-9]{0,18}", fullmatch=True), min_size=1, max_size=22).map(",".join),
        st.text(alphabet="01.5,9e-", max_size=30),
    )
)
@example("1.0000")
@example("1.5")
@example("0" * 200)
def test_quantile_levels_are_what_their_pattern_says(text: str) -> None:
    try:
        contract.quantile_levels(text)
        valid = True
    except ValueError:
        valid = False
    assert valid == documented(contract.QUANTILE_LEVELS_PATTERN, text)


def test_two_models_of_one_name_are_refused() -> None:
    # Components are named by model: two models of one name would share one schema, the last one written (as the
    # moving average's value once carried the sums' bounds).
    first = create_model("Twin", x=(int, ...), __base__=contract.Strict)
    second = create_model("Twin", y=(int, ...), __base__=contract.Strict)
    schemas: dict[str, Any] = {}
    openapi._schema_ref(first, schemas, "validation")
    openapi._schema_ref(first, schemas, "validation")  # the same model again is fine
    with pytest.raises(TypeError, match="two different models are named Twin"):
        openapi._schema_ref(second, schemas, "validation")
