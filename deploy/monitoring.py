"""The stage's alarms, their SNS topic and its CloudWatch dashboard (merged by deploy/template.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deploy.stages import Stage
    from deploy.template import Function


def resources(stage: Stage, functions: list[Function]) -> dict[str, Any]:
    return {}


def outputs(stage: Stage) -> dict[str, Any]:
    return {}
