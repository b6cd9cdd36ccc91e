"""HTTP layer shared by the listings of names (GET /streams, /metric, /averages: their routes are in each
capability's blueprint) and the deletions: GET /deletions (each purge's progress) and the scheduled purge."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Rate, Response

from chalicelib.edge import contract, web
from chalicelib.names.models import DeletionsPage, DeletionsQuery, ListQuery
from chalicelib.names.store import NameStore, Purge
from chalicelib.process import runtime
from chalicelib.process.observability import count, logger
from chalicelib.pure import clock

bp: Blueprint = Blueprint(__name__)

# The purge's time per scheduled run (its function's timeout is 60 s: .chalice/config.json), and how many
# deletions one run takes on.
PURGE_BUDGET_S = 40.0
PURGES_PER_RUN = 10

# Each kind's purge of one deleted incarnation: (name, incarnation, spent) -> (items removed, finished).
Purger = Callable[[str, int, Callable[[], bool]], tuple[int, bool]]


def _store() -> NameStore:
    return NameStore(runtime.dynamodb(), runtime.table_name())


def _iso(epoch_ms: int | None) -> str | None:
    return None if epoch_ms is None else clock.iso(epoch_ms)


def list_page(request: Any, kind: str, field: str, items: str, query: ListQuery) -> Response:
    """One page of the kind's names: `{items: [{field, updated_at}], cursor}`; one Query of the registry. The cursor
    is signed with the prefix it pages (web.encode_cursor), so its name always starts with that prefix."""
    position = web.decode_cursor(request, {"after": str}, query=("prefix",))
    after = str(position["after"]) if position else None
    page = _store().list_names(kind, query.prefix, query.limit, after)
    body = {
        items: [{field: e.name, "updated_at": _iso(e.updated_at)} for e in page.entries],
        "cursor": web.encode_cursor(request, {"after": page.after} if page.after else None, query=("prefix",)),
    }
    return web.json_response(body)


def deletion_body(purge: Purge) -> dict[str, Any]:
    return {
        "kind": purge.kind,
        "name": purge.name,
        "incarnation": purge.gen,
        "requested_at": clock.iso(purge.requested_at),
        "removed_items": purge.removed,
        "done": purge.done_at is not None,
        "done_at": _iso(purge.done_at),
    }


@bp.route("/deletions", methods=["GET"])
@contract.operation(
    "Deletions and the progress of their background purge",
    tags=("deletions",),
    query=DeletionsQuery,
    responses={200: DeletionsPage},
    description="A DELETE of a stream or a metric ends the name at once (nothing deleted is read from its 204 on) "
    "and leaves the removal of its stored items to a purge that runs every minute; this lists each one, with "
    "the items removed so far and whether it is done (kept 7 days once done). `kind` and `prefix` select the "
    "deletions of one kind whose names start with `prefix`.",
)
def deletions(query: DeletionsQuery) -> Response:
    request = bp.current_request
    selector = ("kind", "prefix")
    position = web.decode_cursor(request, {"after": str}, query=selector)
    sk_prefix = f"{query.kind}#{query.prefix}" if query.kind else ""
    if query.prefix and not query.kind:
        sk_prefix = ""  # a name prefix alone spans kinds: filtered below
    after = str(position["after"]) if position else None
    page = _store().list_purges(sk_prefix, query.limit, after)
    shown = [p for p in page.entries if p.name.startswith(query.prefix)]
    body = {
        "deletions": [deletion_body(p) for p in shown],
        "cursor": web.encode_cursor(request, {"after": page.after} if page.after else None, query=selector),
    }
    return web.json_response(body)


_PURGERS: dict[str, Purger] = {}


def register_purger(kind: str, purger: Purger) -> None:
    """Each capability that defers a deletion's removal says how to purge one of its incarnations."""
    _PURGERS[kind] = purger


def run_purges(budget_s: float = PURGE_BUDGET_S, now_ms: int | None = None) -> dict[str, int]:
    """Work through the pending purges until the budget is spent: each in bounded steps, its progress recorded after
    each, so a run stopped anywhere loses nothing and the next resumes."""
    store = _store()
    deadline = time.monotonic() + budget_s

    def spent() -> bool:
        return time.monotonic() >= deadline

    now = clock.now_ms() if now_ms is None else now_ms
    removed = finished = 0
    for purge in store.pending(PURGES_PER_RUN, now):
        if spent():
            break
        purger = _PURGERS.get(purge.kind)
        if purger is None:
            logger.warning("no purger for this kind", extra={"kind": purge.kind})
            continue
        n, done = purger(purge.name, purge.gen, spent)
        store.progress(purge, n)
        removed += n
        if done and purge.final_at is not None and now < purge.final_at:
            store.defer(purge, purge.final_at)  # a final pass once the old incarnation's periods are all rolled up
        elif done:
            store.finish(purge, now)
            finished += 1
    count("PurgedItems", removed)
    return {"removed": removed, "finished": finished}


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def purge_deleted(event: Any) -> dict[str, int]:
    """Every minute: remove the items of deleted incarnations (streams' audit entries and sessions, metrics' minutes,
    sketches, markers and rollups), in bounded steps."""
    return run_purges()
