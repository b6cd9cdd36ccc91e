"""`Client`: one typed method per capability of the livestats API (openapi.json is the contract)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from .errors import ConnectionFailed, error_from_answer, parse_retry_after
from .models import (
    Accepted,
    Appended,
    DaySeries,
    Event,
    Hit,
    Names,
    Quantiles,
    Ranking,
    Series,
    Sessions,
    Snapshot,
    Window,
)

USER_AGENT = "livestats-client/0.1"


def segment(name: str) -> str:
    """A path parameter (a stream name, a metric or window key) as one percent-encoded path segment."""
    return quote(name, safe="")


def hit_url_path(path: str) -> str:
    """The URL path that counts a hit on `path` (`/api` or `/api/...`): every character but `/` percent-encoded, so
    that the path the service decodes is `path` itself, as a hit event's `path` is counted."""
    if path != "/api" and not path.startswith("/api/"):
        raise ValueError(f"a hit's path is /api or /api/..., not {path!r}")
    return quote(path, safe="/")


def format_level(q: float) -> str:
    """A quantile level as the service's `q` takes it: plain decimals, never an exponent (1e-05 → 0.00001)."""
    text = repr(float(q))
    return format(Decimal(text), "f") if "e" in text or "E" in text else text


def levels(qs: Sequence[float]) -> str:
    return ",".join(format_level(q) for q in qs)


