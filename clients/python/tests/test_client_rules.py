"""The client's pure rules: backoff, Retry-After, batch sizes, splitting rejections, errors, URL paths."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from livestats_client import AuthError, InvalidRequest, NotFound, ServerError, Throttled, Unavailable
from livestats_client.client import format_level, hit_url_path, segment
from livestats_client.errors import error_from_answer, parse_retry_after
from livestats_client.models import Rejection
from livestats_client.retry import RetryPolicy, body_size, encoded_size, fits, split_rejections

policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_delay=st.floats(0, 10),
    max_delay=st.floats(0, 100),
)


class Highest(random.Random):
    """uniform(a, b) at its upper end: the ceiling of each delay."""

    def uniform(self, a: float, b: float) -> float:
        return b


@given(policies, st.integers(1, 100), st.randoms(use_true_random=False))
def test_full_jitter_stays_under_a_doubling_ceiling(policy: RetryPolicy, attempt: int, rng: random.Random) -> None:
    delay = policy.delay(attempt, None, rng)
    assert 0 <= delay <= min(policy.max_delay, policy.base_delay * 2 ** (attempt - 1))


def test_the_ceiling_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=3.0)
    assert [policy.delay(k, None, Highest()) for k in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


@given(policies, st.integers(1, 100), st.floats(0, 1000), st.randoms(use_true_random=False))
def test_retry_after_is_a_floor(policy: RetryPolicy, attempt: int, retry_after: float, rng: random.Random) -> None:
    delay = policy.delay(attempt, retry_after, rng)
    assert delay >= retry_after
    assert delay <= max(retry_after, policy.max_delay)


def test_retry_after_header() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 1 ") == 1.0
    assert parse_retry_after("-1") is None
    assert parse_retry_after("soon") is None
    when = datetime(2026, 12, 7, 14, 0, 0, tzinfo=UTC)
    http_date = format_datetime(when, usegmt=True)  # "Mon, 07 Dec 2026 14:00:00 GMT"
    assert parse_retry_after(http_date, now=when.timestamp() - 3) == 3.0
    assert parse_retry_after(http_date, now=when.timestamp() + 60) == 0.0


@given(st.lists(st.integers(1, 300), max_size=40), st.integers(1, 30), st.integers(13, 3000))
def test_a_batch_is_the_longest_prefix_within_both_limits(sizes: list[int], max_events: int, max_bytes: int) -> None:
    n = fits(sizes, max_events, max_bytes)
    assert 0 <= n <= min(len(sizes), max_events)
    if n:
        assert body_size(sizes[:n]) <= max_bytes
    if n < min(len(sizes), max_events):
        assert body_size(sizes[: n + 1]) > max_bytes


events = st.one_of(
    st.fixed_dictionaries({"type": st.just("hit"), "path": st.text(max_size=50).map(lambda p: "/api/" + p)}),
    st.fixed_dictionaries(
        {"type": st.just("metric"), "key": st.from_regex(r"[a-z:]{1,10}", fullmatch=True), "value": st.integers()}
    ),
    st.fixed_dictionaries(
        {"type": st.just("value"), "stream": st.just("s"), "value": st.floats(allow_nan=False, allow_infinity=False)}
    ),
)


@given(st.lists(events, min_size=1, max_size=20))
def test_body_size_is_the_bytes_the_client_sends(batch: list[dict[str, object]]) -> None:
    sent = json.dumps({"events": batch}, separators=(",", ":"), allow_nan=False).encode()
    assert body_size([encoded_size(e) for e in batch]) == len(sent)


def test_the_real_limits() -> None:
    assert fits([100] * 600) == 500  # the endpoint's maximum per request
    two_kib = 2048
    n = fits([two_kib] * 200)
    assert body_size([two_kib] * n) <= 256 * 1024 < body_size([two_kib] * (n + 1))
    assert fits([300 * 1024]) == 0


@given(st.integers(1, 50).flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1)), st.data())))
def test_rejections_split_into_resent_and_final(case: tuple[int, set[int], st.DataObject]) -> None:
    count, indexes, data = case
    codes = {
        i: data.draw(st.sampled_from(["stream_unavailable", "invalid_input", "window_not_found"])) for i in indexes
    }
    rejected = [Rejection(i, codes[i], "m", f"events[{i}]") for i in sorted(indexes)]
    resend, final = split_rejections(count, rejected)
    assert resend == [i for i in sorted(indexes) if codes[i] == "stream_unavailable"]
    assert [r.index for r in final] == [i for i in sorted(indexes) if codes[i] != "stream_unavailable"]


def test_a_rejection_outside_the_request_is_an_error() -> None:
    with pytest.raises(ValueError):
        split_rejections(2, [Rejection(2, "invalid_input", "m", None)])


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequest),
        (401, AuthError),
        (403, AuthError),
        (404, NotFound),
        (409, InvalidRequest),
        (413, InvalidRequest),
        (429, Throttled),
        (500, ServerError),
        (503, Unavailable),
        (504, Unavailable),
    ],
)
def test_error_classes(status: int, kind: type[Exception]) -> None:
    body = {"error": {"code": "some_code", "message": "says why", "field": "value"}}
    error = error_from_answer(status, body, 5.0)
    assert type(error) is kind
    assert (error.status, error.code, error.message, error.field, error.retry_after) == (
        status,
        "some_code",
        "says why",
        "value",
        5.0,
    )


def test_an_answer_not_in_the_error_shape() -> None:
    error = error_from_answer(502, "<html>Bad gateway</html>", None)
    assert isinstance(error, Unavailable)
    assert (error.code, error.field) == ("http_502", None)


def test_path_parameters_are_percent_encoded() -> None:
    assert segment("a.b-c_d") == "a.b-c_d"
    assert segment("k:1") == "k%3A1"
    assert segment("a/b c") == "a%2Fb%20c"
    # A hit's path keeps its slashes; the rest is encoded, so the service decodes the path back as given.
    assert hit_url_path("/api/a b/%41?x") == "/api/a%20b/%2541%3Fx"
    assert hit_url_path("/api") == "/api"
    with pytest.raises(ValueError):
        hit_url_path("/checkout")


@given(st.floats(0, 1))
def test_quantile_levels_are_plain_decimals(q: float) -> None:
    text = format_level(q)
    assert "e" not in text.lower()
    assert float(text) == q


def test_quantile_levels() -> None:
    assert [format_level(q) for q in (0.5, 0.999, 1, 0, 1e-05)] == ["0.5", "0.999", "1.0", "0.0", "0.00001"]
