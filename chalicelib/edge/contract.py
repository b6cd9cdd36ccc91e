"""The service's contract, declared: what each operation takes and answers, and the models' shared bases.

A view declares its operation with `@contract.operation(...)` under its route decorator (as `auth.requires`
declares a policy): the summary, the pydantic models of its path parameters, query parameters, body and
responses, and the error statuses it can answer. An auth policy declares its security requirements with
`@contract.security(...)`. The declaration is also the check: before the view runs, its path parameters, query
parameters and body are validated by the declared models (one translation of a failure: `invalid_input`, a 400
naming the field), and the view gets the path parameters' validated values by name and the query and body as
`query=` and `body=`.

`edge/openapi.py` reads these declarations and renders the OpenAPI 3.1 document.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from chalice.app import Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from chalicelib.edge import auth, web
from chalicelib.edge.errors import InvalidInput
from chalicelib.process import request_context
from chalicelib.process.settings import Settings
from chalicelib.pure import textcheck

HTML: str = "text/html"  # a response that is a page, not JSON
ASSET: tuple[str, ...] = ("application/javascript", "text/css")  # a script or a stylesheet
# A page's answers: the page, or a redirect to its own form of the URL (chalicelib/pages: `own_form`).
PAGE: Mapping[int, str | None] = {200: HTML, 308: None}

M = TypeVar("M", bound=BaseModel)


# --- models every capability shares -----------------------------------------------------------------------


class Strict(BaseModel):
    """What a client sends: exact JSON types, no NaN or Infinity, no unknown keys."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", defer_build=True)


class Reply(BaseModel):
    """What the service answers (checked against real answers in tests/test_contract.py)."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", defer_build=True)


class ErrorDetail(Reply):
    code: str = Field(description="machine-readable, e.g. invalid_input, not_found, database_unavailable")
    message: str = Field(description="for people")
    field: str | None = Field(default=None, description="the input at fault, when one is (e.g. value, values[3])")


class Error(Reply):
    """Every error answer: `{"error": {"code", "message", "field"?}}`."""

    error: ErrorDetail


class Empty(Reply):
    """`{}`."""


def _statistic(x: float) -> float:
    if x != 0 and abs(x) < web.VALUE_MIN_MAGNITUDE:
        raise ValueError(f"must be 0 or have magnitude at least {web.VALUE_MIN_MAGNITUDE:g}")
    return x + 0.0  # -0.0 becomes 0.0


# A value kept in running statistics or a moving-average window (web.VALUE_MAX_MAGNITUDE says why these bounds).
StatisticValue = Annotated[
    float,
    Field(ge=-web.VALUE_MAX_MAGNITUDE, le=web.VALUE_MAX_MAGNITUDE),
    AfterValidator(_statistic),
    # The bounds and the gap around 0 that _statistic refuses, as the document says them.
    WithJsonSchema(
        {
            "description": "0, or a number with magnitude from 1e-50 to 1e50",
            "anyOf": [
                {"type": "number", "const": 0},
                {"type": "number", "minimum": web.VALUE_MIN_MAGNITUDE, "maximum": web.VALUE_MAX_MAGNITUDE},
                {"type": "number", "minimum": -web.VALUE_MAX_MAGNITUDE, "maximum": -web.VALUE_MIN_MAGNITUDE},
            ],
        }
    ),
]
Timestamp = Annotated[str, Field(description="ISO 8601 UTC with milliseconds, e.g. 2026-01-02T03:04:05.678Z")]
# The `{key}` of /metric and /averages.
KeyName = Annotated[
    str, Field(pattern=f"^{web.KEY_NAME.pattern}$", description="1 to 128 characters of A-Z a-z 0-9 _ . : -")
]


_INTEGER = re.compile(r"-?[0-9]+")
# Beyond every integer parameter's bounds: a longer integer is answered with its bound, never converted.
_PARAM_DIGITS = 18


def _whole_number(value: Any) -> Any:
    if isinstance(value, str):  # a path or query parameter: digits, maybe a minus (no plus, spaces, `_` or `.0`)
        if not _INTEGER.fullmatch(value):
            raise ValueError("must be a whole number")
        digits = value.lstrip("-")
        if len(digits) > _PARAM_DIGITS:
            return -(10**_PARAM_DIGITS) if value.startswith("-") else 10**_PARAM_DIGITS
        return int(value)
    return value


# An integer path or query parameter (they arrive as text), after its Field: `Annotated[int, Field(...), PARAM_INT]`
# (the bounds stay in the schema).
PARAM_INT = BeforeValidator(_whole_number)


def integral(value: Any) -> Any:
    """A JSON number with no fraction as the integer it is: JSON Schema's `integer` is any such number (60.0 too)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a body, after its Field: `Annotated[int, Field(...), BODY_INT]`.
BODY_INT = BeforeValidator(integral)


