"""When a writer refreshes a name's registry entry (pure: no AWS).

The registry (chalicelib/names/store.py) lists the names that exist with their `updated_at`, to the minute. A write
to a name must not also write the registry every time (a write per write, all to one partition), so each writer
(a Lambda container, a dev-server thread's process) remembers which names it registered in which minute and
registers a name again only in a later minute: at most one registry write per name, writer and minute, and every
minute in which a writer wrote a name is registered by that writer's first write of it in the minute.

`updated_at` is therefore the start of the minute of the name's last write that registered it: a listing's
`updated_at` is at most a minute behind the name's newest write.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable

MINUTE_MS = 60_000
# Names a writer remembers before it forgets them all (and registers each once more): bounds a container's memory.
REMEMBERED_MAX = 100_000


def minute_start(epoch_ms: int) -> int:
    """The start (epoch ms) of the UTC minute holding `epoch_ms`: the granularity of `updated_at`."""
    return epoch_ms - epoch_ms % MINUTE_MS


class Refreshes:
    """One writer's memory of the registry entries it wrote: `due` says whether a write of `name` at `now_ms` must
    also write its entry, `done` records that it did (only once the write that carried it committed)."""

    def __init__(self, most: int = REMEMBERED_MAX) -> None:
        self._written: dict[Hashable, int] = {}
        self._most = most
        self._lock = threading.Lock()

    def due(self, name: Hashable, now_ms: int) -> bool:
        with self._lock:
            written = self._written.get(name)
        return written is None or written < minute_start(now_ms)

    def done(self, name: Hashable, now_ms: int) -> None:
        minute = minute_start(now_ms)
        with self._lock:
            if len(self._written) >= self._most and name not in self._written:
                self._written.clear()
            if self._written.get(name, -1) < minute:
                self._written[name] = minute

    def forget(self, name: Hashable) -> None:
        with self._lock:
            self._written.pop(name, None)
