"""The service's machine-readable contract: an OpenAPI 3.1 document built from the app's own routes and models.

A view declares its operation with `@contract.operation(...)` under its route decorator (as `auth.requires`
declares a policy): the summary, the pydantic models of its path parameters, query parameters, body and
responses, and the error statuses it can answer. `document(app)` reads those marks, the views' auth policies
and the service-wide behaviour (error shape, 405, 503, bodies, idempotency) and builds the document.
The declaration is also the check: before the view runs, its path parameters, query parameters and body are
validated by the declared models (one translation of a failure: `invalid_input`, a 400 naming the field), and
the view gets the path parameters' validated values by name and the query and body as `query=` and `body=`.

Regenerate the committed copy with `make openapi` (`python -m chalicelib.edge.contract > openapi.json`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

from chalice import Chalice
from chalice.app import Request
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from chalicelib.edge import auth, web
from chalicelib.edge.errors import InvalidInput
from chalicelib.process import request_context
from chalicelib.process.settings import Settings

OPENAPI_VERSION = "3.1.0"
TITLE = "livestats"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
HTML: str = "text/html"  # a response that is a page, not JSON
ASSET: tuple[str, ...] = ("application/javascript", "text/css")  # a script or a stylesheet
# A page's answers: the page, or a redirect to its own form of the URL (chalicelib/pages: `own_form`).
PAGE: Mapping[int, str | None] = {200: HTML, 308: None}
# Relative to where the document is served (<root>/openapi.json), so the operations' URLs are under whatever prefix
# the service is mounted at (API Gateway's stage, a custom domain's base path), and /docs' "Try it out" too.
SERVERS = [{"url": ".", "description": "this service, wherever this document is served from"}]

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


# --- the document ---------------------------------------------------------------------------------------

SERVICE_WIDE = """\
Service-wide behaviour (see the README), not repeated per operation:

- Every error is `{"error": {"code", "message", "field"?}}` (schema `Error`); `field` names the input at fault.
- Any path that no operation here names answers 404 `not_found`.
- Every path answers `OPTIONS` with 204 and an `Allow` header, and every method it does not list with 405
  `method_not_allowed` and the same `Allow`. `HEAD` runs the `GET` operation (same credential check) and answers its
  status and headers without a body, except where the `GET` changes state (the hit counters, `/api...`): there `HEAD`
  is a 405. These `HEAD` and `OPTIONS` answers are not listed per path.
- Bodies are JSON objects in UTF-8, at most 256 KiB: 400 `invalid_json` for what is not (including NaN and
  Infinity), 400 `invalid_input` for invalid Unicode or unrepresentable numbers, 415 for another charset.
- A `POST`/`PUT`/`PATCH`/`DELETE` with an `Idempotency-Key` is applied at most once per key, route and credential;
  a replay carries `Idempotent-Replayed: true`.
- 503 `database_unavailable` (with `Retry-After`) when the database cannot answer in time; a client may retry.
- Paths are API Gateway's templates. `{path+}` (the hit counter) is greedy: it takes the rest of the path, slashes
  included; OpenAPI has no greedy parameters, so it is documented as a string parameter.
- A trailing slash is dropped (as API Gateway does, except on `/`): `/stats/` is `/stats`. A page asked for in its
  other form (`/ui/hits/`, or the stage root without its slash) answers 308 with a relative `Location` to its own.
- Paths are relative to where this document is served (its `servers` is `.`): under a stage or base path `/api/`,
  `/health` is `/api/health`.
