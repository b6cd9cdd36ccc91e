"""GET /health: whether the function can use its table right now (for load balancers and monitors).

The check is one DescribeTable, which costs no read capacity. The answer is never cached.
"""

from __future__ import annotations

from typing import Literal

from chalice import Blueprint, Response

from chalicelib.edge import contract, web
from chalicelib.edge.errors import DatabaseUnavailable
from chalicelib.process import runtime
from chalicelib.storage import dynamo

bp: Blueprint = Blueprint(__name__)

NO_STORE = {"Cache-Control": "no-store"}


class Health(contract.Reply):
    status: Literal["ok"]
    database: Literal["ok"]


@bp.route("/health", methods=["GET"])
@contract.operation(
    "Whether the function can use its table now (one DescribeTable; never cached)",
    tags=("service",),
    responses={200: Health},
)
def health() -> Response:
    name = runtime.table_name()
    try:
        # Inside: without a database to use (no make run for the local stage, no region) there is no client either.
        client = runtime.dynamodb()
        status = client.describe_table(TableName=name)["Table"]["TableStatus"]
    except DatabaseUnavailable as no_database:
        no_database.headers.update(NO_STORE)
        raise
    except Exception as exc:
        if dynamo.error_code(exc) == "ResourceNotFoundException":
            raise DatabaseUnavailable(f"table {name} does not exist", headers=NO_STORE) from None
        error = dynamo.unavailable(exc)
        if error is None:
            raise
        error.headers.update(NO_STORE)
        raise error from exc
    if status != "ACTIVE":
        raise DatabaseUnavailable(f"table {name} is {status}, not ACTIVE", headers=NO_STORE)
    return web.json_response({"status": "ok", "database": "ok"}, headers=NO_STORE)
