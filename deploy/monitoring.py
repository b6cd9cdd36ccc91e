"""The stage's alarms, their SNS topic and its CloudWatch dashboard (merged by deploy/template.py).

Every alarm watches one of the stack's own resources: the functions, the table, the stream and the queue through
Ref / Fn::GetAtt (the names CloudFormation gives them), the API by its own name and stage (API Gateway's metrics know
a REST API only by name, and the template names it after the stack). Each alarm notifies the stage's topic when it
goes into ALARM and when it is OK again; the stage's `alarm_email` subscribes an address to the topic.
docs/operations.md says, per alarm, what it means, why its threshold, and what to do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from chalicelib.process import observability
from chalicelib.process.settings import GATEWAY_TIMEOUT_S, Settings
from deploy import template
from deploy.stages import Stage
from deploy.template import Function

TOPIC, TOPIC_KEY, SUBSCRIPTION, DASHBOARD = "AlarmTopic", "AlarmTopicKey", "AlarmEmailSubscription", "Dashboard"
RUNBOOK = "docs/operations.md"

API, LAMBDA, DYNAMODB, KINESIS, SQS = "AWS/ApiGateway", "AWS/Lambda", "AWS/DynamoDB", "AWS/Kinesis", "AWS/SQS"
# The one dimension Powertools gives the app's EMF metrics.
SERVICE = {"service": observability.SERVICE}


@dataclass(frozen=True)
class Window:
    """How an alarm reads its metric: periods of `period_s`; ALARM when `breaching` of the last `periods` breach."""

    period_s: int
    periods: int
    breaching: int


# A failure that lasts: 3 of the last 5 minutes. One bad minute is what retries (botocore's, Lambda's, a client's)
# absorb, and what a deploy or a cold start can cause.
SUSTAINED = Window(60, 5, 3)
# Once: one dead letter is already data the aggregates miss. 5-minute periods, so a queue depth reported less
# often than every minute cannot flap between ALARM and OK.
AT_ONCE = Window(300, 1, 1)

# API 5xx: at least 1% of requests in a minute, and at least 3 of them (a quiet stage's one failure in a few
# requests is not a page).
SERVER_ERROR_PERCENT = 1
SERVER_ERRORS_AT_LEAST = 3
# The consumer is this far behind the stream: 300 x its 1 s batching window, 1/12 of the hour after which a record
# is dead-lettered unapplied (the mapping's MaximumRecordAgeInSeconds), so 55 minutes are left to act.
CONSUMER_LAG_S = 300
# The DynamoDB operations the app calls (chalicelib, and Powertools' idempotency records): SystemErrors has one
# series per operation, and an alarm adds them up.
DYNAMODB_OPERATIONS = (
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "BatchGetItem",
    "TransactWriteItems",
    "BatchWriteItem",  # the purge of deleted names
)


# --- metrics and their dimensions -------------------------------------------------------------------------------


def function_dimensions(function: Function) -> dict[str, Any]:
    return {"FunctionName": {"Ref": function.logical_id}}


def api_dimensions(stage: Stage) -> dict[str, Any]:
    """The API as its metrics name it: the name the template gives it (the stack's) and Chalice's stage."""
    return {"ApiName": template.rest_api(stage)["Properties"]["Name"], "Stage": stage.api_stage}


TABLE_DIMENSIONS: dict[str, Any] = {"TableName": {"Ref": template.TABLE}}
STREAM_DIMENSIONS: dict[str, Any] = {"StreamName": {"Ref": template.STREAM}}
QUEUE_DIMENSIONS: dict[str, Any] = {"QueueName": {"Fn::GetAtt": [template.DEAD_LETTER_QUEUE, "QueueName"]}}


def metric(namespace: str, name: str, dimensions: dict[str, Any]) -> dict[str, Any]:
    return {
        "Namespace": namespace,
        "MetricName": name,
        "Dimensions": [{"Name": key, "Value": value} for key, value in dimensions.items()],
    }


# --- alarms -----------------------------------------------------------------------------------------------------


def alarm(stage: Stage, name: str, description: str, condition: dict[str, Any]) -> dict[str, Any]:
    """An alarm on `condition` that notifies the topic both ways. No data means nothing happened: every metric
    here is emitted only when there is traffic (or, for throttles and system errors, only when non-zero)."""
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": f"{stage.stack_name}-{name}",
            "AlarmDescription": f"{description} What to do: {RUNBOOK}, '{name}'.",
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": TOPIC}],
            "OKActions": [{"Ref": TOPIC}],
            **condition,
        },
    }


def evaluated(window: Window, threshold: float) -> dict[str, Any]:
    return {
        "EvaluationPeriods": window.periods,
        "DatapointsToAlarm": window.breaching,
        "Threshold": threshold,
    }


def on_metric(watched: dict[str, Any], statistic: str, threshold: float, window: Window) -> dict[str, Any]:
    """`statistic` of one metric at or above `threshold` (a percentile such as p99 is an extended statistic)."""
    kind = "ExtendedStatistic" if statistic.startswith("p") else "Statistic"
    return {**watched, kind: statistic, "Period": window.period_s, **evaluated(window, threshold)}


def on_expression(
    expression: str, label: str, inputs: dict[str, tuple[dict[str, Any], str]], threshold: float, window: Window
) -> dict[str, Any]:
    """Metric math: `expression` over `inputs` (id: (metric, statistic)) at or above `threshold`."""
    queries: list[dict[str, Any]] = [
        {"Id": key, "MetricStat": {"Metric": watched, "Period": window.period_s, "Stat": stat}, "ReturnData": False}
        for key, (watched, stat) in inputs.items()
    ]
    queries.append({"Id": "watched", "Expression": expression, "Label": label, "ReturnData": True})
    return {"Metrics": queries, **evaluated(window, threshold)}


def worst_case_s(stage: Stage) -> float:
    """The longest the stage's settings let a request or run wait for the database (22 s unless it says)."""
    return Settings.from_environment(stage.environment).worst_case_s


def duration_threshold_ms(stage: Stage, function: Function) -> int:
    """Halfway between the longest database wait the settings allow and the function's timeout: a function that
    waits out a stalled database doesn't alarm, one that comes within seconds of being killed does."""
    timeout_s = stage.chalice.scope(stage.name, function.name).lambda_timeout
    return round(1000 * (worst_case_s(stage) + timeout_s) / 2)


def function_alarms(stage: Stage, function: Function) -> dict[str, Any]:
    name, dimensions = function.logical_id, function_dimensions(function)
    return {
        f"{name}ErrorsAlarm": alarm(
            stage,
            f"{name}-errors",
            f"{name} failed (an exception past the app's error handling, a timeout, a crash) in 3 of 5 minutes.",
            on_metric(metric(LAMBDA, "Errors", dimensions), "Sum", 1, SUSTAINED),
        ),
        f"{name}ThrottlesAlarm": alarm(
            stage,
            f"{name}-throttles",
            f"Lambda refused to run {name} (no concurrency left in the account) in 3 of 5 minutes.",
            on_metric(metric(LAMBDA, "Throttles", dimensions), "Sum", 1, SUSTAINED),
        ),
        f"{name}DurationAlarm": alarm(
            stage,
            f"{name}-duration",
            f"{name} ran close to its timeout, past the longest database wait the settings allow, in 3 of 5 minutes.",
            on_metric(
                metric(LAMBDA, "Duration", dimensions), "Maximum", duration_threshold_ms(stage, function), SUSTAINED
            ),
        ),
    }


def api_alarms(stage: Stage) -> dict[str, Any]:
    dimensions = api_dimensions(stage)
    errors = {
        "errors": (metric(API, "5XXError", dimensions), "Sum"),
        "requests": (metric(API, "Count", dimensions), "SampleCount"),
    }
    return {
        "ApiServerErrorsAlarm": alarm(
            stage,
            "api-5xx",
            f"At least {SERVER_ERROR_PERCENT}% of the API's answers (and {SERVER_ERRORS_AT_LEAST} a minute) were 5xx "
            "in 3 of 5 minutes.",
            on_expression(
                f"IF(errors >= {SERVER_ERRORS_AT_LEAST}, 100 * errors / requests, 0)",
                "5xx, % of requests",
                errors,
                SERVER_ERROR_PERCENT,
                SUSTAINED,
            ),
        ),
        "ApiLatencyAlarm": alarm(
            stage,
            "api-latency",
            f"The API's p99 latency reached the longest a request may wait for the database "
            f"({worst_case_s(stage):g} s; API Gateway gives up at {GATEWAY_TIMEOUT_S} s) in 3 of 5 minutes.",
            on_metric(metric(API, "Latency", dimensions), "p99", 1000 * worst_case_s(stage), SUSTAINED),
        ),
    }


def table_alarms(stage: Stage) -> dict[str, Any]:
    throttles = {
        "reads": (metric(DYNAMODB, "ReadThrottleEvents", TABLE_DIMENSIONS), "Sum"),
        "writes": (metric(DYNAMODB, "WriteThrottleEvents", TABLE_DIMENSIONS), "Sum"),
        "hotkeywrites": (metric(DYNAMODB, "WriteKeyRangeThroughputThrottleEvents", TABLE_DIMENSIONS), "Sum"),
    }
    errors = {
        operation.lower(): (metric(DYNAMODB, "SystemErrors", {**TABLE_DIMENSIONS, "Operation": operation}), "Sum")
        for operation in DYNAMODB_OPERATIONS
    }
    return {
        # A hot hit counter's throttled write overflows into delta shards by design (chalicelib/hits/store.py), so
        # writes throttled on one key's partition don't count; every other throttle (a read, the table's or the
        # account's ceiling) does.
        "TableThrottlesAlarm": alarm(
            stage,
            "table-throttles",
            "DynamoDB throttled reads, or writes for a reason other than one hot key, in 3 of 5 minutes.",
            on_expression("reads + writes - hotkeywrites", "throttled, not a hot key", throttles, 1, SUSTAINED),
        ),
        "TableSystemErrorsAlarm": alarm(
            stage,
            "table-system-errors",
            "DynamoDB answered the app's requests with internal errors (HTTP 500) in 3 of 5 minutes.",
            on_expression(" + ".join(errors), "system errors, all operations", errors, 1, SUSTAINED),
        ),
    }


def stream_alarms(stage: Stage, consumer: Function) -> dict[str, Any]:
    return {
        "ConsumerLagAlarm": alarm(
            stage,
            "consumer-lag",
            f"The events consumer is {CONSUMER_LAG_S} s or more behind the stream in 3 of 5 minutes; at "
            f"{template.EVENTS_MAPPING['MaximumRecordAgeInSeconds']} s records go to the dead-letter queue unapplied.",
            on_metric(
                metric(LAMBDA, "IteratorAge", function_dimensions(consumer)),
                "Maximum",
                1000 * CONSUMER_LAG_S,
                SUSTAINED,
            ),
        ),
        "DeadLettersAlarm": alarm(
            stage,
            "dead-letters",
            "Events that were not applied wait in the dead-letter queue; their records leave the stream "
            f"{template.STREAM_RETENTION_HOURS} h after they arrived.",
            on_metric(metric(SQS, "ApproximateNumberOfMessagesVisible", QUEUE_DIMENSIONS), "Maximum", 1, AT_ONCE),
        ),
        "StreamWriteThrottlesAlarm": alarm(
            stage,
            "stream-write-throttles",
            "Kinesis refused records of POST /events (write throughput exceeded) in 3 of 5 minutes.",
            on_metric(metric(KINESIS, "WriteProvisionedThroughputExceeded", STREAM_DIMENSIONS), "Sum", 1, SUSTAINED),
        ),
    }


def consumer_of(functions: list[Function]) -> Function:
    return next(f for f in functions if f.logical_id == template.CONSUMER_FUNCTION)


def alarms(stage: Stage, functions: list[Function]) -> dict[str, Any]:
    found = {**api_alarms(stage), **table_alarms(stage), **stream_alarms(stage, consumer_of(functions))}
    for function in functions:
        found.update(function_alarms(stage, function))
    return found


# --- the topic --------------------------------------------------------------------------------------------------


def topic_key() -> dict[str, Any]:
    """A key of the stack's own for the topic: CloudWatch can't publish to a topic under the AWS-managed aws/sns
    key, whose policy no one can change to let it."""
    return {
        "Type": "AWS::KMS::Key",
        "Properties": {
            "Description": {"Fn::Sub": "${AWS::StackName}: the alarm topic's messages"},
            "EnableKeyRotation": True,
            "KeyPolicy": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "AccountAdministers",  # KMS's default: the account's IAM policies decide
                        "Effect": "Allow",
                        "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}},
                        "Action": "kms:*",
                        "Resource": "*",
                    },
                    {
                        "Sid": "AlarmsPublish",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudwatch.amazonaws.com"},
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                        "Resource": "*",
                    },
                ],
            },
        },
    }