def one_line(text: str) -> str:
    """A validator for a line of text: no control character (Unicode Cc; the document states it as
    textcheck.ONE_LINE_PATTERN)."""
    if textcheck.control_character(text):
        raise ValueError("must not hold control characters")
    return text


class KeyPath(Strict):
    key: KeyName


MAX_QUANTILES = 20
# A decimal from 0 to 1 with at most 17 decimals (more than a double holds): 0, 0.5, .5, 1, 1.0 (not 1.5, 1e-3).
_LEVEL_TEXT = r"(?:0(?:\.[0-9]{0,17})?|1(?:\.0{0,17})?|\.[0-9]{1,17})"
_LEVEL = re.compile(_LEVEL_TEXT)
# The whole `q`, as the document says it (the validator gives each refused level its own message).
QUANTILE_LEVELS_PATTERN = f"^{_LEVEL_TEXT}(?:,{_LEVEL_TEXT}){{0,{MAX_QUANTILES - 1}}}$"


def quantile_levels(text: str) -> list[tuple[str, float]]:
    """`q`: 1 to MAX_QUANTILES comma-separated decimals in [0, 1], each with its text as sent (the answer's key)."""
    parts = text.split(",")
    if not 1 <= len(parts) <= MAX_QUANTILES:
        raise ValueError(f"takes 1 to {MAX_QUANTILES} comma-separated values")
    levels = []
    for part in parts:
        if not _LEVEL.fullmatch(part):
            raise ValueError(f"{part[:20]!r} is not a decimal from 0 to 1")
        levels.append((part, float(part)))
    return levels


def _levels_text(text: str) -> str:
    quantile_levels(text)
    return text


# The `q` query parameter of the quantile routes (answers are keyed by each level's text as sent).
QuantileLevels = Annotated[
    str,
    Field(
        description=f"1 to {MAX_QUANTILES} comma-separated decimals from 0 to 1 (at most 17 decimals each), e.g. "
        "0.5,0.999",
        examples=["0.5,0.9,0.99"],
        json_schema_extra={"pattern": QUANTILE_LEVELS_PATTERN},
    ),
    AfterValidator(_levels_text),
]


# --- declarations -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """An operation a client can go on to with what this one's request or answer supplies (an OpenAPI link on the
    success answer): `parameters` maps the target's parameter (`name`, or `header.Name`) to a runtime expression
    such as `$request.path.stream` or `$response.body#/id`."""

    operation_id: str
    parameters: Mapping[str, str]
    description: str


@dataclass(frozen=True)
class Header:
    """A request header an operation reads, and the text it takes (None: any)."""

    description: str
    pattern: str | None = None


@dataclass(frozen=True)
class Operation:
    summary: str
    responses: Mapping[int, type[BaseModel] | str | tuple[str, ...] | None]
    errors: tuple[int, ...] = ()
    path: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    body_required: bool = True
    description: str | None = None
    tags: tuple[str, ...] = ()
    headers: Mapping[str, str | Header] = field(default_factory=dict)  # request headers it reads: name -> description
    links: Mapping[str, Link] = field(default_factory=dict)
    # Models the description names but no schema of the operation refers to (e.g. the events a batch may hold,
    # checked one by one): put in the document's components so that a client can read them.
    models: tuple[type[BaseModel], ...] = ()


_OPERATION = "contract_operation"


def operation(
    summary: str,
    *,
    responses: Mapping[int, type[BaseModel] | str | tuple[str, ...] | None],
    errors: tuple[int, ...] = (),
    path: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    body_required: bool = True,
    description: str | None = None,
    tags: tuple[str, ...] = (),
    headers: Mapping[str, str | Header] | None = None,
    links: Mapping[str, Link] | None = None,
    models: tuple[type[BaseModel], ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare the view's operation (under @bp.route, so the route registers the marked function)."""
    declared = Operation(
        summary,
        responses,
        errors,
        path,
        query,
        body,
        body_required,
        description,
        tags,
        dict(headers or {}),
        dict(links or {}),
        models,
    )

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        checked = _validating(view, declared) if declared.path or declared.query or declared.body else view
        setattr(checked, _OPERATION, declared)
        return checked

    return mark


def _validating(view: Callable[..., Any], declared: Operation) -> Callable[..., Any]:
    """The view, called with its declared inputs validated: path parameters by name, `query=`, `body=`."""

    @functools.wraps(view)
    def validated(**_: str) -> Any:
        request = request_context.current_request()
        inputs: dict[str, Any] = {}
        if declared.path is not None:
            # From the request: Chalice passes no argument for a greedy `{path+}`.
            inputs.update(parse_path(declared.path, request.uri_params or {}))
        if declared.query is not None:
            inputs["query"] = parse_query(request, declared.query)
        if declared.body is not None:
            inputs["body"] = parse_body(request, declared.body, required=declared.body_required)
        return view(**inputs)

    return validated


