"""Deploying a stage: the template (Chalice's output merged with deploy/template.py's resources), checked by cfn-lint
for every stage, and the commands `make deploy` / `make destroy` run, checked through their dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.storage import table
from deploy import stages, template
from deploy.commands import Runner, package
from tests import test_monitoring

ROOT = Path(__file__).resolve().parents[1]
STAGES = stages.names()
pytestmark = pytest.mark.pure


def merged(stage: str) -> dict[str, Any]:
    resources: dict[str, Any] = template.resources(stage)["Resources"]
    return resources


@pytest.mark.parametrize("stage", STAGES)
def test_resources_come_from_the_one_table_definition(stage: str) -> None:
    resource = merged(stage)["Table"]
    request = table.create_table_request(resource["Properties"]["TableName"])
    for key in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode"):
        assert resource["Properties"][key] == request[key]
    assert resource["Properties"]["TimeToLiveSpecification"] == {"AttributeName": table.TTL_ATTRIBUTE, "Enabled": True}
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"


def test_only_prod_protects_its_table_from_deletion() -> None:
    assert merged("prod")["Table"]["Properties"]["DeletionProtectionEnabled"] is True
    assert "DeletionProtectionEnabled" not in merged("dev")["Table"]["Properties"]


@pytest.mark.parametrize("stage", STAGES)
def test_policy_grants_exactly_the_stage_table_and_secrets(stage: str) -> None:
    loaded = stages.load(stage)
    policy = loaded.policy
    name = loaded.table_name
    dynamo = next(s for s in policy["Statement"] if any(a.startswith("dynamodb:") for a in s["Action"]))
    assert dynamo["Resource"] == [f"arn:aws:dynamodb:*:*:table/{name}", f"arn:aws:dynamodb:*:*:table/{name}/index/*"]
    assert not any(action.endswith("*") for action in dynamo["Action"])
    ssm = next(s for s in policy["Statement"] if s["Action"] == ["ssm:GetParameter"])
    assert sorted(ssm["Resource"]) == sorted(
        f"arn:aws:ssm:*:*:parameter{parameter}" for parameter in loaded.secret_parameters.values()
    )
    assert set(loaded.secret_parameters) == {
        "ADMIN_TOKEN_PARAMETER",
        "CURSOR_SECRET_PARAMETER",
        "WRITE_TOKEN_PARAMETER",
    }


@pytest.mark.parametrize("stage", STAGES)
def test_stages_in_one_account_name_nothing_alike(stage: str) -> None:
    """Two stages deploy side by side: every name a stage gives (stack, table, stream, parameters, metrics) is its own."""
    mine, others = stages.load(stage), [stages.load(s) for s in STAGES if s != stage]
    for other in others:
        assert mine.stack_name != other.stack_name and mine.table_name != other.table_name
        assert mine.stream_name != other.stream_name and mine.metrics_namespace != other.metrics_namespace
        assert not set(mine.secret_parameters.values()) & set(other.secret_parameters.values())


@pytest.mark.parametrize("stage", STAGES)
def test_the_stream_is_named_as_the_app_reads_it(stage: str, env: Any) -> None:
    from chalicelib.process import settings

    env.unset("EVENTS_STREAM_NAME")
    for name, value in stages.load(stage).environment.items():
        env.set(name, value)
    stream = merged(stage)[template.STREAM]["Properties"]
    assert stream["Name"] == settings.get().events_stream_name


def test_prod_streams_on_demand_and_dev_on_one_shard() -> None:
    prod, dev = merged("prod")[template.STREAM]["Properties"], merged("dev")[template.STREAM]["Properties"]
    assert prod["StreamModeDetails"] == {"StreamMode": "ON_DEMAND"} and "ShardCount" not in prod
    assert dev["StreamModeDetails"] == {"StreamMode": "PROVISIONED"} and dev["ShardCount"] == 1


def statements_of(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    (policy,) = resources[role]["Properties"]["Policies"]
    assert policy["PolicyName"] == f"{role}Policy"  # Chalice's own policy, replaced whole
    return list(policy["PolicyDocument"]["Statement"])


@pytest.mark.parametrize("stage", STAGES)
def test_each_function_may_do_only_what_it_needs(stage: str) -> None:
    resources = merged(stage)
    stage_statements = stages.load(stage).policy["Statement"]
    stream_arn = {"Fn::GetAtt": [template.STREAM, "Arn"]}
    extra: dict[str, list[dict[str, Any]]] = {}
    for function in template.functions():
        statements = statements_of(resources, function.role)
        assert statements[: len(stage_statements)] == stage_statements
        extra[function.logical_id] = statements[len(stage_statements) :]
        # Each writes only to its own log group.
        assert extra[function.logical_id][0] == {
            "Sid": "OwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": [function.log_group, "Arn"]},
        }
    assert extra[template.API_FUNCTION][1:] == [
        {"Sid": "EventsStreamPut", "Effect": "Allow", "Action": ["kinesis:PutRecords"], "Resource": stream_arn}
    ]
    read, dead_letter = extra[template.CONSUMER_FUNCTION][1:]
    assert read["Resource"] == stream_arn and set(read["Action"]) == {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
    }
    assert dead_letter["Action"] == ["sqs:SendMessage"]
    assert dead_letter["Resource"] == {"Fn::GetAtt": [template.DEAD_LETTER_QUEUE, "Arn"]}
    scheduled = [
        f.logical_id
        for f in template.functions()
        if f.logical_id not in (template.API_FUNCTION, template.CONSUMER_FUNCTION)
    ]
    assert scheduled == ["SweepHits", "CompactSums", "PurgeDeleted"]
    assert all(len(extra[name]) == 1 for name in scheduled)  # their logs, nothing on the stream


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_logs_to_a_group_with_the_stages_retention(stage: str) -> None:
    resources = merged(stage)
    retention = stages.load(stage).options.log_retention_days
    for function in template.functions():
        group = resources[function.log_group]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == retention
        logging = resources[function.logical_id]["Properties"]["LoggingConfig"]
        assert logging == {"LogGroup": {"Ref": function.log_group}}


def test_the_consumer_batches_as_the_stage_says(monkeypatch: pytest.MonkeyPatch) -> None:
    function = next(f for f in template.functions() if f.logical_id == template.CONSUMER_FUNCTION)
    dev = stages.load("dev")
    mapping = template.function_properties(dev, function)["Properties"]["Events"][template.CONSUMER_EVENT]
    assert (mapping["Properties"]["BatchSize"], mapping["Properties"]["MaximumBatchingWindowInSeconds"]) == (1000, 1)
    wide = stages.Stage(
        dev.name,
        dev.chalice,
        dev.options.model_copy(update={"events_batching_window_s": 60, "events_batch_size": 10_000}),
    )
    mapping = template.function_properties(wide, function)["Properties"]["Events"][template.CONSUMER_EVENT]
    assert (mapping["Properties"]["BatchSize"], mapping["Properties"]["MaximumBatchingWindowInSeconds"]) == (10_000, 60)
    from pydantic import ValidationError

    for bad in ({"events_batching_window_s": 301}, {"events_batch_size": 10_001}):
        with pytest.raises(ValidationError):
            stages.DeployOptions.model_validate(bad)


@pytest.mark.parametrize("stage", STAGES)
def test_the_api_is_throttled_as_the_stage_says(stage: str) -> None:
    options = stages.load(stage).options
    api = merged(stage)[template.REST_API]["Properties"]
    assert api["Name"] == f"livestats-{stage}"
    assert api["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": options.throttle_rate,
            "ThrottlingBurstLimit": options.throttle_burst,
        }
    ]


def test_the_stage_options_refuse_what_aws_would() -> None:
    from pydantic import ValidationError

    for bad in ({"log_retention_days": 10}, {"throttle_burst": 0}, {"alarm_email": "nobody"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            stages.DeployOptions.model_validate(bad)
    with pytest.raises(KeyError, match="no stage 'nope'"):
        stages.load("nope")


def test_tracing_follows_chalices_xray_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = stages.load("dev")
    assert not dev.xray  # off unless a stage turns it on
    traced = stages.Stage(dev.name, dev.chalice, dev.options)
    monkeypatch.setattr(stages.Stage, "xray", property(lambda self: True))
    function = template.functions()[0]
    assert template.function_properties(traced, function)["Properties"]["Environment"] == {
        "Variables": {"TRACING": "true"}
    }
    assert template.function_statements(traced, function)[-1]["Action"] == [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    ]


def test_a_custom_domain_is_printed_with_its_dns_target(monkeypatch: pytest.MonkeyPatch) -> None:
    from deploy.commands import urls

    dev = stages.load("dev")
    assert template.custom_domain_outputs(dev) == {}  # none configured
    domain = {"domain_name": "stats.example.com", "certificate_arn": "arn:aws:acm:eu-west-1:1:certificate/x"}
    monkeypatch.setattr(stages.Stage, "custom_domain", property(lambda self: domain))
    outputs = template.custom_domain_outputs(dev)
    assert outputs["CustomDomainURL"] == {"Value": "https://stats.example.com/"}
    assert outputs["CustomDomainTarget"] == {"Value": {"Fn::GetAtt": ["ApiGatewayCustomDomain", "RegionalDomainName"]}}
    domain["url_prefix"] = "/stats"
    assert template.custom_domain_outputs(dev)["CustomDomainURL"] == {"Value": "https://stats.example.com/stats/"}
    lines = urls(
        dev,
        {
            "EndpointURL": "https://abc.execute-api.eu-west-1.amazonaws.com/api/",
            "CustomDomainURL": "https://stats.example.com/",
            "CustomDomainTarget": "d-1.execute-api.eu-west-1.amazonaws.com",
        },
        "eu-west-1",
    )
    assert lines[0] == "API:        https://stats.example.com/"
    assert "at d-1.execute-api.eu-west-1.amazonaws.com" in lines[1]
    assert "Hits:       https://stats.example.com/ui/hits" in lines


# --- the packaged template, through cfn-lint --------------------------------------------------------------------


def test_every_stage_packages_and_passes_cfn_lint(tmp_path: Path) -> None:
    """Every stage built as `make package STAGE=...` builds it; `package` raises if chalice or cfn-lint fails.

    One test for all stages, so that two test workers never run `chalice package` on the project at once."""
    for stage in STAGES:
        sam = package(stages.load(stage), Runner(dry_run=False), tmp_path / stage)
        check_packaged(stage, json.loads(sam.read_text())["Resources"])


def check_packaged(stage: str, resources: dict[str, Any]) -> None:
    loaded = stages.load(stage)
    assert resources["Table"]["Properties"]["TableName"] == loaded.table_name
    handler_env = resources["APIHandler"]["Properties"]["Environment"]["Variables"]
    assert handler_env["TABLE_NAME"] == loaded.table_name
    assert handler_env["WRITE_TOKEN_PARAMETER"] == f"/livestats/{stage}/write-token"
    consumer = resources["ApplyEvents"]["Properties"]
    assert consumer["Handler"] == "chalicelib.ingest.consumer.apply_events"
    assert consumer["Environment"]["Variables"]["DEAD_LETTER_QUEUE_URL"] == {"Ref": "EventsDeadLetterQueue"}
    assert consumer["Environment"]["Variables"]["TABLE_NAME"] == loaded.table_name  # merged, not replaced
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
    # Every function Chalice generated has its log group: none was missed by template.functions().
    generated = {name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert generated == {f.logical_id for f in template.functions()}
    assert all("LoggingConfig" in resources[name]["Properties"] for name in generated)
    test_monitoring.check_packaged(stage, resources)
    check_api_passes_preflights_and_pixels(resources["RestAPI"]["Properties"]["DefinitionBody"])


def check_api_passes_preflights_and_pixels(swagger: dict[str, Any]) -> None:
    """API Gateway hands every OPTIONS to the function, which answers CORS preflights as the dev server does
    (chalicelib/edge/cors.py), instead of a mock of its own; and decodes the pixel's GIF for a browser's Accept."""
    for path, methods in swagger["paths"].items():
        integration = methods["options"]["x-amazon-apigateway-integration"]
        assert integration["type"] == "aws_proxy", path
    assert "image/*" in swagger["x-amazon-apigateway-binary-media-types"]


# --- the commands, dry run --------------------------------------------------------------------------------------


def dry_run(*args: str, region: str = "eu-west-1") -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run(
        [sys.executable, "-m", "deploy", *args],
        cwd=ROOT,
        env={**environment, "DRY_RUN": "1", "AWS_REGION": region},
        capture_output=True,
        text=True,
    )


def commands(output: str) -> list[str]:
    return [line[2:] for line in output.splitlines() if line.startswith("+ ")]


@pytest.mark.parametrize("stage", STAGES)
def test_a_dry_run_deploy_prints_every_command_with_the_stages_values(stage: str) -> None:
    result = dry_run("deploy", stage)
    assert result.returncode == 0, result.stderr
    bucket = "'livestats-artifacts-<account>-eu-west-1'"
    aws, region = ".venv/bin/aws", "--region eu-west-1"
    parameters = sorted(stages.load(stage).secret_parameters.items())
    assert commands(result.stdout) == [
        f"{aws} sts get-caller-identity --query Account --output text {region}",
        f".venv/bin/python -m deploy.template {stage} > out/{stage}/resources.json",
        f".venv/bin/chalice package --stage {stage} --pkg-format cloudformation "
        f"--merge-template out/{stage}/resources.json out/{stage}",
        f".venv/bin/cfn-lint out/{stage}/sam.json",
        f"{aws} cloudformation describe-stacks --stack-name livestats-{stage} {region}",
        f"{aws} dynamodb describe-table --table-name livestats-{stage} {region}",
        *(
            f"{aws} ssm put-parameter --name {name} --type SecureString "
            f"--value 'file://<a new random secret, in a 0600 file>' "
            f"--description 'livestats {stage}: {variable}' {region}"
            for variable, name in parameters
        ),
        f"{aws} s3api head-bucket --bucket {bucket} {region}",
        f"{aws} s3 mb 's3://livestats-artifacts-<account>-eu-west-1' {region}",
        f"{aws} cloudformation package --template-file out/{stage}/sam.json --s3-bucket {bucket} "
        f"--s3-prefix livestats-{stage} --use-json --output-template-file out/{stage}/packaged.json {region}",
        f"{aws} cloudformation deploy --template-file out/{stage}/packaged.json --stack-name livestats-{stage} "
        f"--s3-bucket {bucket} --s3-prefix livestats-{stage} --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND "
        f"--no-fail-on-empty-changeset --tags app=livestats stage={stage} {region}",
        f"{aws} cloudformation describe-stacks --stack-name livestats-{stage} --query 'Stacks[0].Outputs' "
        f"--output json {region}",
    ]
    # It ends with the stage's URLs, and how to read its tokens (never the tokens themselves).
    api = "https://<api-id>.execute-api.eu-west-1.amazonaws.com/api/"
    for url in (api, f"{api}ui/hits", f"{api}ui/metrics", f"{api}survey", f"{api}dashboard", f"{api}docs"):
        assert url in result.stdout
    assert f"--name /livestats/{stage}/admin-token --with-decryption" in result.stdout
    assert f"--name /livestats/{stage}/write-token --with-decryption" in result.stdout


@pytest.mark.parametrize("stage", STAGES)
def test_a_dry_run_destroy_deletes_the_stack_and_says_what_it_keeps(stage: str) -> None:
    result = dry_run("destroy", stage)
    assert result.returncode == 0, result.stderr
    assert commands(result.stdout) == [
        f".venv/bin/aws cloudformation delete-stack --stack-name livestats-{stage} --region eu-west-1",
        f".venv/bin/aws cloudformation wait stack-delete-complete --stack-name livestats-{stage} --region eu-west-1",
    ]
    assert f"Kept: the table livestats-{stage} with its data" in result.stdout
    assert f"/livestats/{stage}/write-token" in result.stdout


def test_an_unknown_stage_or_command_is_refused_before_any_command() -> None:
    unknown = dry_run("deploy", "staging")
    assert unknown.returncode == 1 and "no stage 'staging'" in unknown.stderr and not commands(unknown.stdout)
    usage = dry_run("upload", "dev")
    assert usage.returncode == 2 and "usage" in usage.stderr


def test_without_a_region_deploy_asks_the_cli_and_stops_when_it_has_none(tmp_path: Path) -> None:
    from deploy.commands import DeployError, region

    runner = Runner(dry_run=False, env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)})
    with pytest.raises(DeployError, match="export AWS_REGION"):
        region(runner)
    assert runner.printed == [".venv/bin/aws configure get region"]
