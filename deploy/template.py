"""The CloudFormation resources merged into `chalice package` output for a stage.

    python -m deploy.template prod > out/prod/resources.json

`chalice package --merge-template` deep-merges these into the template Chalice generates (its functions, roles and
API), so a key here adds to or replaces Chalice's own. What this adds, per stage (`deploy/stages.py`):
- the table (`chalicelib/storage/table.py`, the one definition), retained on stack deletion, with deletion protection where
  the stage asks for it;
- API Gateway's own errors (throttling, timeouts) in the service's error shape, the API named after the stack, and
  stage throttling from the stage's options;
- one log group per function with the stage's retention, and each function writing only to its own;
- the events stream (on demand), its consumer's dead-letter queue, and the rest of the consumer's event source
  mapping (Chalice writes the batch size, window and starting position from the `on_kinesis_record` registration);
- least-privilege IAM: each role gets the stage's policy file plus only what its function needs (the API function
  may put on the stream, the consumer may read it and send to the queue; X-Ray where the stage traces);
- the alarms, their SNS topic and the stage's dashboard (`deploy/monitoring.py`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from chalice.utils import to_cfn_resource_name

from chalicelib.ingest.applied import MAX_RECORD_AGE_S
from chalicelib.storage.table import cloudformation_resource
from deploy.stages import Stage, load

# Chalice's logical ids (from `chalice package`): each function has its own role when autogen_policy is false.
API_FUNCTION, API_ROLE = "APIHandler", "ApiHandlerRole"
CONSUMER_FUNCTION, CONSUMER_ROLE = "ApplyEvents", "ApplyEventsRole"
CONSUMER_EVENT = "ApplyEventsKinesisEventSource"
REST_API = "RestAPI"
TABLE, STREAM, DEAD_LETTER_QUEUE = "Table", "EventsStream", "EventsDeadLetterQueue"

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
    # The consumer prunes a closed shard's markers once its records are this old (chalicelib/ingest/applied.py).
    "MaximumRecordAgeInSeconds": MAX_RECORD_AGE_S,
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


@dataclass(frozen=True)
class Function:
    """One Lambda function of the app, by the logical ids `chalice package` gives it and its role."""

    logical_id: str
    role: str
    # The app's name for it (the view module's handler for the API; the decorated function otherwise).
    name: str

    @property
    def log_group(self) -> str:
        return f"{self.logical_id}LogGroup"


def functions() -> list[Function]:
    """The API handler, then one function per schedule or stream registration, as Chalice names them."""
    from app import app

    found = [Function(API_FUNCTION, API_ROLE, "api_handler")]
    for source in app.event_sources:
        logical_id = to_cfn_resource_name(source.name)
        found.append(Function(logical_id, f"{logical_id}Role", source.name))
    return found


def gateway_response(kind: str) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::GatewayResponse",
        "Properties": {
            "RestApiId": {"Ref": REST_API},
            "ResponseType": kind,
            "ResponseTemplates": {
                "application/json": (
                    '{"error": {"code": "$context.error.responseType", "message": $context.error.messageString}}'
                )
            },
        },
    }


def rest_api(stage: Stage) -> dict[str, Any]:
    """Merged into Chalice's API: named after the stack (metrics and alarms find it by name), and throttled."""
    return {
        "Properties": {
            "Name": stage.stack_name,
            "MethodSettings": [
                {
                    "ResourcePath": "/*",
                    "HttpMethod": "*",
                    "ThrottlingRateLimit": stage.options.throttle_rate,
                    "ThrottlingBurstLimit": stage.options.throttle_burst,
                }
            ],
        }
    }


def table(stage: Stage) -> dict[str, Any]:
    resource = cloudformation_resource(stage.table_name)
    if stage.options.table_deletion_protection:
        resource["Properties"]["DeletionProtectionEnabled"] = True
    return resource