def topic(stage: Stage) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::Topic",
        "Properties": {
            "TopicName": f"{stage.stack_name}-alarms",
            "DisplayName": f"{stage.stack_name} alarms",
            "KmsMasterKeyId": {"Ref": TOPIC_KEY},
        },
    }


def subscription(email: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::Subscription",
        "Properties": {"TopicArn": {"Ref": TOPIC}, "Protocol": "email", "Endpoint": email},
    }


# --- the dashboard ----------------------------------------------------------------------------------------------


def substituted(value: Any) -> str:
    """A dimension's value as Fn::Sub writes it: a Ref becomes ${Name}, a GetAtt ${Name.Attribute}."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"${{{value['Ref']}}}"
    resource, attribute = value["Fn::GetAtt"]
    return f"${{{resource}.{attribute}}}"


def line(namespace: str, name: str, dimensions: dict[str, Any], stat: str, label: str, **options: Any) -> list[Any]:
    """One metric of a graph, in the dashboard body's array form."""
    pairs = [part for key, value in dimensions.items() for part in (key, substituted(value))]
    return [namespace, name, *pairs, {"stat": stat, "label": label, **options}]


def graph(title: str, metrics: list[list[Any]], **properties: Any) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "view": "timeSeries",
            "region": "${AWS::Region}",
            "period": 60,
            "metrics": metrics,
            "yAxis": {"left": {"min": 0}},
            **properties,
        },
    }


