"""Print the CloudFormation resources merged into `chalice package` output for a stage.

    python -m devtools.cfn prod > out/resources.json

The table comes from chalicelib/table.py (the one definition); its name is the
stage's TABLE_NAME from .chalice/config.json, which the IAM policy also names.
API Gateway's own errors (throttling, timeouts) get the service's error shape.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.table import cloudformation_resource

ROOT = Path(__file__).resolve().parents[1]


def stage_table_name(stage: str) -> str:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return str(config["stages"][stage]["environment_variables"]["TABLE_NAME"])


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


def resources(stage: str) -> dict[str, Any]:
    return {
        "Resources": {
            "Table": cloudformation_resource(stage_table_name(stage)),
            "GatewayDefault4xx": gateway_response("DEFAULT_4XX"),
            "GatewayDefault5xx": gateway_response("DEFAULT_5XX"),
        }
    }


if __name__ == "__main__":
    json.dump(resources(sys.argv[1] if len(sys.argv) > 1 else "prod"), sys.stdout, indent=2)
    print()
