"""The stored summary always equals a recomputation from the stored responses (both backends)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.storage import keys
from chalicelib.survey import rules
from chalicelib.survey.store import SurveyStore
from tests.conftest import TABLE, Api, partition_items
from tests.test_survey_api import ADMIN, FULL, patch, stored_items, survey  # noqa: F401 (fixture)


def stored_counters(dynamodb: Any) -> dict[str, int]:
    """The sum of the summary's shards, read here independently of the store."""
    shards = partition_items(dynamodb, keys.SURVEY_SUMMARY_PK)
    assert len(shards) <= keys.SURVEY_SUMMARY_SHARDS
    return {name: sum(int(float(item[name]["N"])) for item in shards if name in item) for name in rules.COUNTERS}


def recomputed(dynamodb: Any) -> dict[str, int]:
    store = SurveyStore(dynamodb, TABLE)
    return rules.recompute((store._answers(item), item["completed"]["BOOL"]) for item in stored_items(dynamodb))


def assert_consistent(api: Api, dynamodb: Any) -> dict[str, int]:
    counters = stored_counters(dynamodb)
    assert counters == recomputed(dynamodb)
    # And what the dashboard shows is derived from exactly those counters.
    shown = json.loads(api.get("/dashboard/data", headers=ADMIN).body)["summary"]
    summary = rules.summarise(counters)
    assert shown["responses"] == summary.responses == len(stored_items(dynamodb))
    assert shown["completed"] == summary.completed and shown["average_age"] == summary.average_age
    # Every address held by a response is claimed by exactly that response, and no claim is left over.
    claims = partition_items(dynamodb, keys.SURVEY_EMAILS_PK)
    held = {
        keys.survey_email_sk(rules.email_identity(item["email"]["S"]) or ""): item["id"]["S"]
        for item in stored_items(dynamodb)
        if "email" in item
    }
    assert {claim["sk"]["S"]: claim["response_id"]["S"] for claim in claims} == held
    assert len(held) == sum("email" in item for item in stored_items(dynamodb))
    return counters


def random_answers(rng: random.Random) -> dict[str, Any]:
    """Some valid answers, some clears, now and then an invalid one (which must change nothing)."""
    choices: dict[str, list[Any]] = {
        "name": ["Ann", " Bo ", "", None, "x" * 101],
        "email": ["a@b.co", "ann@example.com", "", "bad@"],
        "age": [3, 30, 31, 125, None, 126, "40"],
        "about": ["hi", "", "a" * 2001],
        "address": ["1 High St", ""],
        "gender": [*rules.GENDERS, "", "other"],
        "book": ["Dune", ""],
        "colours": [[], ["red"], ["blue", "red"], ["white", "black", "pink"], ["red", "red"]],
    }
    fields = rng.sample(list(choices), rng.randint(0, 4))
    body: dict[str, Any] = {field: rng.choice(choices[field]) for field in fields}
    if rng.random() < 0.5:
        body["step"] = rng.randint(1, 4)
    return body


@settings(max_examples=8, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), length=st.integers(1, 40))
def test_summary_equals_recomputation_after_random_sequences(
    survey: Api,  # noqa: F811
    dynamodb: Any,
    seed: int,
    length: int,
) -> None:
    # The table is shared by every example: the invariant must hold over all of them together.
    rng = random.Random(seed)
    tokens: dict[str, dict[str, str]] = {}
    for _ in range(length):
        action = rng.choice(["create", "change", "change", "change", "complete", "delete"])
        if action == "create" or not tokens:
            response = survey.post("/survey/responses", random_answers(rng))
            assert response.status_code in (201, 400, 409), response.body  # 409: the email is taken
            if response.status_code == 201:
                created = json.loads(response.body)
                tokens[created["id"]] = {"X-Response-Token": created["token"]}
            continue
        rid = rng.choice(sorted(tokens))
        if action == "change":
            status = patch(survey, rid, random_answers(rng), tokens[rid]).status_code
            assert status in (200, 400, 409)
        elif action == "complete":
            body = {**FULL, "step": 4, "complete": True} if rng.random() < 0.7 else {"complete": True}
            assert patch(survey, rid, body, tokens[rid]).status_code in (200, 400, 409)
        else:
            assert survey.delete(f"/dashboard/responses/{rid}", headers=ADMIN).status_code == 200
            del tokens[rid]
    assert_consistent(survey, dynamodb)


@pytest.mark.heavy
def test_concurrent_tabs_lose_no_answer_and_keep_the_summary(survey: Api, dynamodb: Any) -> None:  # noqa: F811
    """Eight writers on one response (two tabs, many times over) plus writers on their own responses."""
    shared = json.loads(survey.post("/survey/responses").body)
    shared_token = {"X-Response-Token": shared["token"]}
    fields: dict[str, Callable[[int], Any]] = {
        "name": lambda i: f"Name {i}",
        "email": lambda i: f"p{i}@example.com",
        "age": lambda i: 3 + i,
        "about": lambda i: f"about {i}",
        "address": lambda i: f"{i} High St",
        "gender": lambda i: rules.GENDERS[i % 4],
        "book": lambda i: f"Book {i}",
        "colours": lambda i: [rules.PALETTE[i % 10]],
    }

    def writer(field: str) -> None:
        own = json.loads(survey.post("/survey/responses").body)
        for i in range(15):
            assert patch(survey, shared["id"], {field: fields[field](i)}, shared_token).status_code == 200
            body = {field: fields[field](i + 100)}  # other values than the shared response's (emails are unique)
            assert patch(survey, own["id"], body, {"X-Response-Token": own["token"]}).status_code == 200

    with ThreadPoolExecutor(len(fields)) as pool:
        list(pool.map(writer, fields))
    final = json.loads(survey.get(f"/survey/responses/{shared['id']}", headers=shared_token).body)["answers"]
    assert final == {field: make(14) for field, make in fields.items()}
    counters = assert_consistent(survey, dynamodb)
    assert counters[rules.RESPONSES] == 1 + len(fields)
    # 1 + 8 starts and 8 * 15 * 2 saves, each adding 1 to the version of one shard: the ETag moved every time.
    shown = json.loads(survey.get("/dashboard/data", headers=ADMIN).body)["summary"]
    assert shown["version"] == 1 + len(fields) + len(fields) * 15 * 2
