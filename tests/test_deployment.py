"""The deployment template: Chalice's output merged with the table defined in chalicelib/table.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib import table
from devtools import cfn

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["dev", "prod"]


@pytest.mark.parametrize("stage", STAGES)
def test_resources_come_from_the_one_table_definition(stage: str) -> None:
    resource = cfn.resources(stage)["Resources"]["Table"]["Properties"]
    request = table.create_table_request(resource["TableName"])
    for key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode"):
        assert resource[key] == request[key]
    assert resource["TimeToLiveSpecification"] == {"AttributeName": table.TTL_ATTRIBUTE, "Enabled": True}


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_exactly_the_stage_table(stage: str) -> None:
    policy = json.loads((ROOT / ".chalice" / f"policy-{stage}.json").read_text())
    name = cfn.stage_table_name(stage)
    dynamo = next(s for s in policy["Statement"] if any(a.startswith("dynamodb:") for a in s["Action"]))
    assert dynamo["Resource"] == [f"arn:aws:dynamodb:*:*:table/{name}", f"arn:aws:dynamodb:*:*:table/{name}/index/*"]
    assert not any(action.endswith("*") for action in dynamo["Action"])


def test_chalice_package_merges_the_table_and_cfn_lint_accepts_it(tmp_path: Path, backend: str) -> None:
    if backend != "moto":
        pytest.skip("backend-independent: runs once, in the moto pass")
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps(cfn.resources("prod")))
    out = tmp_path / "out"
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    bin_dir = Path(sys.executable).parent
    subprocess.run(
        [bin_dir / "chalice", "package", "--stage", "prod", "--pkg-format", "cloudformation",
         "--merge-template", resources, out],
        cwd=ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    template = json.loads((out / "sam.json").read_text())
    assert template["Resources"]["Table"]["Properties"]["TableName"] == "livestats-prod"
    handler_env = template["Resources"]["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert handler_env["TABLE_NAME"] == "livestats-prod"

    # The events stream, its dead-letter queue, and the consumer's mapping as Chalice generated it plus ours.
    resources = template["Resources"]
    assert resources["EventsStream"]["Type"] == "AWS::Kinesis::Stream"
    assert resources["EventsStream"]["Properties"]["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}
    assert resources["EventsDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"
    consumer = resources["ApplyEvents"]["Properties"]
    assert consumer["Handler"] == "chalicelib.ingest.consumer.apply_events"
    assert consumer["Role"] == {"Fn::GetAtt": ["ApplyEventsRole", "Arn"]}
    assert consumer["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"] == {"Ref": "EventsDeadLetterQueue"}
    assert consumer["Environment"]["Variables"]["TABLE_NAME"] == "livestats-prod"  # merged, not replaced
    (mapping,) = consumer["Events"].values()
    assert mapping["Type"] == "Kinesis"
    assert mapping["Properties"] == {
        "Stream": {"Fn::Sub": "${EventsStream.Arn}"},  # Chalice's name-built ARN replaced: it waits for the stream
        "BatchSize": 1000,
        "StartingPosition": "TRIM_HORIZON",
        "MaximumBatchingWindowInSeconds": 1,
        "BisectBatchOnFunctionError": True,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 10,
        "MaximumRecordAgeInSeconds": 3600,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}}},
    }
    assert resources["APIHandler"]["Properties"]["Role"] == {"Fn::GetAtt": ["ApiHandlerRole", "Arn"]}
    policies = {
        role: {
            a for s in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] for a in s["Action"]
        }
        for role in ("ApiHandlerRole", "ApplyEventsRole", "CompactSumsRole")
    }
    assert {a for a in policies["ApiHandlerRole"] if a.startswith(("kinesis:", "sqs:"))} == {"kinesis:PutRecords"}
    assert "kinesis:GetRecords" in policies["ApplyEventsRole"] and "sqs:SendMessage" in policies["ApplyEventsRole"]
    assert "kinesis:PutRecords" not in policies["ApplyEventsRole"]
    assert not any(a.startswith(("kinesis:", "sqs:")) for a in policies["CompactSumsRole"])
    lint = subprocess.run([bin_dir / "cfn-lint", out / "sam.json"], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


@pytest.mark.parametrize("stage", STAGES)
def test_the_stream_is_named_as_the_app_reads_it(stage: str, env: Any) -> None:
    from chalicelib import settings

    variables = json.loads((ROOT / ".chalice" / "config.json").read_text())["stages"][stage]["environment_variables"]
    env.unset("EVENTS_STREAM_NAME")
    for name, value in variables.items():
        env.set(name, value)
    stream = cfn.resources(stage)["Resources"][cfn.STREAM]["Properties"]
    assert stream["Name"] == settings.get().events_stream_name
    assert stream["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"}


@pytest.mark.parametrize("stage", STAGES)
def test_stream_permissions_are_per_function(stage: str) -> None:
    resources = cfn.resources(stage)["Resources"]

    def statements(role: str) -> list[dict[str, Any]]:
        (policy,) = resources[role]["Properties"]["Policies"]
        assert policy["PolicyName"] == f"{role}Policy"  # Chalice's own policy, replaced whole
        return list(policy["PolicyDocument"]["Statement"])

    stage_statements = cfn.stage_policy(stage)["Statement"]
    stream_arn = {"Fn::GetAtt": [cfn.STREAM, "Arn"]}
    api, consumer = statements(cfn.API_ROLE), statements(cfn.CONSUMER_ROLE)
    assert api[: len(stage_statements)] == stage_statements == consumer[: len(stage_statements)]
    assert api[len(stage_statements) :] == [
        {"Sid": "EventsStreamPut", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": stream_arn}
    ]
    read, dead_letter = consumer[len(stage_statements) :]
    assert read["Resource"] == stream_arn and set(read["Action"]) == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert dead_letter["Action"] == ["sqs:SendMessage"]
    assert dead_letter["Resource"] == {"Fn::GetAtt": [cfn.DEAD_LETTER_QUEUE, "Arn"]}