def limits(*lines: tuple[str, float]) -> dict[str, Any]:
    """Horizontal lines on a graph: (label, value)."""
    return {"horizontal": [{"label": label, "value": value} for label, value in lines]}


def api_graphs(stage: Stage) -> list[dict[str, Any]]:
    dimensions = api_dimensions(stage)
    return [
        graph(
            "API: requests, 4xx, 5xx (per minute)",
            [
                line(API, "Count", dimensions, "SampleCount", "requests"),
                line(API, "4XXError", dimensions, "Sum", "4xx (with the gateway's 429s)"),
                line(API, "5XXError", dimensions, "Sum", "5xx"),
            ],
        ),
        graph(
            "API: latency (ms)",
            [
                line(API, "Latency", dimensions, "p50", "p50"),
                line(API, "Latency", dimensions, "p99", "p99"),
            ],
            annotations=limits(
                (f"API Gateway gives up ({GATEWAY_TIMEOUT_S} s)", 1000 * GATEWAY_TIMEOUT_S),
                ("p99 alarm", 1000 * worst_case_s(stage)),
            ),
        ),
    ]


def stream_graphs(stage: Stage, consumer: Function) -> list[dict[str, Any]]:
    namespace = stage.metrics_namespace
    return [
        graph(
            "Events: accepted by POST /events, handled by the consumer",
            [
                line(namespace, "EventsAccepted", SERVICE, "Sum", "accepted (put on the stream)"),
                line(namespace, "EventsRejected", SERVICE, "Sum", "rejected (invalid, or the stream refused)"),
                line(namespace, "IngestEvents", SERVICE, "Sum", "applied (a retried batch counts again)"),
                line(
                    KINESIS, "WriteProvisionedThroughputExceeded", STREAM_DIMENSIONS, "Sum", "records Kinesis refused"
                ),
            ],
        ),
        graph(
            "Consumer lag (ms) and dead letters",
            [
                line(LAMBDA, "IteratorAge", function_dimensions(consumer), "Maximum", "lag, oldest record (ms)"),
                line(
                    SQS,
                    "ApproximateNumberOfMessagesVisible",
                    QUEUE_DIMENSIONS,
                    "Maximum",
                    "dead letters",
                    yAxis="right",
                ),
            ],
            yAxis={"left": {"min": 0}, "right": {"min": 0}},
            annotations=limits(("lag alarm", 1000 * CONSUMER_LAG_S)),
        ),
    ]


