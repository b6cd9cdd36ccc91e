"""The load generator behind POST /test/{n}: generated paths counted through the same code as real hits."""

from __future__ import annotations

from chalicelib.hits.store import HitStore
from chalicelib.process import request_context, runtime
from chalicelib.process.observability import logger
from chalicelib.storage import dynamo, write_once

TEST_WORKERS = 16  # concurrent hits of one /test/{n}/ run
TEST_BATCH = 500  # hits submitted at a time: bounds queued work and lets a run stop at its deadline
TEST_RESERVE_S = 3.0  # stop submitting batches when less than this is left of the request budget


def run_load_test(store: HitStore, generated: list[str], day: str, expires_at: int) -> int:
    """Count each generated path through the same code as a real hit, TEST_WORKERS at a time on the shared
    executor, in batches, and answer how many were counted: a run stops short of its deadline, and when the
    database stops answering it stops there (each hit counted is whole: its counter and its totals together).

    Its hits run outside any Idempotency-Key's receipts (chalicelib/storage/write_once.py): a run is random paths, and a
    retried run is another run."""
    counted = 0
    with write_once.unkeyed():
        for start in range(0, len(generated), TEST_BATCH):
            left = request_context.remaining()
            if left is not None and left < TEST_RESERVE_S:
                logger.warning("load test stopped at its deadline", extra={"counted": counted})
                break
            batch = generated[start : start + TEST_BATCH]
            outcomes = runtime.fan_out(lambda p: _try_record(store, p, day, expires_at), batch, most=TEST_WORKERS)
            counted += sum(1 for outcome in outcomes if outcome is True)
            if None in outcomes:
                logger.warning("load test stopped: the database is not answering", extra={"counted": counted})
                break
    return counted


def _try_record(store: HitStore, path: str, day: str, expires_at: int) -> bool | None:
    """True if counted, False if it failed, None if the database stopped answering (the run stops)."""
    try:
        store.record(path, day, expires_at)
    except Exception as exc:
        if dynamo.unavailable_cause(exc) is not None:
            return None
        logger.exception("load test hit failed", extra={"path": path})
        return False
    return True
