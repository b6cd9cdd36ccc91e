"""A deployed stage, as `.chalice/config.json` names it: Chalice's own settings, plus the stage's `deploy` block.

Chalice reads its keys (environment variables, the API stage, the policy file, `xray`, timeouts) through its own
`Config`, so the tools here see exactly what `chalice package` sees. Chalice ignores keys it does not know, so each
stage carries its deploy-time settings (guard rails, alarms) in a `"deploy"` object next to its
`environment_variables`, validated here into one model. The app's own settings stay in `chalicelib/process/settings.py`,
read from the environment at run time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from chalice.config import Config
from pydantic import BaseModel, ConfigDict, Field

from chalicelib.process.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".chalice" / "config.json"

# The retentions CloudWatch Logs accepts (days).
LogRetention = Literal[1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922]


class DeployOptions(BaseModel):
    """A stage's `deploy` block. The defaults suit a small stage; `prod` sets its own in the config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # API Gateway stage throttling (every method): the steady rate in requests/s and the burst. Well below the
    # account's default (10,000/s, burst 5,000), so one stage can't starve another (docs/operations.md says why).
    throttle_rate: float = Field(default=50, gt=0, le=10_000)
    throttle_burst: int = Field(default=100, ge=1, le=5_000)
    # How long each function's logs are kept (Lambda's own default is forever).
    log_retention_days: LogRetention = 30
    # An address the alarms' SNS topic mails (AWS asks it to confirm first); none: subscribe later by hand.
    alarm_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    # The table refuses DeleteTable while this is on (it is retained when the stack is deleted either way).
    table_deletion_protection: bool = False
    # The events stream: on demand (None: it scales itself, at $0.04 per stream-hour, ~$29 a month at rest), or
    # this many provisioned shards ($0.015 per shard-hour each: one shard, ~$11 a month, takes 1,000 records/s).
    stream_shards: int | None = Field(default=None, ge=1, le=500)
    # The events consumer's batches (Lambda's MaximumBatchingWindowInSeconds and BatchSize). A longer window and
    # bigger batches aggregate more events per write (fewer write units per event at scale: docs/benchmarks.md)
    # and delay what the events change by up to the window.
    events_batching_window_s: int = Field(default=1, ge=0, le=300)
    events_batch_size: int = Field(default=1000, ge=1, le=10_000)


@dataclass(frozen=True)
class Stage:
    """One stage of `.chalice/config.json`: Chalice's view of it and its deploy options."""

    name: str
    chalice: Config
    options: DeployOptions

    @property
    def stack_name(self) -> str:
        return f"livestats-{self.name}"

    @cached_property
    def environment(self) -> dict[str, str]:
        """The stage's environment variables (the config's, overridden by the stage's), as Chalice merges them."""
        return dict(self.chalice.environment_variables)

    @property
    def table_name(self) -> str:
        return self.environment["TABLE_NAME"]

    @property
    def stream_name(self) -> str:
        """EVENTS_STREAM_NAME, else the settings' default: the name the app's registration reads."""
        return self.environment.get("EVENTS_STREAM_NAME") or str(Settings.model_fields["events_stream_name"].default)

    @property
    def metrics_namespace(self) -> str:
        return self.environment["POWERTOOLS_METRICS_NAMESPACE"]

    @property
    def api_stage(self) -> str:
        return self.chalice.api_gateway_stage

    @property
    def custom_domain(self) -> dict[str, Any] | None:
        """Chalice's `api_gateway_custom_domain` (domain_name, certificate_arn, url_prefix), if the stage has one."""
        found: dict[str, Any] | None = self.chalice.api_gateway_custom_domain or None
        return found

    @property
    def xray(self) -> bool:
        """Chalice's `xray`: active tracing on the functions and the API, and the app's tracer (TRACING)."""
        return bool(self.chalice.xray_enabled)

    @cached_property
    def policy(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads((CONFIG.parent / self.chalice.iam_policy_file).read_text())
        return document

    @property
    def secret_parameters(self) -> dict[str, str]:
        """The SSM SecureString parameters the stage reads, by the variable that names each."""
        return {name: value for name, value in self.environment.items() if name.endswith("_PARAMETER")}


# `chalice local --stage local` next to `make run` (it reads make run's endpoints and secrets): never deployed.
LOCAL_STAGE = "local"


def names() -> list[str]:
    """The stages that deploy (every stage of the config but the local one)."""
    return [name for name in json.loads(CONFIG.read_text())["stages"] if name != LOCAL_STAGE]


def load(name: str) -> Stage:
    from chalice.cli.factory import CLIFactory

    stages = names()
    if name == LOCAL_STAGE:
        raise KeyError(f"stage {name!r} is for `chalice local` next to `make run`; it does not deploy")
    if name not in stages:
        raise KeyError(f"no stage {name!r} in .chalice/config.json (its stages: {', '.join(stages)})")
    stages_config = json.loads(CONFIG.read_text())["stages"]
    chalice = CLIFactory(str(ROOT)).create_config_obj(chalice_stage_name=name)
    return Stage(name, chalice, DeployOptions.model_validate(stages_config[name].get("deploy", {})))
