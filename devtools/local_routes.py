"""API Gateway-style route matching (greedy `{name+}` variables) for Chalice's local gateway.

chalice.local.RouteMatcher only matches routes with the same number of segments, so `/{proxy+}` never
matches locally although API Gateway routes it, and it hands the app path parameters still percent-encoded,
where API Gateway hands them decoded (`/averages/a%3Ab` is the key `a:b`). `install()` swaps in
GreedyRouteMatcher, which does both as API Gateway does.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

import chalice.local

LITERAL, VARIABLE, GREEDY = 0, 1, 2  # lower = more specific, as API Gateway ranks them


def _segments(path: str) -> list[str]:
    return [] if path == "/" else path.split("/")[1:]


def _kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return VARIABLE
    return LITERAL


class _Route:
    def __init__(self, url: str) -> None:
        self.url = url
        self.parts = _segments(url)
        self.kinds = [_kind(p) for p in self.parts]
        # Compared segment by segment; the url breaks exact ties so the outcome never depends on input order.
        self.rank = (tuple(self.kinds), url)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        captured: dict[str, str] = {}
        for i, (pattern, kind) in enumerate(zip(self.parts, self.kinds, strict=True)):
            if kind == GREEDY and i == len(self.parts) - 1:
                rest = "/".join(parts[i:])
                if not rest:
                    return None  # a greedy variable needs at least one non-empty segment
                captured[pattern[1:-2]] = unquote(rest)
                return captured
            if i >= len(parts):
                return None
            if kind == LITERAL:  # a `{x+}` that is not last is treated as a literal, like a malformed route
                if parts[i] != pattern:
                    return None
            elif kind in (VARIABLE, GREEDY):
                if not parts[i]:
                    return None
                captured[pattern[1:-1]] = unquote(parts[i])
        return captured if len(parts) == len(self.parts) else None


class GreedyRouteMatcher(chalice.local.RouteMatcher):
    def __init__(self, route_urls: list[str]) -> None:
        super().__init__(route_urls)
        self._routes = sorted((_Route(u) for u in route_urls), key=lambda r: r.rank)

    def match_route(self, url: str) -> chalice.local.MatchResult:
        parsed = urlparse(url)
        query_params = parse_qs(parsed.query, keep_blank_values=True)
        path = parsed.path
        # API Gateway drops a trailing slash (except on the root); chalice does the same.
        if path != "/" and path.endswith("/"):
            path = path[:-1]
        parts = _segments(path)
        # Routes are pre-sorted most specific first, so the first match is the one API Gateway would pick.
        for route in self._routes:
            captured = route.match(parts)
            if captured is not None:
                return chalice.local.MatchResult(route.url, captured, query_params)
        raise ValueError(f"No matching route found for: {url}")


def install() -> None:
    """Make chalice's LocalGateway (chalice.test.Client and LocalDevServer) use GreedyRouteMatcher.

    LocalGateway.__init__ looks up the module-global name `chalice.local.RouteMatcher` each time a gateway is
    built (per test client, and per connection in LocalDevServer), so rebinding that name is sufficient.
    """
    chalice.local.RouteMatcher = GreedyRouteMatcher  # type: ignore[misc]  # idempotent: same class every time
