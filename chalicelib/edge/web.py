"""Parsing and checking what a client sends; shaping what it gets back.

Handlers call these so that every bad input gets the same clear 400.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import hashlib
import hmac
import json
import math
import re
import secrets
import sys
import threading
from collections.abc import Mapping
from typing import Any, cast

from chalice import Response
from chalice.app import Request

from chalicelib.edge.errors import InvalidInput, PayloadTooLarge, ServiceError
from chalicelib.process import settings
from chalicelib.process.observability import logger
from chalicelib.pure import textcheck
from chalicelib.storage import stage_secrets

MAX_BODY_BYTES = 256 * 1024
# Deeper than any body the service takes; bounds the work of checking one (json's own limit is a RecursionError).
MAX_JSON_DEPTH = 32


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class _Unrepresentable(float):
    """A JSON number literal that is not 0 but rounds to 0.0, or is too large for a float or an int.

    The parser marks it so the body check can name its field; no validator ever sees one.
    """


def _parse_float(literal: str) -> float:
    x = float(literal)
    mantissa = re.split("[eE]", literal, maxsplit=1)[0]
    if math.isinf(x) or (x == 0.0 and any(digit in mantissa for digit in "123456789")):
        return _Unrepresentable(x)
    return x


def _parse_int(literal: str) -> int | float:
    try:
        n = int(literal)
    except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
        return _Unrepresentable(math.inf)
    # Every number field is a float or a small int: an integer past a float's range is as unrepresentable as 1e400.
    return _Unrepresentable(math.inf) if abs(n) > sys.float_info.max else n


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # JSON leaves a repeated name's meaning to the parser (RFC 8259: first, last, or an error), so two parsers on
    # the way (a gateway's filter, this service) could read different values: refuse instead of picking one.
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidInput(f"body repeats the key {key[:40]!r} in one object", code="invalid_json")
        seen.add(key)
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a number JSON allows", code="invalid_json")


def _field_name(where: tuple[Any, ...] | None) -> str | None:
    """The field a node is at, e.g. values[3] or a.b, from the chain of (parent, key or index) pairs."""
    parts: list[str | int] = []
    while where is not None:
        where, part = where
        parts.append(part)
    name = ""
    for part in reversed(parts):
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or None


def _check_document(document: Any) -> None:
    """Every string (keys too) valid Unicode, every number representable, nesting bounded."""
    # (node, where, depth); `where` is built as a chain and named only for an error.
    stack: list[tuple[Any, tuple[Any, ...] | None, int]] = [(document, None, 0)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidInput(f"body is nested more than {MAX_JSON_DEPTH} levels deep", code="invalid_json")
        if isinstance(node, dict):
            for key, item in node.items():
                if textcheck.invalid_unicode(key):
                    raise InvalidInput("a key holds invalid Unicode (a lone surrogate)")
                stack.append((item, (where, key), depth + 1))
        elif isinstance(node, list):
            stack.extend((item, (where, i), depth + 1) for i, item in enumerate(node))
        elif isinstance(node, str) and textcheck.invalid_unicode(node):
            field = _field_name(where)
            raise InvalidInput(f"{field or 'body'} holds invalid Unicode (a lone surrogate)", field=field)
        elif isinstance(node, _Unrepresentable):
            field = _field_name(where)
            raise InvalidInput(f"{field or 'body'} is a number too small or too large to represent", field=field)


def body_too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"body is larger than {MAX_BODY_BYTES} bytes")


def _check_charset(request: Request) -> None:
    """Bodies are UTF-8 JSON; a Content-Type naming another charset is refused."""
    _, *params = (request.headers.get("content-type") or "").split(";")
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaType("bodies must be JSON in UTF-8 (charset=utf-8)", field="Content-Type")


def parse_json(raw: bytes) -> Any:
    """The one JSON parser for bodies: strict UTF-8 without a BOM, numbers kept representable, text valid."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("body is not UTF-8", code="invalid_json") from None
    if text.startswith("\ufeff"):
        raise InvalidInput("body must not start with a byte order mark", code="invalid_json")
    try:
        document = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_parse_float,
            parse_int=_parse_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise InvalidInput(f"body is nested more than {MAX_JSON_DEPTH} levels deep", code="invalid_json") from None
    except ValueError as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("body is not valid JSON", code="invalid_json") from None
    _check_document(document)
    return document


# A request's body, parsed once: the idempotency check's fingerprint and the view read the same document.
_parsed: contextvars.ContextVar[tuple[bytes, Any] | None] = contextvars.ContextVar("parsed_body", default=None)


