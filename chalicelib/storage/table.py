"""The one DynamoDB table, defined once.

The local bootstrap, the tests and the CloudFormation resource merged into the
deployment template (`python -m deploy.template`) are all generated from here.
"""

from __future__ import annotations

import contextlib
from typing import Any

PARTITION_KEY = "pk"
SORT_KEY = "sk"
TTL_ATTRIBUTE = "expires_at"

# A sparse index ordered by a number: used where a ranking must be read in
# order without touching every item (hit counters).
RANKING_INDEX = "ranking"
RANKING_PARTITION_KEY = "rank_pk"
RANKING_SORT_KEY = "rank_score"

# One index per sortable survey column (chalicelib/survey/sorting.py), keys only: an entry is rewritten only
# when its own column's sort key changes, and a page's rows are read from the table by key. Every response
# carries these key attributes, so their names are short codes (an item's size counts names too), and all the
# indexes share one partition key attribute: the response's shard.
SURVEY_SORT_CODES: dict[str, str] = {
    "name": "nm", "email": "em", "age": "ag", "about": "ab", "address": "ad", "gender": "ge", "book": "bk",
    "colours": "co", "completed": "cp", "step": "st", "updated_at": "up",
}  # fmt: skip
SURVEY_SORT_COLUMNS: tuple[str, ...] = tuple(SURVEY_SORT_CODES)


def survey_sort_index(column: str) -> str:
    return f"survey_{column}"


SURVEY_SORT_SHARD = "sP"


def survey_sort_attributes(column: str) -> tuple[str, str]:
    """The (partition key, sort key) attributes of a column's index: e.g. `sP`, `nmS` for name."""
    return SURVEY_SORT_SHARD, f"{SURVEY_SORT_CODES[column]}S"


ATTRIBUTE_DEFINITIONS: list[dict[str, str]] = [
    {"AttributeName": PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": SORT_KEY, "AttributeType": "S"},
    {"AttributeName": RANKING_PARTITION_KEY, "AttributeType": "S"},
    {"AttributeName": RANKING_SORT_KEY, "AttributeType": "N"},
    {"AttributeName": SURVEY_SORT_SHARD, "AttributeType": "S"},
    *({"AttributeName": survey_sort_attributes(column)[1], "AttributeType": "S"} for column in SURVEY_SORT_COLUMNS),
]
KEY_SCHEMA: list[dict[str, str]] = [
    {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
    {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
]
GLOBAL_SECONDARY_INDEXES: list[dict[str, Any]] = [
    {
        "IndexName": RANKING_INDEX,
        "KeySchema": [
            {"AttributeName": RANKING_PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": RANKING_SORT_KEY, "KeyType": "RANGE"},
        ],
        "Projection": {"ProjectionType": "ALL"},
    },
    *(
        {
            "IndexName": survey_sort_index(column),
            "KeySchema": [
                {"AttributeName": survey_sort_attributes(column)[0], "KeyType": "HASH"},
                {"AttributeName": survey_sort_attributes(column)[1], "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
        for column in SURVEY_SORT_COLUMNS
    ),
]


def create_table_request(table_name: str) -> dict[str, Any]:
    """Arguments for `CreateTable` (boto3 client)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": ATTRIBUTE_DEFINITIONS,
        "KeySchema": KEY_SCHEMA,
        "GlobalSecondaryIndexes": GLOBAL_SECONDARY_INDEXES,
        "BillingMode": "PAY_PER_REQUEST",
    }


def ensure_table(client: Any, table_name: str) -> bool:
    """Create the table (and its TTL setting) if it is missing. True if created."""
    try:
        client.describe_table(TableName=table_name)
        return False
    except client.exceptions.ResourceNotFoundException:
        pass
    # Made meanwhile by another process, or by our own create that botocore resent after its answer was lost.
    with contextlib.suppress(client.exceptions.ResourceInUseException):
        client.create_table(**create_table_request(table_name))
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    client.update_time_to_live(
        TableName=table_name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    return True


def cloudformation_resource(table_name: str) -> dict[str, Any]:
    """The table as a CloudFormation resource for `chalice package --merge-template`."""
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": table_name,
            "AttributeDefinitions": ATTRIBUTE_DEFINITIONS,
            "KeySchema": KEY_SCHEMA,
            "GlobalSecondaryIndexes": GLOBAL_SECONDARY_INDEXES,
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    }