"""

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    308: "The page's own URL, in the relative `Location` (the root with a trailing slash, other pages without)",
    400: "Bad request: the input is invalid",
    401: "No usable credential",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed (with `Allow`)",
    409: "Conflict",
    413: "Body larger than 256 KiB",
    414: "Path too long",
    415: "Unsupported media type: not `application/json`, or a charset other than UTF-8",
    422: "Idempotency-Key reused with another body",
    503: "The database (or a stage secret) cannot answer right now: `database_unavailable` (or `busy`, "
    "`unavailable`); retry later",
}
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TEMPLATE_PARAM = re.compile(r"\{([A-Za-z0-9_]+)\+?\}")


def documented_routes(app: Chalice) -> dict[tuple[str, str], Any]:
    """(path, method) -> view of every route the document describes: all but the service-wide HEAD, OPTIONS, 405
    and 404 answers of `routing.install_fallback_routes`."""
    routes: dict[tuple[str, str], Any] = {}
    for path, entries in app.routes.items():
        if path == "/{proxy+}":
            continue
        for method, entry in entries.items():
            if method in ("HEAD", "OPTIONS") or entry.view_name.startswith("method_not_allowed"):
                continue
            routes[(path, method)] = entry.view_function
    return routes


def openapi_path(chalice_path: str) -> str:
    """API Gateway's template as an OpenAPI path: `{path+}` becomes `{path}`."""
    return chalice_path.replace("+}", "}")


def _add_schema(schemas: dict[str, Any], name: str, schema: Any) -> None:
    """Components are named by their model's name: two different models of one name would silently share one
    schema (the last one written), so the document would describe one operation with another's rules."""
    if schemas.get(name, schema) != schema:
        raise TypeError(f"two different models are named {name}: rename one")
    schemas[name] = schema


def _schema_ref(model: type[BaseModel], schemas: dict[str, Any], mode: Literal["validation", "serialization"]) -> Any:
    schema = model.model_json_schema(ref_template=REF, mode=mode)
    for name, definition in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, definition)
    _add_schema(schemas, model.__name__, schema)
    return {"$ref": REF.format(model=model.__name__)}


def _parameters(where: str, model: type[BaseModel], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    for name, definition in schema.pop("$defs", {}).items():
        _add_schema(schemas, name, definition)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        # An optional parameter is absent, never null: `str | None` is documented as its string.
        present = [choice for choice in prop.get("anyOf", ()) if choice != {"type": "null"}]
        if len(present) == 1 and len(prop["anyOf"]) == 2:
            del prop["anyOf"]
            prop = {**present[0], **prop}
            if prop.get("default", ...) is None:
                del prop["default"]
        parameter: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required}
        if description:
            parameter["description"] = description
        parameter["schema"] = prop
        parameters.append(parameter)
    return parameters


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _STATUS_TEXT[status],
        "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}},
    }
    if status in _ERROR_HEADERS:
        response["headers"] = _ERROR_HEADERS[status]
    return response


_ERROR_HEADERS = {
    401: {"WWW-Authenticate": {"description": 'Bearer realm="livestats"', "schema": {"type": "string"}}},
    405: {"Allow": {"description": "the methods the path answers", "schema": {"type": "string"}}},
    503: {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}},
}
ERROR_RESPONSE = "#/components/responses/Error{status}"
_SUCCESS_HEADERS = {
    308: {"Location": {"description": "a URL relative to the one requested", "schema": {"type": "string"}}}
}


def _declaration(path: str, method: str, view: Callable[..., Any]) -> Operation:
    declared = operation_of(view)
    if declared is None:
        raise TypeError(f"{method} {path} ({view.__qualname__}) has no @contract.operation declaration")
    template_params = _TEMPLATE_PARAM.findall(path)
    declared_params = list(declared.path.model_fields) if declared.path else []
    if template_params != declared_params:
        raise TypeError(f"{method} {path}: path model declares {declared_params}, the template has {template_params}")
    return declared


def _description(path: str, declared: Operation, security_note: str | None) -> str | None:
    parts = [text for text in (declared.description, security_note) if text]
    if "{path+}" in path:
        parts.append("`{path}` is greedy in API Gateway: it takes the rest of the path, slashes included.")
    return "\n\n".join(parts) or None


_IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Apply this request at most once per key, route and credential (24 h).",
    "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"},
}