def stream(stage: Stage) -> dict[str, Any]:
    shards = stage.options.stream_shards
    capacity: dict[str, Any] = (
        {"StreamModeDetails": {"StreamMode": "ON_DEMAND"}}
        if shards is None
        else {"StreamModeDetails": {"StreamMode": "PROVISIONED"}, "ShardCount": shards}
    )
    return {
        "Type": "AWS::Kinesis::Stream",
        "Properties": {
            "Name": stage.stream_name,
            **capacity,
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


def log_group(stage: Stage, function: Function) -> dict[str, Any]:
    # Named by the stack, not by the function's generated name: the group exists before the function first runs
    # (a scheduled one runs within a minute), so Lambda never creates a group of its own that lives forever.
    return {
        "Type": "AWS::Logs::LogGroup",
        "Properties": {
            "LogGroupName": f"/aws/lambda/{stage.stack_name}-{function.logical_id}",
            "RetentionInDays": stage.options.log_retention_days,
        },
    }


def role_policies(stage: Stage, role: str, statements: list[dict[str, Any]]) -> dict[str, Any]:
    """The role's one inline policy (Chalice's name for it): the stage's statements plus `statements`.

    In the role itself rather than a separate AWS::IAM::Policy: the function needs the role, the event source
    mapping needs the function, so CloudFormation grants the stream before it creates the mapping.
    """
    document = dict(stage.policy)
    document["Statement"] = [*document["Statement"], *statements]
    return {"Properties": {"Policies": [{"PolicyName": f"{role}Policy", "PolicyDocument": document}]}}


def stream_arn() -> dict[str, Any]:
    return {"Fn::GetAtt": [STREAM, "Arn"]}


def function_statements(stage: Stage, function: Function) -> list[dict[str, Any]]:
    """What this function needs beyond the stage's policy file: its own log group, the stream, X-Ray."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [function.log_group, "Arn"]},
        }
    ]
    if function.logical_id == API_FUNCTION:
        statements.append(
            {"Sid": "EventsStreamPut", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": stream_arn()}
        )
    if function.logical_id == CONSUMER_FUNCTION:
        statements += [
            {"Sid": "EventsStreamRead", "Effect": "Allow", "Action": CONSUMER_STREAM_ACTIONS, "Resource": stream_arn()},
            {
                "Sid": "EventsDeadLetters",
                "Effect": "Allow",
                "Action": ["sqs:SendMessage"],
                "Resource": {"Fn::GetAtt": [DEAD_LETTER_QUEUE, "Arn"]},
            },
        ]
    if stage.xray:
        statements.append(
            {
                "Sid": "Tracing",
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*",  # X-Ray has no resource-level permissions for these
            }
        )
    return statements


def function_properties(stage: Stage, function: Function) -> dict[str, Any]:
    """Merged into the function Chalice generates (chalice package deep-merges dicts)."""
    properties: dict[str, Any] = {"LoggingConfig": {"LogGroup": {"Ref": function.log_group}}}
    if stage.xray:
        # Chalice's `xray` makes the function's tracing Active; TRACING turns on the app's own tracer.
        properties["Environment"] = {"Variables": {"TRACING": "true"}}
    if function.logical_id == CONSUMER_FUNCTION:
        variables = properties.setdefault("Environment", {"Variables": {}})["Variables"]
        variables["DEAD_LETTER_QUEUE_URL"] = {"Ref": DEAD_LETTER_QUEUE}
        properties["Events"] = {
            CONSUMER_EVENT: {
                "Properties": {
                    # The stream's own ARN rather than Chalice's, built from the name: the mapping then waits for
                    # the stream. A Fn::Sub, to replace Chalice's Fn::Sub in the merge.
                    "Stream": {"Fn::Sub": f"${{{STREAM}.Arn}}"},
                    # The stage's batching, in place of the registration's (the dev server's poller keeps that).
                    "BatchSize": stage.options.events_batch_size,
                    "MaximumBatchingWindowInSeconds": stage.options.events_batching_window_s,
                    **EVENTS_MAPPING,
                    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [DEAD_LETTER_QUEUE, "Arn"]}}},
                }
            }
        }
    return {"Properties": properties}


# Chalice's logical id for the API's custom domain (`api_gateway_custom_domain` in the stage's config).
CUSTOM_DOMAIN = "ApiGatewayCustomDomain"


def custom_domain_outputs(stage: Stage) -> dict[str, Any]:
    """Where a stage with a custom domain answers, and the name its DNS record must point at."""
    domain = stage.custom_domain
    if domain is None:
        return {}
    prefix = str(domain.get("url_prefix", "")).strip("/")
    return {
        "CustomDomainURL": {"Value": f"https://{domain['domain_name']}/{prefix + '/' if prefix else ''}"},
        # A regional endpoint: a CNAME (or Route 53 alias) of the domain to this name.
        "CustomDomainTarget": {"Value": {"Fn::GetAtt": [CUSTOM_DOMAIN, "RegionalDomainName"]}},
    }


def resources(stage_name: str) -> dict[str, Any]:
    from deploy import monitoring

    stage = load(stage_name)
    merged: dict[str, Any] = {
        TABLE: table(stage),
        REST_API: rest_api(stage),
        "GatewayDefault4xx": gateway_response("DEFAULT_4XX"),
        "GatewayDefault5xx": gateway_response("DEFAULT_5XX"),
        STREAM: stream(stage),
        DEAD_LETTER_QUEUE: dead_letter_queue(),
    }
    for function in functions():
        merged[function.log_group] = log_group(stage, function)
        merged[function.role] = role_policies(stage, function.role, function_statements(stage, function))
        merged[function.logical_id] = function_properties(stage, function)
    merged.update(monitoring.resources(stage, functions()))
    return {"Resources": merged, "Outputs": {**monitoring.outputs(stage), **custom_domain_outputs(stage)}}


if __name__ == "__main__":
    json.dump(resources(sys.argv[1] if len(sys.argv) > 1 else "prod"), sys.stdout, indent=2)
    print()
