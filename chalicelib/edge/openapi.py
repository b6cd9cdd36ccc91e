"""The service's machine-readable contract: an OpenAPI 3.1 document built from the app's own routes and models.

`document(app)` reads the operations the views declare (`contract.operation`), the views' auth policies
(`contract.security`) and the service-wide behaviour (error shape, 405, 503, bodies, idempotency) and builds the
document; the app is an argument, so this library never imports it. GET /openapi.json serves it (edge/docs.py), and
`make openapi` (`python -m devtools.openapi > openapi.json`) regenerates the committed copy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

from chalice import Chalice
from pydantic import BaseModel

from chalicelib.edge import auth
from chalicelib.edge.contract import SECURITY_SCHEMES, Error, Header, Operation, operation_of, security_of
from chalicelib.process.settings import Settings

OPENAPI_VERSION = "3.1.0"
TITLE = "livestats"
VERSION = "1.0.0"
REF = "#/components/schemas/{model}"
# Relative to where the document is served (<root>/openapi.json), so the operations' URLs are under whatever prefix
# the service is mounted at (API Gateway's stage, a custom domain's base path), and /docs' "Try it out" too.
SERVERS = [{"url": ".", "description": "this service, wherever this document is served from"}]


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
