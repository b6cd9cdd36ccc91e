"""Print the CloudFormation resources merged into `chalice package` output for a stage.

    python -m devtools.cfn prod > out/resources.json

The table comes from chalicelib/table.py (the one definition); its name is the
stage's TABLE_NAME from .chalice/config.json, which the IAM policy also names.
API Gateway's own errors (throttling, timeouts) get the service's error shape.

The events stream (on demand), its consumer's dead-letter queue, the rest of the consumer's event source mapping
(Chalice writes the batch size, window and starting position from the `on_kinesis_record` registration), and the
stream's permissions: the API function may only put records, the consumer may only read the stream and send to
the queue. They are added to the statements of the stage's policy file, in the roles Chalice names per function.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.settings import Settings
from chalicelib.table import cloudformation_resource

ROOT = Path(__file__).resolve().parents[1]

# Chalice's logical ids (from `chalice package`): each function has its own role when autogen_policy is false.
API_FUNCTION, API_ROLE = "APIHandler", "ApiHandlerRole"
CONSUMER_FUNCTION, CONSUMER_ROLE = "ApplyEvents", "ApplyEventsRole"
CONSUMER_EVENT = "ApplyEventsKinesisEventSource"
STREAM, DEAD_LETTER_QUEUE = "EventsStream", "EventsDeadLetterQueue"

# The consumer's event source mapping, beyond what the registration says (the dev server's poller follows it).
# The consumer is exactly-once, so a retry is always safe: 10 retries ride out minutes of throttling or a database
# that stops answering. Bisecting isolates a record that fails the function (an exception) in ~10 halvings of a
# 1,000-record batch. A record that still fails, or is an hour old (its shard would be stuck behind it), goes to
# the dead-letter queue as Lambda's failure description (shard, sequence range): it stays readable in the stream
# for the rest of its 24 h retention, to be replayed after a fix.
EVENTS_MAPPING: dict[str, Any] = {
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    "MaximumRetryAttempts": 10,
    "MaximumRecordAgeInSeconds": 3600,
}
STREAM_RETENTION_HOURS = 24
# SQS's longest: time to read the failures and replay them.
DEAD_LETTER_RETENTION_S = 14 * 24 * 3600

# What Lambda's poller does on the stream with the consumer's role (no enhanced fan-out: no SubscribeToShard).
CONSUMER_STREAM_ACTIONS = [
    "kinesis:DescribeStream",
    "kinesis:DescribeStreamSummary",
    "kinesis:GetRecords",
    "kinesis:GetShardIterator",
    "kinesis:ListShards",
]


def _stage(stage: str) -> dict[str, Any]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return dict(config["stages"][stage])


def stage_table_name(stage: str) -> str:
    return str(_stage(stage)["environment_variables"]["TABLE_NAME"])


def stage_stream_name(stage: str) -> str:
    """The stage's EVENTS_STREAM_NAME, else the settings' default (the name the app's registration reads)."""
    variables = _stage(stage)["environment_variables"]
    return str(variables.get("EVENTS_STREAM_NAME") or Settings.model_fields["events_stream_name"].default)


def stage_policy(stage: str) -> dict[str, Any]:
    return dict(json.loads((ROOT / ".chalice" / _stage(stage)["iam_policy_file"]).read_text()))


def gateway_response(kind: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::GatewayResponse",
        "Properties": {
            "RestApiId": {"Ref": "RestAPI"},
            "ResponseType": kind,
            "ResponseTemplates": {
                "application/json": (
                    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
                )
            },
        },
    }


def stream(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Kinesis::Stream",
        "Properties": {
            "Name": name,
            "StreamModeDetails": {"StreamMode": "ON_DEMAND"},
            "RetentionPeriodHours": STREAM_RETENTION_HOURS,
            # The AWS-managed key: its key policy lets the account's principals use it through Kinesis.
            "StreamEncryption": {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"},
        },
    }


def dead_letter_queue() -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {"MessageRetentionPeriod": DEAD_LETTER_RETENTION_S, "SqsManagedSseEnabled": True},
    }


def role_policies(role: str, stage: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """The role's one inline policy (Chalice's name for it): the stage's statements plus `statements`.

    In the role itself rather than a separate AWS::IAM::Policy: the function needs the role, the event source
    mapping needs the function, so CloudFormation grants the stream before it creates the mapping.
    """
    document = stage_policy(stage)
    document["Statement"] = [*document["Statement"], *statements]
    return {"Properties": {"Policies": [{"PolicyName": f"{role}Policy", "PolicyDocument": document}]}}


def stream_arn() -> dict[str, Any]:
    return {"Fn::GetAtt": [STREAM, "Arn"]}


def resources(stage: str) -> dict[str, Any]:
    put = {"Sid": "EventsStreamPut", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": stream_arn()}
    read = {"Sid": "EventsStreamRead", "Effect": "Allow", "Action": CONSUMER_STREAM_ACTIONS, "Resource": stream_arn()}
    dead_letter = {
        "Sid": "EventsDeadLetters",
        "Effect": "Allow",
        "Action": ["sqs:SendMessage"],
        "Resource": {"Fn::GetAtt": [DEAD_LETTER_QUEUE, "Arn"]},
    }
    return {
        "Resources": {
            "Table": cloudformation_resource(stage_table_name(stage)),
            "GatewayDefault4xx": gateway_response("DEFAULT_4XX"),
            "GatewayDefault5xx": gateway_response("DEFAULT_5XX"),
            STREAM: stream(stage_stream_name(stage)),
            DEAD_LETTER_QUEUE: dead_letter_queue(),
            API_ROLE: role_policies(API_ROLE, stage, [put]),
            CONSUMER_ROLE: role_policies(CONSUMER_ROLE, stage, [read, dead_letter]),
            # Merged into the function Chalice generates for the consumer (chalice package deep-merges dicts).
            CONSUMER_FUNCTION: {
                "Properties": {
                    "Environment": {"Variables": {"DEAD_LETTER_QUEUE_URL": {"Ref": DEAD_LETTER_QUEUE}}},
                    "Events": {
                        CONSUMER_EVENT: {
                            "Properties": {
                                # The stream's own ARN rather than Chalice's, built from the name: the mapping
                                # then waits for the stream. A Fn::Sub, to replace Chalice's Fn::Sub in the merge.
                                "Stream": {"Fn::Sub": f"${{{STREAM}.Arn}}"},
                                **EVENTS_MAPPING,
                                "DestinationConfig": {
                                    "OnFailure": {"Destination": {"Fn::GetAtt": [DEAD_LETTER_QUEUE, "Arn"]}}
                                },
                            }
                        }
                    },
                }
            },
        }
    }


if __name__ == "__main__":
    json.dump(resources(sys.argv[1] if len(sys.argv) > 1 else "prod"), sys.stdout, indent=2)
    print()