def parse_json_once(raw: bytes) -> Any:
    """parse_json(raw), remembered for this request's context (a refusal is not remembered: it raises again)."""
    remembered = _parsed.get()
    if remembered is not None and remembered[0] is raw:
        return remembered[1]
    document = parse_json(raw)
    _parsed.set((raw, document))
    return document


def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object. An empty body is `{}` unless `required`."""
    _check_charset(request)
    raw = cast(bytes, request.raw_body or b"")  # chalice encodes a str body; its annotation still says str | bytes
    if len(raw) > MAX_BODY_BYTES:
        raise body_too_large()
    if not raw.strip():
        if required:
            raise InvalidInput("a JSON object body is required", code="invalid_json")
        return {}
    body = parse_json_once(raw)
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object", code="invalid_json")
    return body


# The range of values kept in running statistics and windows: every derived figure (M2 grows like
# count * x**2) stays storable as a DynamoDB number, whose magnitude is 1e-130 to 1e126.
VALUE_MAX_MAGNITUDE = 1e50
VALUE_MIN_MAGNITUDE = 1e-50


# Keys of last-hour sums and moving-average windows.
KEY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


# Page cursors: base64url(JSON position) "." base64url(MAC), the MAC an HMAC-SHA256 (truncated to 128 bits)
# under the stage's cursor secret over the position and what it pages: the route, its path parameters and
# the query parameters that select the listing. A cursor is opaque, cannot be forged or edited, and is
# refused on any other listing.
CURSOR_MAX_LENGTH = 2048  # a /stats/ cursor holds a path of up to 1,024 bytes
_CURSOR_MAC_BYTES = 16
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


class CursorKeyUnavailable(ServiceError):
    status = 503
    code = "unavailable"


_process_key_lock = threading.Lock()
_process_key: bytes | None = None


def _random_process_key() -> bytes:
    global _process_key
    with _process_key_lock:
        if _process_key is None:
            _process_key = secrets.token_bytes(32)
            logger.warning(
                "no CURSOR_SECRET or CURSOR_SECRET_PARAMETER: page cursors are signed with a random key of this "
                "process, and stop working after a restart or on another instance"
            )
        return _process_key


def _cursor_key() -> bytes:
    current = settings.get()
    try:
        secret = stage_secrets.value(current.cursor_secret, current.cursor_secret_parameter)
    except stage_secrets.SecretUnavailable as error:
        raise CursorKeyUnavailable(
            error.unconfigured or "page cursors cannot be checked right now; retry shortly"
        ) from None
    return _random_process_key() if secret is None else secret.encode()


def _cursor_mac(request: Request, query: tuple[str, ...], payload: bytes) -> bytes:
    params: Mapping[str, str] = request.query_params or {}
    scope = {"route": request.path, "path": request.uri_params or {}, "query": {k: params.get(k) for k in query}}
    message = json.dumps(scope, sort_keys=True, separators=(",", ":")).encode() + b"\n" + payload
    return hmac.new(_cursor_key(), message, hashlib.sha256).digest()[:_CURSOR_MAC_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode_cursor(request: Request, position: dict[str, Any] | None, *, query: tuple[str, ...] = ()) -> str | None:
    """A signed cursor for the page after `position` of this request's listing (None: no next page).

    `query` names the query parameters that select the listing (e.g. `day`); `decode_cursor` must get the same.
    """
    if position is None:
        return None
    payload = json.dumps(position, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
    return f"{_b64(payload)}.{_b64(_cursor_mac(request, query, payload))}"


def decode_cursor(request: Request, fields: dict[str, type], *, query: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The position of the request's `cursor`, one `encode_cursor` issued for this listing; `fields` are its
    keys and their types. Anything else is a 400 invalid_cursor."""
    params: Mapping[str, str] = request.query_params or {}
    raw = params.get("cursor")
    if raw is None or raw == "":
        return None
    position: Any = None
    if len(raw) <= CURSOR_MAX_LENGTH and raw.count(".") == 1:
        encoded_payload, encoded_mac = raw.split(".")
        try:
            payload, mac = _unb64(encoded_payload), _unb64(encoded_mac)
            if hmac.compare_digest(mac, _cursor_mac(request, query, payload)):
                position = json.loads(payload)
        except (ValueError, binascii.Error):
            position = None
    if not (
        isinstance(position, dict)
        and position.keys() == fields.keys()
        and all(type(position[key]) is kind for key, kind in fields.items())
    ):
        raise InvalidInput(
            "cursor is not one this service issued for this listing", code="invalid_cursor", field="cursor"
        )
    return position


def json_response(body: Any, status: int = 200, headers: Mapping[str, str | list[str]] | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})
