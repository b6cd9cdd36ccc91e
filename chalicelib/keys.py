"""The table's key layout: every partition and sort key is built here.

One table holds everything (see chalicelib/table.py). Partition keys start
with the kind of thing they hold, so features never collide:

  STREAM#{stream}#SHARD#{k}   STATE                 one of SHARDS Welford partial states
                              VALUE#{at}#{id}       audit entry (the values of one request)
  STREAM#{stream}             SESSION#{n:010d}      a closed session and its final figures
  IDEMPOTENCY                 {hash}                Powertools idempotency records (TTL)

Each shard lives in its own partition so that a hot stream spreads its writes
over SHARDS partitions instead of one item's ~1,000 writes/s.
"""

from __future__ import annotations

# --- running statistics (issue 2) -------------------------------------------
SHARDS = 8
STATE_SK = "STATE"
VALUE_PREFIX = "VALUE#"
SESSION_PREFIX = "SESSION#"


def stream_shard_pk(stream: str, shard: int) -> str:
    return f"STREAM#{stream}#SHARD#{shard}"


def stream_pk(stream: str) -> str:
    return f"STREAM#{stream}"


def value_sk(at_iso: str, request_id: str) -> str:
    # ISO timestamps of fixed width sort in time order; the id breaks ties.
    return f"{VALUE_PREFIX}{at_iso}#{request_id}"


def session_sk(session: int) -> str:
    return f"{SESSION_PREFIX}{session:010d}"


# --- idempotency (Powertools) -----------------------------------------------
# Powertools' composite-key layout puts every record under one partition key;
# the sort key is a hash, so DynamoDB can split that partition for heat.
IDEMPOTENCY_PARTITION = "IDEMPOTENCY"
