"""The contract, served: GET /openapi.json (built from the app's routes, chalicelib/edge/openapi.py) and GET /docs,
an interactive reference (Swagger UI, shipped with the function: no CDN)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import aws_lambda_powertools
from chalice import Blueprint, Chalice, Response
from pydantic import ConfigDict, Field

from chalicelib import pages
from chalicelib.edge import contract, web
from chalicelib.edge.errors import NotFound
from chalicelib.edge.openapi import document
from chalicelib.process import settings

bp: Blueprint = Blueprint(__name__)

# Swagger UI 5 (it reads OpenAPI 3.1), as Powertools ships it for its own event handler's docs: the files are in
# the function's package already (Powertools is a dependency), so /docs adds nothing to it. Found without
# importing the event handler.
SWAGGER_UI_DIR = Path(aws_lambda_powertools.__file__).parent / "event_handler" / "openapi" / "swagger_ui"
# The names /docs/assets/{name} serves: their media type and the file.
SWAGGER_UI_ASSETS = {
    "swagger-ui-bundle.js": ("application/javascript", "swagger-ui-bundle.min.js"),
    "swagger-ui.css": ("text/css", "swagger-ui.min.css"),
}


@cache
def _document(app: Chalice, current: settings.Settings) -> str:
    return json.dumps(document(app, current), ensure_ascii=False)


@cache
def _swagger_ui_asset(file: str) -> str:
    return (SWAGGER_UI_DIR / file).read_text(encoding="utf-8")


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
    # What this stage accepts: its settings decide who may write (the settings model is frozen, so hashable).
    return web.json_response(_document(bp.current_app, settings.get()))


@bp.route("/docs", methods=["GET"])
@contract.operation("An interactive reference of this document (Swagger UI)", tags=("pages",), responses=contract.PAGE)
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
    if name not in SWAGGER_UI_ASSETS:
        raise NotFound("no such asset")
    media_type, file = SWAGGER_UI_ASSETS[name]
    return Response(
        body=_swagger_ui_asset(file),
        status_code=200,
        headers={"Content-Type": media_type, "Cache-Control": "public, max-age=86400", **pages.SECURITY_HEADERS},
    )
