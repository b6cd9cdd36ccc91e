"""livestats: routes and wiring only. Each feature's routes live in its blueprint."""

from __future__ import annotations

import gc
import sys

# No cyclic garbage collection while the modules load: the imports allocate hundreds of thousands of objects
# and free almost none, so the collector's passes only cost the cold start (~30 ms). Enabled again below.
gc.disable()

from chalice import Response

from chalicelib import pages
from chalicelib.averages import api as averages_api
from chalicelib.edge import auth, contract, cors, docs, health, middleware
from chalicelib.edge.chalice_app import ThreadSafeChalice
from chalicelib.edge.errors import NotFound
from chalicelib.edge.routing import install_fallback_routes
from chalicelib.hits import api as hits_api
from chalicelib.ingest import api as ingest_api
from chalicelib.ingest import consumer as ingest_consumer
from chalicelib.metrics import api as metrics_api
from chalicelib.names import api as names_api
from chalicelib.process import request_context
from chalicelib.process.observability import SERVICE, flush_metrics, trace
from chalicelib.streams import api as streams_api
from chalicelib.survey import api as survey_api

# configure_logs=False: Powertools' logger (same name) is the only handler.
app = ThreadSafeChalice(app_name=SERVICE, configure_logs=False)

# Outermost first: each event's own context (request id, log keys, time budget; access line), its trace (where the
# stage traces), metrics flush, the listed web origins' CORS headers (on errors too), the error shape, the credential
# check, then idempotency (a replay is answered only after the credential that made it is checked again).
app.register_middleware(request_context.request_scope)
app.register_middleware(trace)
app.register_middleware(flush_metrics)
app.register_middleware(cors.cross_origin, "http")
app.register_middleware(middleware.error_shape, "http")
app.register_middleware(auth.authorizer(app), "http")
app.register_middleware(middleware.idempotency, "http")


@app.route("/", methods=["GET"])
@contract.operation("The running-statistics page", tags=("pages",), responses=contract.PAGE)
def home() -> Response:
    return pages.page("streams.html")


@app.route("/assets/{name}", methods=["GET"])
@contract.operation(
    "A page's script or stylesheet",
    tags=("pages",),
    path=pages.AssetPath,
    responses={200: contract.ASSET},
    errors=(404,),
)
def asset(name: str) -> Response:
    """The pages' scripts and stylesheets (shipped with the function: no CDN)."""
    if name not in pages.ASSETS:
        raise NotFound("no such asset")
    return pages.page(name)


# Running mean and standard deviation, sessions and audit trail.
app.register_blueprint(streams_api.bp)
# Per-path hit counters, their ranking and the load generator.
app.register_blueprint(hits_api.bp)
# Sums of the last hour, compacted into minute buckets every minute.
app.register_blueprint(metrics_api.bp)
# Moving averages of the last N values.
app.register_blueprint(averages_api.bp)
# What exists: GET /deletions (the purges of deleted names) and the scheduled purge.
app.register_blueprint(names_api.bp)
# Multi-step survey and its live admin dashboard.
app.register_blueprint(survey_api.bp)
# POST /events: batches of events put on the events stream.
app.register_blueprint(ingest_api.bp)
# The events stream's consumer (POST /events puts the records).
app.register_blueprint(ingest_consumer.bp)
# GET /health: the function and its table answer.
app.register_blueprint(health.bp)
# GET /openapi.json (the contract) and GET /docs (its interactive reference).
app.register_blueprint(docs.bp)

# Last: JSON 404/405 for whatever no route above answers.
install_fallback_routes(app)

# Served by Chalice's local gateway (`chalice local`, `make run`, the tests; never Lambda, whose package holds only
# chalice/app.py): match routes as API Gateway does. Chalice's own matcher never matches a greedy `{path+}` route
# with more than one segment (aws/chalice#2072), so `GET /api/a/b` would be its 403 "Missing Authentication Token".
if "chalice.local" in sys.modules:
    from devtools import local_routes

    local_routes.install()

gc.freeze()  # what the imports made lives as long as the process: later collections skip it
gc.enable()
