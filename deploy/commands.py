"""`make package`, `make deploy` and `make destroy` for one stage of `.chalice/config.json`.

    python -m deploy package STAGE    build out/STAGE/sam.json (+ deployment.zip) and check it with cfn-lint
    python -m deploy deploy STAGE     package, create missing secrets, upload, create or update the stack, print URLs
    python -m deploy destroy STAGE    delete the stack; say what is kept

Every AWS call is a command of the AWS CLI (v1, from PyPI, pinned in requirements-dev.txt), run by one `Runner`
that echoes it first. With DRY_RUN=1 the runner prints each command, with the stage's values, and runs none;
commands whose answer a later step needs (the account, the stack's outputs) answer placeholders then.
The region is AWS_REGION or AWS_DEFAULT_REGION, else the CLI's configured one, and every command names it.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from deploy.stages import ROOT, Stage, load

BIN = Path(sys.executable).parent
# Deploying from a new account needs these: the stack creates IAM roles (with generated names), and the template
# uses SAM's transform (AWS::Serverless-2016-10-31), which CloudFormation expands only with AUTO_EXPAND.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
# The pages a person opens, relative to the API's URL.
PAGES = {"streams": "", "hits": "ui/hits", "metrics": "ui/metrics", "survey": "survey", "dashboard": "dashboard"}
DRY_ACCOUNT = "<account>"


class DeployError(Exception):
    """A step that can't go on; the message says what to do."""


@dataclass
class Runner:
    """Runs (or, in a dry run, only prints) each command, echoed as `+ command` the way `set -x` does."""

    dry_run: bool
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    printed: list[str] = field(default_factory=list)

    def _echo(self, args: Sequence[str | Path], stdout: Path | None = None) -> None:
        shown = shlex.join(_shown(arg) for arg in args) + (f" > {_shown(stdout)}" if stdout else "")
        self.printed.append(shown)
        print(f"+ {shown}", flush=True)

    def run(self, args: Sequence[str | Path], *, stdout: Path | None = None, env: dict[str, str] | None = None) -> None:
        """A command that must succeed; its output goes to the terminal (or to `stdout`). `env` adds variables."""
        self._echo(args, stdout)
        if self.dry_run:
            return
        environment = {**self.env, **(env or {})}
        if stdout is None:
            result = subprocess.run([str(a) for a in args], cwd=ROOT, env=environment)
        else:
            with stdout.open("w") as out:
                result = subprocess.run([str(a) for a in args], cwd=ROOT, env=environment, stdout=out)
        if result.returncode != 0:
            raise DeployError(f"{shlex.join(_shown(a) for a in args)} failed (exit code {result.returncode})")

    def answer(self, args: Sequence[str | Path], *, dry_answer: str = "", dry_code: int = 0) -> tuple[int, str, str]:
        """A command whose exit code and output the next step reads. A dry run answers as a new account would:
        `dry_code` and `dry_answer`."""
        self._echo(args)
        if self.dry_run:
            return dry_code, dry_answer, ""
        result = subprocess.run([str(a) for a in args], cwd=ROOT, env=self.env, capture_output=True, text=True)
        return result.returncode, result.stdout.strip(), result.stderr.strip()


def _shown(arg: str | Path) -> str:
    """Paths inside the project as the project sees them (`.venv/bin/aws`, `out/dev/sam.json`)."""
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(ROOT):
        return str(path.relative_to(ROOT))
    return str(arg)


def aws(*args: str | Path, region: str) -> list[str | Path]:
    return [BIN / "aws", *args, "--region", region]


def out_dir(stage: Stage) -> Path:
    return ROOT / "out" / stage.name


# --- package ----------------------------------------------------------------------------------------------------


def package(stage: Stage, runner: Runner, out: Path | None = None) -> Path:
    """Build the stage's template and deployment package into out/STAGE/ (or `out`) and lint the template."""
    out = out or out_dir(stage)
    if not runner.dry_run:
        out.mkdir(parents=True, exist_ok=True)
    resources = out / "resources.json"
    runner.run([sys.executable, "-m", "deploy.template", stage.name], stdout=resources)
    # The template names no region (it uses AWS::Region), but Chalice wants one to build it.
    region_for_chalice = runner.env.get("AWS_DEFAULT_REGION") or runner.env.get("AWS_REGION") or "us-east-1"
    runner.run(
        [BIN / "chalice", "package", "--stage", stage.name, "--pkg-format", "cloudformation",
         "--merge-template", resources, out],
        env={"AWS_DEFAULT_REGION": region_for_chalice},
    )  # fmt: skip
    runner.run([BIN / "cfn-lint", out / "sam.json"])
    return out / "sam.json"