def operation_of(view: Callable[..., Any]) -> Operation | None:
    found: Operation | None = getattr(view, _OPERATION, None)
    return found


_SECURITY = "contract_security"
Requirements = list[dict[str, list[str]]]
# A policy's security requirements: fixed, or decided by the stage's settings (the document says what the running
# stage accepts: `make run` leaves writes open, a deployed stage needs the write token).
Declared = Requirements | Callable[[Settings], Requirements]


def security(requirements: Declared, description: str) -> Callable[[auth.Policy], auth.Policy]:
    """Declare how an auth policy appears in the document (its OpenAPI security requirements)."""

    def mark(policy: auth.Policy) -> auth.Policy:
        setattr(policy, _SECURITY, (requirements, description))
        return policy

    return mark


ADMIN: Requirements = [{"adminToken": []}]
WRITE: Requirements = [{"writeToken": []}, {"adminToken": []}]
SECURITY_SCHEMES = {
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The stage's admin token: `Authorization: Bearer <token>` (ADMIN_TOKEN or the SSM parameter "
        "ADMIN_TOKEN_PARAMETER names; with none configured every admin request gets 401).",
    },
    "writeToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The stage's write token: `Authorization: Bearer <token>` (WRITE_TOKEN or the SSM parameter "
        "WRITE_TOKEN_PARAMETER names). Needed to change or destroy data where the stage's WRITE_ACCESS is `token`, "
        "the default of every deployed stage; the admin token passes too.",
    },
    "responseToken": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Response-Token",
        "description": "A survey response's own token, from the answer that started it.",
    },
    "responseBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A survey response's own token, sent as `Authorization: Bearer <token>` instead.",
    },
}


def writer_requirements(current: Settings) -> Requirements:
    return WRITE if current.write_access == "token" else []


security(
    writer_requirements,
    "Changes data: where the stage's WRITE_ACCESS is `token` (every deployed stage unless it says otherwise) it "
    "needs the write token or the admin token, else 401 with nothing changed; where it is `open` (`make run`), "
    "anyone may.",
)(auth.writer)


def security_of(policy: auth.Policy, current: Settings) -> tuple[Requirements, str | None]:
    """The security requirements of a policy in a stage with these settings, and a note on it (None for public
    routes)."""
    if policy is auth.public:
        return [], None
    if policy is auth.admin:
        return ADMIN, None
    declared: tuple[Declared, str] | None = getattr(policy, _SECURITY, None)
    if declared is None:
        raise TypeError(f"auth policy {policy.__qualname__} has no @contract.security declaration")
    requirements, note = declared
    return (requirements(current) if callable(requirements) else requirements), note


# --- validation through the models ----------------------------------------------------------------------


def _field(loc: tuple[int | str, ...]) -> str | None:
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or None


class Sentence(ValueError):
    """A validator's whole message, written for people (the survey page shows it): the 400 carries it as it is."""


def invalid_input(error: ValidationError) -> InvalidInput:
    """The one translation of a model's validation error into the service's 400: its first error, named."""
    first = error.errors(include_url=False)[0]
    name = _field(tuple(first["loc"]))
    ctx = first.get("ctx") or {}
    if isinstance(ctx.get("error"), Sentence):
        return InvalidInput(str(ctx["error"]), field=name)
    if isinstance(ctx.get("error"), ValueError):
        message = str(ctx["error"])  # a validator's own words, after the field's name
    elif first["type"] in _BOUNDS and isinstance(bound := next(iter(ctx.values()), None), float):
        message = f"input should be {_BOUNDS[first['type']]} {bound:g}"  # 1e+50, not its 51 digits
    else:
        message = first["msg"][:1].lower() + first["msg"][1:]
    return InvalidInput(f"{name}: {message}" if name else message, field=name)


_BOUNDS = {
    "less_than_equal": "less than or equal to",
    "greater_than_equal": "greater than or equal to",
    "less_than": "less than",
    "greater_than": "greater than",
}


def _validate(model: type[M], data: Mapping[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid_input(error) from None


def parse_body(request: Request, model: type[M], *, required: bool = True) -> M:
    """The request's JSON object body (parsed by `web.json_body`, the one JSON parser), validated by `model`."""
    return _validate(model, web.json_body(request, required=required))


def parse_path(model: type[M], params: Mapping[str, str]) -> M:
    """The route's path parameters, validated by `model`."""
    return _validate(model, params)


def parse_query(request: Request, model: type[M]) -> M:
    """The query parameters, validated by `model`.

    A repeated name counts with its last value (as API Gateway's single-value parameters do); an empty value
    is given to the model as it is (""); a name the model does not declare is refused (400, `field` naming it),
    as a body's unknown key is: the document lists every parameter an operation takes.
    """
    params: Mapping[str, str] = request.query_params or {}
    return _validate(model, {name: params[name] for name in params})  # a MultiDict: its last value
