"""The deployment template: Chalice's output merged with the table defined in chalicelib/table.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    lint = subprocess.run([bin_dir / "cfn-lint", out / "sam.json"], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