# --- deploy -----------------------------------------------------------------------------------------------------


def region(runner: Runner) -> str:
    found = runner.env.get("AWS_REGION") or runner.env.get("AWS_DEFAULT_REGION")
    if found:
        return found
    code, configured, _ = runner.answer([BIN / "aws", "configure", "get", "region"], dry_answer="<region>")
    if code != 0 or not configured:
        raise DeployError("no AWS region: export AWS_REGION (e.g. AWS_REGION=eu-west-1) or run `aws configure`")
    return configured


def account(runner: Runner, where: str) -> str:
    code, found, error = runner.answer(
        aws("sts", "get-caller-identity", "--query", "Account", "--output", "text", region=where),
        dry_answer=DRY_ACCOUNT,
    )
    if code != 0:
        raise DeployError(
            f"no usable AWS credentials ({error or 'sts get-caller-identity failed'}); see docs/deploy.md"
        )
    return found


@contextmanager
def _secret_file() -> Iterator[Path]:
    """A fresh random secret in a file only this user can read: the CLI reads it (file://), so the value never
    appears in a command line, where any local user could see it in the process list."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "secret"
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
        yield path


def ensure_secrets(stage: Stage, runner: Runner, where: str) -> None:
    """Create each SSM SecureString the stage reads if it is missing; an existing one is never overwritten."""
    for variable, name in sorted(stage.secret_parameters.items()):
        with _secret_file() as secret:
            value = f"file://{secret}" if not runner.dry_run else "file://<a new random secret, in a 0600 file>"
            code, _, error = runner.answer(
                aws("ssm", "put-parameter", "--name", name, "--type", "SecureString", "--value", value,
                    "--description", f"livestats {stage.name}: {variable}", region=where)
            )  # fmt: skip
        if runner.dry_run:
            continue
        if code == 0:
            print(f"  created {name}")
        elif "ParameterAlreadyExists" in error:
            print(f"  kept {name} (it exists; rotate it with put-parameter --overwrite, docs/operations.md)")
        else:
            raise DeployError(f"could not create {name}: {error}")


def artifact_bucket(runner: Runner, where: str, account_id: str) -> str:
    """The bucket `cloudformation package` uploads the code to: one per account and region, made once."""
    bucket = f"livestats-artifacts-{account_id}-{where}"
    code, _, _ = runner.answer(aws("s3api", "head-bucket", "--bucket", bucket, region=where), dry_code=254)
    if code != 0:
        # New buckets block public access and encrypt by default; this one only ever holds deployment packages.
        runner.run(aws("s3", "mb", f"s3://{bucket}", region=where))
    return bucket


def stack_exists(stage: Stage, runner: Runner, where: str) -> bool:
    code, _, _ = runner.answer(
        aws("cloudformation", "describe-stacks", "--stack-name", stage.stack_name, region=where), dry_code=254
    )
    return code == 0


def refuse_a_kept_table(stage: Stage, runner: Runner, where: str) -> None:
    """A table kept from a destroyed stack has the stage's name, so a new stack could not create it: say so first."""
    code, _, _ = runner.answer(
        aws("dynamodb", "describe-table", "--table-name", stage.table_name, region=where), dry_code=254
    )
    if code == 0:
        raise DeployError(
            f"the table {stage.table_name} already exists (kept when the stack was deleted), so a new stack can't "
            "create it. Delete it to start afresh, or restore its data into the new stack: docs/operations.md"
        )


def deploy_stack(stage: Stage, runner: Runner, where: str, bucket: str, template: Path) -> None:
    packaged = out_dir(stage) / "packaged.json"
    runner.run(
        aws("cloudformation", "package", "--template-file", template, "--s3-bucket", bucket,
            "--s3-prefix", stage.stack_name, "--use-json", "--output-template-file", packaged, region=where)
    )  # fmt: skip
    runner.run(
        aws("cloudformation", "deploy", "--template-file", packaged, "--stack-name", stage.stack_name,
            "--s3-bucket", bucket, "--s3-prefix", stage.stack_name, "--capabilities", *CAPABILITIES,
            "--no-fail-on-empty-changeset", "--tags", "app=livestats", f"stage={stage.name}", region=where)
    )  # fmt: skip