def table_graphs() -> list[dict[str, Any]]:
    return [
        graph(
            "DynamoDB: consumed units (on demand: what the stage pays for)",
            [
                line(DYNAMODB, "ConsumedReadCapacityUnits", TABLE_DIMENSIONS, "Sum", "read units"),
                line(DYNAMODB, "ConsumedWriteCapacityUnits", TABLE_DIMENSIONS, "Sum", "write units"),
            ],
        ),
        graph(
            "DynamoDB: throttled events",
            [
                line(DYNAMODB, "ReadThrottleEvents", TABLE_DIMENSIONS, "Sum", "reads"),
                line(DYNAMODB, "WriteThrottleEvents", TABLE_DIMENSIONS, "Sum", "writes"),
                line(DYNAMODB, "WriteKeyRangeThroughputThrottleEvents", TABLE_DIMENSIONS, "Sum", "writes, hot key"),
            ],
        ),
    ]


def function_graphs(stage: Stage, functions: list[Function]) -> list[dict[str, Any]]:
    failures = [
        line(LAMBDA, kind, function_dimensions(f), "Sum", f"{f.logical_id} {kind.lower()}")
        for f in functions
        for kind in ("Errors", "Throttles")
    ]
    durations = [line(LAMBDA, "Duration", function_dimensions(f), "Maximum", f.logical_id) for f in functions]
    timeout_s = stage.chalice.lambda_timeout
    return [
        graph("Functions: errors and throttles", failures),
        graph(
            "Functions: longest run (ms)", durations, annotations=limits((f"timeout ({timeout_s} s)", 1000 * timeout_s))
        ),
    ]