def _operation_parameters(method: str, declared: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if declared.path:
        parameters += _parameters("path", declared.path, schemas)
    if declared.query:
        parameters += _parameters("query", declared.query, schemas)
    for name, declared_header in declared.headers.items():
        header = declared_header if isinstance(declared_header, Header) else Header(declared_header)
        schema = {"type": "string"} if header.pattern is None else {"type": "string", "pattern": header.pattern}
        parameters.append(
            {"name": name, "in": "header", "required": False, "description": header.description, "schema": schema}
        )
    if method in _MUTATING:
        parameters.append(dict(_IDEMPOTENCY_PARAMETER))
    return parameters


def _success_response(status: int, model: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "OK")}
    if status in _SUCCESS_HEADERS:
        response["headers"] = _SUCCESS_HEADERS[status]
    if isinstance(model, (str, tuple)):
        media_types = (model,) if isinstance(model, str) else model
        response["content"] = {media_type: {"schema": {"type": "string"}} for media_type in media_types}
    elif model is not None:
        response["content"] = {"application/json": {"schema": _schema_ref(model, schemas, "serialization")}}
    return response


def _error_statuses(method: str, declared: Operation, authenticated: bool) -> list[int]:
    """The operation's own error statuses plus the service-wide ones that apply to it."""
    errors = set(declared.errors) | {405, 503}
    if authenticated:
        errors.add(401)
    if declared.body is not None:
        errors |= {400, 413, 415}
    if method in _MUTATING:
        errors |= {409, 422}
    if declared.path or declared.query:
        errors.add(400)
    return sorted(errors)


def _operation(
    path: str, method: str, view: Callable[..., Any], schemas: dict[str, Any], current: Settings
) -> dict[str, Any]:
    declared = _declaration(path, method, view)
    requirements, note = security_of(auth.policy_of(view), current)
    result: dict[str, Any] = {"operationId": view.__name__, "summary": declared.summary}
    if declared.tags:
        result["tags"] = list(declared.tags)
    result["security"] = requirements
    description = _description(path, declared, note)
    if description:
        result["description"] = description
    parameters = _operation_parameters(method, declared, schemas)
    if parameters:
        result["parameters"] = parameters
    for model in declared.models:
        _schema_ref(model, schemas, "validation")
    if declared.body is not None:
        result["requestBody"] = {
            "required": declared.body_required,
            "content": {"application/json": {"schema": _schema_ref(declared.body, schemas, "validation")}},
        }
    responses = {
        str(status): _success_response(status, model, schemas) for status, model in sorted(declared.responses.items())
    }
    if declared.links:
        success = min(status for status in declared.responses if 200 <= status < 300)
        responses[str(success)]["links"] = {
            name: {
                "operationId": link.operation_id,
                "parameters": dict(link.parameters),
                "description": link.description,
            }
            for name, link in declared.links.items()
        }
    for status in _error_statuses(method, declared, bool(requirements)):
        responses[str(status)] = {"$ref": ERROR_RESPONSE.format(status=status)}
    result["responses"] = responses
    return result


def _check_links(paths: dict[str, dict[str, Any]]) -> None:
    """Every link names an operation of the document."""
    operation_ids = {operation["operationId"] for item in paths.values() for operation in item.values()}
    for item in paths.values():
        for operation in item.values():
            for response in operation["responses"].values():
                for name, link in response.get("links", {}).items():
                    if link["operationId"] not in operation_ids:
                        raise TypeError(f"{operation['operationId']}: link {name} names no operation")


def document(app: Chalice, current: Settings | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route the app declares, as a stage with these settings answers them (by
    default, a deployed stage that sets nothing: writes need the write token)."""
    current = current or Settings()
    schemas: dict[str, Any] = {}
    _schema_ref(Error, schemas, "serialization")
    paths: dict[str, dict[str, Any]] = {}
    for (path, method), view in sorted(documented_routes(app).items()):
        paths.setdefault(openapi_path(path), {})[method.lower()] = _operation(path, method, view, schemas, current)
    _check_links(paths)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": TITLE, "version": VERSION, "description": SERVICE_WIDE},
        "servers": SERVERS,
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {f"Error{status}": _error_response(status) for status in _STATUS_TEXT if status >= 400},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def render(app: Chalice) -> str:
    """The document as the committed openapi.json holds it."""
    return json.dumps(document(app), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    from app import app as _app
    from chalicelib.edge import contract as _imported  # the module the views' marks come from, not this __main__ copy

    print(_imported.render(_app), end="")