def stack_outputs(stage: Stage, runner: Runner, where: str) -> dict[str, str]:
    dry = json.dumps(
        [
            {"OutputKey": "EndpointURL", "OutputValue": f"https://<api-id>.execute-api.{where}.amazonaws.com/api/"},
            {"OutputKey": "DashboardURL", "OutputValue": "<the stage's CloudWatch dashboard>"},
        ]
    )
    code, found, error = runner.answer(
        aws("cloudformation", "describe-stacks", "--stack-name", stage.stack_name,
            "--query", "Stacks[0].Outputs", "--output", "json", region=where),
        dry_answer=dry,
    )  # fmt: skip
    if code != 0:
        raise DeployError(f"could not read the stack's outputs: {error}")
    return {output["OutputKey"]: output["OutputValue"] for output in json.loads(found or "[]")}


def urls(stage: Stage, outputs: dict[str, str], where: str) -> list[str]:
    # Behind a custom domain the pages are at its URL (a root mapping drops the stage's /api/ prefix).
    api = outputs.get("CustomDomainURL") or outputs["EndpointURL"]
    lines = [f"API:        {api}"]
    if "CustomDomainTarget" in outputs:
        lines.append(f"DNS:        point {api} (CNAME or alias) at {outputs['CustomDomainTarget']}")
    lines += [f"{name.capitalize() + ':':11} {api}{path}" for name, path in PAGES.items()]
    lines.append(f"Reference:  {api}docs")
    if "DashboardURL" in outputs:
        lines.append(f"Operations: {outputs['DashboardURL']}")
    for variable, name in sorted(stage.secret_parameters.items()):
        if variable != "CURSOR_SECRET_PARAMETER":
            read = shlex.join(
                ["aws", "ssm", "get-parameter", "--name", name, "--with-decryption", "--query", "Parameter.Value",
                 "--output", "text", "--region", where]
            )  # fmt: skip
            lines.append(f"{variable.removesuffix('_PARAMETER').replace('_', ' ').lower()}: {read}")
    return lines


def deploy(stage: Stage, runner: Runner) -> list[str]:
    where = region(runner)
    account_id = account(runner, where)
    template = package(stage, runner)
    if not stack_exists(stage, runner, where):
        refuse_a_kept_table(stage, runner, where)
    ensure_secrets(stage, runner, where)
    bucket = artifact_bucket(runner, where, account_id)
    deploy_stack(stage, runner, where, bucket, template)
    return urls(stage, stack_outputs(stage, runner, where), where)


# --- destroy ----------------------------------------------------------------------------------------------------


def destroy(stage: Stage, runner: Runner) -> list[str]:
    where = region(runner)
    runner.run(aws("cloudformation", "delete-stack", "--stack-name", stage.stack_name, region=where))
    runner.run(aws("cloudformation", "wait", "stack-delete-complete", "--stack-name", stage.stack_name, region=where))
    parameters = " ".join(sorted(stage.secret_parameters.values()))
    return [
        f"Deleted the stack {stage.stack_name}: the functions, the API, the events stream and its dead-letter queue "
        "(with any records not yet applied), the alarms, the dashboard and the log groups.",
        f"Kept: the table {stage.table_name} with its data (and its point-in-time backups), the SSM parameters "
        f"{parameters}, and the bucket livestats-artifacts-<account>-{where} of deployment packages.",
        f"Deploying {stage.name} again needs the table gone or restored into the new stack: docs/operations.md.",
    ]


COMMANDS: dict[str, Callable[[Stage, Runner], object]] = {"package": package, "deploy": deploy, "destroy": destroy}


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in COMMANDS:
        print(f"usage: python -m deploy {{{','.join(COMMANDS)}}} STAGE", file=sys.stderr)
        return 2
    command, stage_name = argv
    dry_run = os.environ.get("DRY_RUN", "") not in ("", "0")
    try:
        stage = load(stage_name)
        runner = Runner(dry_run)
        result = COMMANDS[command](stage, runner)
    except (KeyError, DeployError) as error:
        print(f"{command} {stage_name}: {error.args[0]}", file=sys.stderr)
        return 1
    if isinstance(result, list):
        print("\n".join(result))
    if dry_run:
        print(f"(DRY_RUN: {len(runner.printed)} commands printed, none run)")
    return 0