def iso_time(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("a series bound needs a time zone (e.g. datetime.now(timezone.utc))")
    return when.isoformat()


class Client:
    """The livestats API at `base_url`, which may hold a path prefix (a deployed stage: `https://x.execute-api.
    eu-west-1.amazonaws.com/api`). `token` is the write token (or the admin token), sent as `Authorization: Bearer`
    with every request when given.

    Every call raises `LivestatsError` (a subclass of it, see `errors`) for an error answer or no answer, and makes
    one attempt: retry a write with the same `idempotency_key` to have it applied at most once. Use it as a context
    manager, or `close()` it, to close its connections."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """One request to `path` (already percent-encoded, starting with /) under the base URL; the answer when it
        is a 2xx, else the error raised."""
        headers = {}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = self._http.request(method, self.base_url + path, params=params, content=content, headers=headers)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(None, "timeout", f"{method} {path}: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(None, "connection_failed", f"{method} {path}: {exc!r}") from exc
        if response.is_success:
            return response
        try:
            answer = response.json()
        except ValueError:
            answer = None
        raise error_from_answer(response.status_code, answer, parse_retry_after(response.headers.get("Retry-After")))

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def _names(self, path: str, items: str, field: str, prefix: str, limit: int | None, cursor: str | None) -> Names:
        params: dict[str, str | int] = {"prefix": prefix} if prefix else {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return Names.from_json(self._json("GET", path, params=params), items, field)

    # Streams: running statistics.

    def add(
        self,
        stream: str,
        values: float | Sequence[float],
        *,
        user: str | None = None,
        idempotency_key: str | None = None,
    ) -> Snapshot:
        """Add one value or up to 100 to the stream's active session; its snapshot after them."""
        body: dict[str, Any] = {"value": values} if isinstance(values, int | float) else {"values": list(values)}
        if user is not None:
            body["user"] = user
        raw = self._json("POST", f"/streams/{segment(stream)}/values", body=body, idempotency_key=idempotency_key)
        return Snapshot.from_json(raw)

    def snapshot(self, stream: str) -> Snapshot:
        return Snapshot.from_json(self._json("GET", f"/streams/{segment(stream)}"))

    def stream_quantiles(self, stream: str, q: Sequence[float]) -> Quantiles:
        """Any quantiles (levels from 0 to 1) of the active session, within 1%."""
        return Quantiles.from_json(self._json("GET", f"/streams/{segment(stream)}/quantiles", params={"q": levels(q)}))

    def reset(self, stream: str, *, user: str | None = None, idempotency_key: str | None = None) -> Snapshot:
        """Close the active session (kept in `sessions`; the next value starts a new one); the closed session.
        InvalidRequest 409 `no_active_session` if it holds no values."""
        body = {} if user is None else {"user": user}
        raw = self._json("POST", f"/streams/{segment(stream)}/reset", body=body, idempotency_key=idempotency_key)
        return Snapshot.from_json(raw)

    def streams(self, *, prefix: str = "", limit: int | None = None, cursor: str | None = None) -> Names:
        """A page of the streams that exist (names starting with `prefix`); pass the page's `cursor` for the next."""
        return self._names("/streams", "streams", "stream", prefix, limit, cursor)

    def delete_stream(self, stream: str, *, idempotency_key: str | None = None) -> None:
        """Delete the stream: its sessions, audit and statistics are gone at once (their items are purged in the
        background: `GET /deletions`); values added later start it afresh. Deleting what does not exist is fine."""
        self.request("DELETE", f"/streams/{segment(stream)}", idempotency_key=idempotency_key)

    def sessions(self, stream: str, *, limit: int | None = None, cursor: str | None = None) -> Sessions:
        """A page of the stream's closed sessions, newest first; pass the page's `cursor` for the next."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if cursor is not None:
            params["cursor"] = cursor
        return Sessions.from_json(self._json("GET", f"/streams/{segment(stream)}/sessions", params=params))

    # Metrics: last-hour sums and quantiles, and history.

    def post_metric(self, key: str, value: float, *, idempotency_key: str | None = None) -> None:
        """Post a value (the service rounds it half away from zero to an integer)."""
        self.request("POST", f"/metric/{segment(key)}", body={"value": value}, idempotency_key=idempotency_key)

    def metrics(self, *, prefix: str = "", limit: int | None = None, cursor: str | None = None) -> Names:
        """A page of the metric keys that hold values (a key is listed once its first minute is compacted)."""
        return self._names("/metric", "metrics", "key", prefix, limit, cursor)

    def delete_metric(self, key: str, *, idempotency_key: str | None = None) -> None:
        """Delete the key's values, minutes, sketches and history; values posted later start it afresh."""
        self.request("DELETE", f"/metric/{segment(key)}", idempotency_key=idempotency_key)

    def metric_sum(self, key: str, window: int = 3600) -> int:
        """The sum of the values of the last `window` seconds (1 to 86,400)."""
        return int(self._json("GET", f"/metric/{segment(key)}/sum", params={"window": window})["value"])

    def metric_quantiles(self, key: str, q: Sequence[float], window: int = 3600) -> Quantiles:
        params: dict[str, str | int] = {"window": window, "q": levels(q)}
        return Quantiles.from_json(self._json("GET", f"/metric/{segment(key)}/quantiles", params=params))

    def metric_series(
        self, key: str, start: datetime, end: datetime, step: int, q: Sequence[float] | None = None
    ) -> Series:
        """Count, sum, min, max, mean (and quantiles `q`) per step (60, 300, 3600 or 86400 s) in [start, end)."""
        params: dict[str, str | int] = {"from": iso_time(start), "to": iso_time(end), "step": step}
        if q:
            params["q"] = levels(q)
        return Series.from_json(self._json("GET", f"/metric/{segment(key)}/series", params=params))

    # Moving averages.

    def set_window(self, key: str, size: int, *, idempotency_key: str | None = None) -> Window:
        """Create a window of the last `size` values (1 to 10,000), or resize it; its state after."""
        raw = self._json("PUT", f"/averages/{segment(key)}", body={"size": size}, idempotency_key=idempotency_key)
        return Window.from_json(raw)

    def append(self, key: str, value: float, *, idempotency_key: str | None = None) -> Appended:
        """Append a value to the window (NotFound if it was never created); its average after."""
        raw = self._json("POST", f"/averages/{segment(key)}", body={"value": value}, idempotency_key=idempotency_key)
        return Appended.from_json(raw)

    def window(self, key: str) -> Window:
        return Window.from_json(self._json("GET", f"/averages/{segment(key)}"))

    def windows(self, *, prefix: str = "", limit: int | None = None, cursor: str | None = None) -> Names:
        """A page of the moving-average windows that exist."""
        return self._names("/averages", "averages", "key", prefix, limit, cursor)

    def delete_window(self, key: str, *, idempotency_key: str | None = None) -> None:
        """Delete the window; an append after it gets NotFound until it is created again."""
        self.request("DELETE", f"/averages/{segment(key)}", idempotency_key=idempotency_key)

    # Hits.

    def hit(self, path: str) -> Hit:
        """Count a hit on `path` (`/api` or `/api/...`, as a hit event names it); its count after."""
        raw = self._json("GET", hit_url_path(path))
        return Hit(str(raw["path"]), int(raw["count"]))

    def ranking(self, *, limit: int | None = None, day: date | None = None, cursor: str | None = None) -> Ranking:
        """A page of the paths ranked by hits, all time or one UTC `day`; pass the page's `cursor` for the next."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if day is not None:
            params["day"] = day.isoformat()
        if cursor is not None:
            params["cursor"] = cursor
        return Ranking.from_json(self._json("GET", "/stats", params=params))

    def hit_series(self, path: str, start: date, end: date) -> DaySeries:
        """A path's hits on every UTC day from `start` to `end`, both included (at most 401 days, 400 back)."""
        params = {"path": path, "from": start.isoformat(), "to": end.isoformat()}
        return DaySeries.from_json(self._json("GET", "/stats/series", params=params))

    # Ingest.

    def send_events(self, events: Sequence[Event], *, idempotency_key: str | None = None) -> Accepted:
        """One `POST /events` of 1 to 500 events (at most 256 KiB); `EventBatcher` batches and retries for you."""
        response = self.request("POST", "/events", body={"events": list(events)}, idempotency_key=idempotency_key)
        return Accepted.from_json(response.json(), parse_retry_after(response.headers.get("Retry-After")))
