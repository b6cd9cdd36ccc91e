"""The stage's alarms, topic and dashboard (deploy/monitoring.py), read from the merged template: every alarm
watches one of the stack's own resources with a sensible threshold and notifies the topic; the dashboard's body is
JSON once CloudFormation substitutes it, and shows what the issue asks for. The packaged template's side (the
functions Chalice generates, their timeouts) is checked by `check_packaged`, from tests/test_deployment.py's
packaging test; cfn-lint checks there that every reference resolves."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from chalicelib.process.settings import GATEWAY_TIMEOUT_S
from deploy import monitoring, stages, template

ROOT = Path(__file__).resolve().parents[1]
STAGES = stages.names()
pytestmark = pytest.mark.pure

TOPIC = {"Ref": monitoring.TOPIC}
PSEUDO_PARAMETERS = {"AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::URLSuffix"}


def merged(stage: str) -> dict[str, Any]:
    resources: dict[str, Any] = template.resources(stage)["Resources"]
    return resources


def alarms_of(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in resources.items() if r.get("Type") == "AWS::CloudWatch::Alarm"}


def watched(alarm: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    """(namespace, metric, dimensions, statistic) of each metric the alarm reads, metric math or not."""
    if "Metrics" not in alarm:
        statistic = alarm.get("Statistic") or alarm["ExtendedStatistic"]
        return [(alarm["Namespace"], alarm["MetricName"], dimensions(alarm), statistic)]
    stats = [q["MetricStat"] for q in alarm["Metrics"] if "MetricStat" in q]
    return [(s["Metric"]["Namespace"], s["Metric"]["MetricName"], dimensions(s["Metric"]), s["Stat"]) for s in stats]


def dimensions(metric: dict[str, Any]) -> dict[str, Any]:
    return {d["Name"]: d["Value"] for d in metric["Dimensions"]}


def only_metric(alarm: dict[str, Any]) -> tuple[str, str, dict[str, Any], str]:
    (metric,) = watched(alarm)
    return metric


def expression(alarm: dict[str, Any]) -> str:
    (returned,) = [q for q in alarm["Metrics"] if q.get("ReturnData")]
    return str(returned["Expression"])


# --- the alarms -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_alarms_are_those_the_issue_asks_for_and_no_other(stage: str) -> None:
    per_function = {
        f"{f.logical_id}{kind}Alarm" for f in template.functions() for kind in ("Errors", "Throttles", "Duration")
    }
    assert set(alarms_of(merged(stage))) == per_function | {
        "ApiServerErrorsAlarm",
        "ApiLatencyAlarm",
        "TableThrottlesAlarm",
        "TableSystemErrorsAlarm",
        "ConsumerLagAlarm",
        "DeadLettersAlarm",
        "StreamWriteThrottlesAlarm",
    }


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_has_errors_throttles_and_duration_alarms_on_itself(stage: str) -> None:
    alarms = alarms_of(merged(stage))
    for function in template.functions():
        itself = {"FunctionName": {"Ref": function.logical_id}}
        assert only_metric(alarms[f"{function.logical_id}ErrorsAlarm"]) == ("AWS/Lambda", "Errors", itself, "Sum")
        assert only_metric(alarms[f"{function.logical_id}ThrottlesAlarm"]) == ("AWS/Lambda", "Throttles", itself, "Sum")
        duration = only_metric(alarms[f"{function.logical_id}DurationAlarm"])
        assert duration == ("AWS/Lambda", "Duration", itself, "Maximum")


@pytest.mark.parametrize("stage", STAGES)
def test_the_service_alarms_watch_the_right_metrics(stage: str) -> None:
    alarms = alarms_of(merged(stage))
    api = {"ApiName": f"livestats-{stage}", "Stage": stages.load(stage).api_stage}
    assert {(ns, name, stat) for ns, name, _, stat in watched(alarms["ApiServerErrorsAlarm"])} == {
        ("AWS/ApiGateway", "5XXError", "Sum"),
        ("AWS/ApiGateway", "Count", "SampleCount"),
    }
    assert only_metric(alarms["ApiLatencyAlarm"]) == ("AWS/ApiGateway", "Latency", api, "p99")
    consumer = {"FunctionName": {"Ref": template.CONSUMER_FUNCTION}}
    assert only_metric(alarms["ConsumerLagAlarm"]) == ("AWS/Lambda", "IteratorAge", consumer, "Maximum")
    queue = {"QueueName": {"Fn::GetAtt": [template.DEAD_LETTER_QUEUE, "QueueName"]}}
    assert only_metric(alarms["DeadLettersAlarm"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        queue,
        "Maximum",
    )
    stream = {"StreamName": {"Ref": template.STREAM}}
    assert only_metric(alarms["StreamWriteThrottlesAlarm"]) == (
        "AWS/Kinesis",
        "WriteProvisionedThroughputExceeded",
        stream,
        "Sum",
    )


@pytest.mark.parametrize("stage", STAGES)
def test_every_dimension_points_at_the_stacks_own_resources(stage: str) -> None:
    """By Ref or Fn::GetAtt, so no alarm can watch another stack's or stage's resource; the API by the name and
    stage the template gives it (API Gateway's metrics know a REST API only by name)."""
    resources = merged(stage)
    expected_types = {
        "TableName": "AWS::DynamoDB::Table",
        "StreamName": "AWS::Kinesis::Stream",
        "QueueName": "AWS::SQS::Queue",
    }
    functions = {f.logical_id for f in template.functions()}
    for name, alarm in alarms_of(resources).items():
        for _, _, found, _ in watched(alarm):
            for dimension, value in found.items():
                if dimension == "FunctionName":
                    assert value["Ref"] in functions and value["Ref"] in resources, name
                elif dimension in expected_types:
                    target = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
                    assert resources[target]["Type"] == expected_types[dimension], name
                    assert "Ref" in value or value["Fn::GetAtt"][1] == dimension, name
                elif dimension == "ApiName":
                    assert value == resources[template.REST_API]["Properties"]["Name"] == f"livestats-{stage}"
                elif dimension == "Stage":
                    assert value == stages.load(stage).api_stage
                else:
                    assert (dimension, value in monitoring.DYNAMODB_OPERATIONS) == ("Operation", True), name


@pytest.mark.parametrize("stage", STAGES)
def test_every_alarm_notifies_the_topic_when_it_fires_and_when_it_clears(stage: str) -> None:
    resources = merged(stage)
    for name, alarm in alarms_of(resources).items():
        assert alarm["AlarmActions"] == alarm["OKActions"] == [TOPIC], name
        assert alarm["AlarmName"].startswith(f"livestats-{stage}-")
        assert alarm["TreatMissingData"] == "notBreaching"  # every metric here is sparse: no data, nothing wrong
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert 1 <= alarm["DatapointsToAlarm"] <= alarm["EvaluationPeriods"] and alarm["Threshold"] > 0
        assert monitoring.RUNBOOK in alarm["AlarmDescription"] and len(alarm["AlarmDescription"]) <= 1024
    assert resources[monitoring.TOPIC]["Type"] == "AWS::SNS::Topic"


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use() -> None:
    resources = merged("prod")
    topic = resources[monitoring.TOPIC]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": monitoring.TOPIC_KEY}
    key = resources[monitoring.TOPIC_KEY]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    (alarms,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s.get("Principal", {}).get("Service")]
    assert alarms["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert alarms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]


@pytest.mark.parametrize("stage", STAGES)
def test_thresholds_sit_between_what_the_app_allows_itself_and_the_limits(stage: str) -> None:
    loaded, alarms = stages.load(stage), alarms_of(merged(stage))
    worst_ms = 1000 * monitoring.worst_case_s(loaded)
    assert worst_ms == 22_000  # the settings' defaults: 15 s budget + 2 s connect + 5 s read
    for function in template.functions():
        timeout_ms = 1000 * loaded.chalice.scope(stage, function.name).lambda_timeout
        assert worst_ms < alarms[f"{function.logical_id}DurationAlarm"]["Threshold"] < timeout_ms
    assert worst_ms == alarms["ApiLatencyAlarm"]["Threshold"] < 1000 * GATEWAY_TIMEOUT_S
    window_s = consumer_registration()["maximum_batching_window_in_seconds"]
    max_age_s = template.EVENTS_MAPPING["MaximumRecordAgeInSeconds"]
    assert 60 * 1000 * window_s <= alarms["ConsumerLagAlarm"]["Threshold"] <= 1000 * max_age_s / 10
    assert alarms["DeadLettersAlarm"]["Threshold"] == 1 and alarms["DeadLettersAlarm"]["EvaluationPeriods"] == 1
    for name in ("StreamWriteThrottlesAlarm", "TableThrottlesAlarm", "TableSystemErrorsAlarm"):
        assert alarms[name]["Threshold"] == 1


def consumer_registration() -> dict[str, Any]:
    from app import app

    (source,) = [s for s in app.event_sources if s.name == "apply_events"]
    return dict(vars(source))


def test_the_5xx_alarm_is_a_share_of_requests_with_a_floor() -> None:
    alarm = alarms_of(merged("prod"))["ApiServerErrorsAlarm"]
    assert expression(alarm) == f"IF(errors >= {monitoring.SERVER_ERRORS_AT_LEAST}, 100 * errors / requests, 0)"
    assert alarm["Threshold"] == monitoring.SERVER_ERROR_PERCENT == 1
    ids = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in alarm["Metrics"] if "MetricStat" in q}
    assert ids == {"errors": "5XXError", "requests": "Count"}


def test_table_throttles_leave_out_only_a_hot_keys_writes() -> None:
    """A hot hit counter's throttled writes overflow by design; every other throttle counts."""
    alarm = alarms_of(merged("prod"))["TableThrottlesAlarm"]
    assert expression(alarm) == "reads + writes - hotkeywrites"
    ids = {q["Id"]: q["MetricStat"]["Metric"]["MetricName"] for q in alarm["Metrics"] if "MetricStat" in q}
    assert ids == {
        "reads": "ReadThrottleEvents",
        "writes": "WriteThrottleEvents",
        "hotkeywrites": "WriteKeyRangeThroughputThrottleEvents",
    }


def test_system_errors_add_up_every_dynamodb_operation_the_app_calls() -> None:
    client_call = re.compile(
        r"\.(get_item|put_item|update_item|delete_item|query|scan|batch_get_item|batch_write_item"
        r"|transact_write_items|transact_get_items|execute_statement|batch_execute_statement|execute_transaction)\("
    )
    called = {
        "".join(part.capitalize() for part in method.split("_"))
        for path in (ROOT / "chalicelib").rglob("*.py")
        for method in client_call.findall(path.read_text())
    }
    # Powertools' idempotency records (the same table): get, put, update and delete an item.
    called |= {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
    assert called <= set(monitoring.DYNAMODB_OPERATIONS)
    alarm = alarms_of(merged("prod"))["TableSystemErrorsAlarm"]
    summed = {
        q["Id"]: dimensions(q["MetricStat"]["Metric"])["Operation"] for q in alarm["Metrics"] if "MetricStat" in q
    }
    assert sorted(summed.values()) == sorted(monitoring.DYNAMODB_OPERATIONS)
    assert sorted(expression(alarm).split(" + ")) == sorted(summed)
    assert len(summed) <= 10  # the most metrics one metric-math alarm may read


# --- the topic's subscription -----------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_no_stage_subscribes_an_address_it_does_not_name(stage: str) -> None:
    assert stages.load(stage).options.alarm_email is None
    assert not [r for r in merged(stage).values() if r.get("Type") == "AWS::SNS::Subscription"]


def test_a_stage_with_an_alarm_email_subscribes_it_to_the_topic() -> None:
    loaded = stages.load("dev")
    mailing = dataclasses.replace(loaded, options=loaded.options.model_copy(update={"alarm_email": "ops@example.com"}))
    resources = monitoring.resources(mailing, template.functions())
    (subscription,) = [r for r in resources.values() if r["Type"] == "AWS::SNS::Subscription"]
    assert subscription["Properties"] == {"TopicArn": TOPIC, "Protocol": "email", "Endpoint": "ops@example.com"}


# --- the dashboard ----------------------------------------------------------------------------------------------


def dashboard_body(stage: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dashboard's body as CloudFormation would substitute it (placeholders for the names), and the template."""
    resources = merged(stage)
    dashboard = resources[monitoring.DASHBOARD]
    assert dashboard["Type"] == "AWS::CloudWatch::Dashboard"
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    for reference in set(re.findall(r"\$\{([^}]*)\}", text)):
        name, _, attribute = reference.partition(".")
        assert reference in PSEUDO_PARAMETERS or name in resources, reference
        assert attribute in ("", "Arn", "QueueName"), reference
        text = text.replace(f"${{{reference}}}", f"<{reference}>")
    body: dict[str, Any] = json.loads(text)
    return body, resources


def shown(body: dict[str, Any]) -> set[tuple[str, ...]]:
    """(namespace, metric, statistic, dimension names and values...) of every graphed metric."""
    found = set()
    for widget in body["widgets"]:
        for entry in widget["properties"].get("metrics", []):
            *names, options = entry
            found.add((names[0], names[1], options["stat"], *names[2:]))
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_the_dashboard_is_json_that_shows_what_the_issue_asks_for(stage: str) -> None:
    body, resources = dashboard_body(stage)
    loaded = stages.load(stage)
    api = ("ApiName", f"livestats-{stage}", "Stage", loaded.api_stage)
    table = ("TableName", "<Table>")
    service = ("service", "livestats")
    required = {
        ("AWS/ApiGateway", "Count", "SampleCount", *api),
        ("AWS/ApiGateway", "4XXError", "Sum", *api),
        ("AWS/ApiGateway", "5XXError", "Sum", *api),
        ("AWS/ApiGateway", "Latency", "p50", *api),
        ("AWS/ApiGateway", "Latency", "p99", *api),
        (loaded.metrics_namespace, "EventsAccepted", "Sum", *service),
        (loaded.metrics_namespace, "IngestEvents", "Sum", *service),
        ("AWS/Lambda", "IteratorAge", "Maximum", "FunctionName", f"<{template.CONSUMER_FUNCTION}>"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", "QueueName", "<EventsDeadLetterQueue.QueueName>"),
        ("AWS/DynamoDB", "ConsumedReadCapacityUnits", "Sum", *table),
        ("AWS/DynamoDB", "ConsumedWriteCapacityUnits", "Sum", *table),
        ("AWS/DynamoDB", "ReadThrottleEvents", "Sum", *table),
        ("AWS/DynamoDB", "WriteThrottleEvents", "Sum", *table),
    }
    assert required <= shown(body)
    assert all(w["properties"].get("region", "<AWS::Region>") == "<AWS::Region>" for w in body["widgets"])
    (status,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(status["properties"]["alarms"]) == sorted(f"<{name}.Arn>" for name in alarms_of(resources))
    assert resources[monitoring.DASHBOARD]["Properties"]["DashboardName"] == f"livestats-{stage}"


def test_the_app_emits_its_metrics_with_the_dimension_the_dashboard_reads() -> None:
    from chalicelib.process import observability

    observability.count("EventsAccepted")
    try:
        emitted: dict[str, Any] = dict(observability.metrics.serialize_metric_set())
    finally:
        observability.metrics.clear_metrics()
    (directive,) = emitted["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [list(monitoring.SERVICE)]
    assert {name: emitted[name] for name in monitoring.SERVICE} == monitoring.SERVICE == {"service": "livestats"}


def test_dashboard_widgets_do_not_overlap() -> None:
    body, _ = dashboard_body("prod")
    cells: set[tuple[int, int]] = set()
    for widget in body["widgets"]:
        assert widget["x"] + widget["width"] <= 24
        columns = range(widget["x"], widget["x"] + widget["width"])
        area = {(x, y) for x in columns for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not area & cells
        cells |= area


@pytest.mark.parametrize("stage", STAGES)
def test_the_outputs_give_the_dashboards_url_and_the_topic(stage: str) -> None:
    outputs = template.resources(stage)["Outputs"]
    assert outputs["DashboardURL"]["Value"] == {
        "Fn::Sub": "https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}"
        "#dashboards:name=${Dashboard}"
    }
    assert outputs["AlarmTopicArn"]["Value"] == TOPIC


# --- against the packaged template (called by tests/test_deployment.py's packaging test) ------------------------


def check_packaged(stage: str, resources: dict[str, Any]) -> None:
    """Each alarm's Ref names a resource `chalice package` generated or the template merged, of the right kind, and
    a function's duration threshold is under the timeout Chalice gave it."""
    functions = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    api = resources[template.REST_API]["Properties"]
    for name, alarm in alarms_of(resources).items():
        for _, metric, found, _ in watched(alarm):
            if "FunctionName" in found:
                function = found["FunctionName"]["Ref"]
                assert function in functions, name
                if metric == "Duration":
                    assert alarm["Threshold"] < 1000 * resources[function]["Properties"]["Timeout"]
            if "ApiName" in found:
                assert (found["ApiName"], found["Stage"]) == (api["Name"], api["StageName"])
