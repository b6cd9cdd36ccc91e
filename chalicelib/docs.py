"""The contract, served: GET /openapi.json (built from the app's routes, chalicelib/contract.py) and GET /docs,
an interactive reference (Swagger UI, shipped with the function by the flask-swagger-ui package: no CDN)."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from chalice import Blueprint, Chalice, Response
from pydantic import ConfigDict, Field

from chalicelib import contract, pages, web
from chalicelib.errors import NotFound

bp: Blueprint = Blueprint(__name__)

# Swagger UI 5 (OpenAPI 3.1), as the flask-swagger-ui package ships it; only its files are used, not Flask.
# Found without importing the package (that would import Flask).
_SPEC = importlib.util.find_spec("flask_swagger_ui")
assert _SPEC is not None and _SPEC.submodule_search_locations, "flask-swagger-ui is in requirements.txt"
SWAGGER_UI_DIR = Path(next(iter(_SPEC.submodule_search_locations))) / "dist"
SWAGGER_UI_ASSETS = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css"}


@cache
def _document(app: Chalice) -> str:
    return json.dumps(contract.document(app), ensure_ascii=False)


@cache
def _swagger_ui_asset(name: str) -> str:
    return (SWAGGER_UI_DIR / name).read_text(encoding="utf-8")


class SwaggerAssetPath(contract.Strict):
    name: Annotated[str, Field(json_schema_extra={"enum": sorted(SWAGGER_UI_ASSETS)})]


class OpenAPIDocument(contract.Reply):
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]
    components: dict[str, Any]


@bp.route("/openapi.json", methods=["GET"])
@contract.operation(
    "This document: the service's OpenAPI 3.1 contract", tags=("service",), responses={200: OpenAPIDocument}
)
def openapi() -> Response:
    return web.json_response(_document(bp.current_app))


@bp.route("/docs", methods=["GET"])
@contract.operation(
    "An interactive reference of this document (Swagger UI)", tags=("pages",), responses={200: contract.HTML}
)
def docs_page() -> Response:
    return pages.page("docs.html")


@bp.route("/docs/assets/{name}", methods=["GET"])
@contract.operation(
    "Swagger UI's script and stylesheet",
    tags=("pages",),
    path=SwaggerAssetPath,
    responses={200: contract.ASSET},
    errors=(404,),
)
def swagger_ui_asset(name: str) -> Response:
    media_type = SWAGGER_UI_ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such asset")
    return Response(
        body=_swagger_ui_asset(name),
        status_code=200,
        headers={"Content-Type": media_type, "Cache-Control": "public, max-age=86400", **pages.SECURITY_HEADERS},
    )