def dashboard_body(stage: Stage, functions: list[Function], alarm_ids: list[str]) -> dict[str, Any]:
    graphs = [
        *api_graphs(stage),
        *stream_graphs(stage, consumer_of(functions)),
        *table_graphs(),
        *function_graphs(stage, functions),
    ]
    status: dict[str, Any] = {
        "type": "alarm",
        "x": 0,
        "y": 0,
        "width": 24,
        "height": 4,
        "properties": {"title": "Alarms", "alarms": [f"${{{name}.Arn}}" for name in alarm_ids]},
    }
    for index, widget in enumerate(graphs):  # two columns under the alarms
        widget.update(x=12 * (index % 2), y=status["height"] + 6 * (index // 2))
    return {"start": "-PT6H", "widgets": [status, *graphs]}


def dashboard(stage: Stage, functions: list[Function], alarm_ids: list[str]) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": stage.stack_name,
            # Fn::Sub puts the region and the resources' names into the JSON.
            "DashboardBody": {
                "Fn::Sub": json.dumps(dashboard_body(stage, functions, alarm_ids), separators=(",", ":"))
            },
        },
    }


# --- what deploy/template.py merges -----------------------------------------------------------------------------


def resources(stage: Stage, functions: list[Function]) -> dict[str, Any]:
    stage_alarms = alarms(stage, functions)
    found: dict[str, Any] = {TOPIC_KEY: topic_key(), TOPIC: topic(stage), **stage_alarms}
    if stage.options.alarm_email:
        found[SUBSCRIPTION] = subscription(stage.options.alarm_email)
    found[DASHBOARD] = dashboard(stage, functions, sorted(stage_alarms))
    return found


def outputs(stage: Stage) -> dict[str, Any]:
    return {
        "DashboardURL": {
            "Description": f"The {stage.name} stage's CloudWatch dashboard",
            "Value": {
                "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
                f"#dashboards:name=${{{DASHBOARD}}}"
            },
        },
        "AlarmTopicArn": {
            "Description": "The SNS topic every alarm notifies: subscribe to it to be told",
            "Value": {"Ref": TOPIC},
        },
    }
