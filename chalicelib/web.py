"""Parsing and checking what a client sends; shaping what it gets back.

Handlers call these so that every bad input gets the same clear 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib.errors import InvalidInput

MAX_BODY_BYTES = 256 * 1024


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"{name} is not a number JSON allows", code="invalid_json")


def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object. An empty body is `{}` unless `required`."""
    raw = request.raw_body or b""
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidInput(f"body is larger than {MAX_BODY_BYTES} bytes", code="body_too_large")
    if not raw.strip():
        if required:
            raise InvalidInput("a JSON object body is required", code="invalid_json")
        return {}
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput("body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("body must be a JSON object", code="invalid_json")
    return body


def number(value: Any, field: str, *, bound: float) -> float:
    """A finite JSON number with |x| <= bound. Booleans, strings and null are not numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{field} must be a number", field=field)
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result) or abs(result) > bound:
        raise InvalidInput(f"{field} must be a finite number with magnitude at most {bound:g}", field=field)
    return result


# The range of values kept in running statistics and windows: every derived figure (M2 grows like
# count * x**2) stays storable as a DynamoDB number, whose magnitude is 1e-130 to 1e126.
VALUE_MAX_MAGNITUDE = 1e50
VALUE_MIN_MAGNITUDE = 1e-50


def statistic_value(raw: Any, field: str) -> float:
    """A value for statistics: 0, or a finite number with magnitude in [1e-50, 1e50]."""
    x = number(raw, field, bound=VALUE_MAX_MAGNITUDE)
    if x != 0 and abs(x) < VALUE_MIN_MAGNITUDE:
        raise InvalidInput(f"{field} must be 0 or have magnitude at least {VALUE_MIN_MAGNITUDE:g}", field=field)
    return x + 0.0  # -0.0 becomes 0.0


def integer(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field} must be an integer from {low} to {high}", field=field)
    return value


def text(value: Any, field: str, *, min_length: int = 1, max_length: int) -> str:
    if not isinstance(value, str) or not min_length <= len(value) <= max_length:
        raise InvalidInput(f"{field} must be a string of {min_length} to {max_length} characters", field=field)
    return value


def optional_text(body: dict[str, Any], field: str, *, max_length: int) -> str | None:
    value = body.get(field)
    return None if value is None else text(value, field, max_length=max_length)


def name(value: str, field: str, pattern: re.Pattern[str], description: str) -> str:
    """A path parameter that names something, e.g. a stream."""
    if not pattern.fullmatch(value):
        raise InvalidInput(f"{field} must be {description}", field=field)
    return value


# Keys of last-hour sums and moving-average windows.
KEY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def key_name(raw: str) -> str:
    """A `{key}` path parameter of /metric or /averages."""
    return name(raw, "key", KEY_NAME, "1 to 128 characters of A-Z a-z 0-9 _ . : -")


def query_param(request: Request, key: str) -> str | None:
    params = request.query_params or {}
    return params.get(key)


def query_int(request: Request, key: str, *, default: int, low: int, high: int) -> int:
    raw = query_param(request, key)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise InvalidInput(f"{key} must be an integer from {low} to {high}", field=key)
    return int(raw)


def encode_cursor(position: dict[str, Any] | None) -> str | None:
    """An opaque page cursor (None when there is no next page)."""
    if position is None:
        return None
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(request: Request, fields: dict[str, type]) -> dict[str, Any] | None:
    """The position a cursor from `encode_cursor` names; `fields` are its keys and their types."""
    raw = query_param(request, "cursor")
    if raw is None or raw == "":
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error):
        position = None
    if not (
        isinstance(position, dict)
        and position.keys() == fields.keys()
        and all(type(position[key]) is kind for key, kind in fields.items())
    ):
        raise InvalidInput("cursor is not one this service issued", field="cursor")
    return position


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body=body, status_code=status, headers={"Content-Type": "application/json", **(headers or {})})
