"""livestats: routes and wiring only. Each feature's routes live in its blueprint."""

from __future__ import annotations

from chalice import ConvertToMiddleware

from chalicelib import middleware, pages
from chalicelib.chalice_app import ThreadSafeChalice
from chalicelib.observability import SERVICE, logger, metrics
from chalicelib.routing import install_fallback_routes
from chalicelib.stats import api as stats_api

# configure_logs=False: Powertools' logger (same name) is the only handler.
app = ThreadSafeChalice(app_name=SERVICE, configure_logs=False)

# Outermost first: context for logs, metrics flush, the error shape, then idempotency.
app.register_middleware(ConvertToMiddleware(logger.inject_lambda_context))
app.register_middleware(ConvertToMiddleware(metrics.log_metrics))
app.register_middleware(middleware.error_shape, "http")
app.register_middleware(middleware.idempotency, "http")


@app.route("/", methods=["GET"])
def home():  # type: ignore[no-untyped-def]
    return pages.page("streams.html")


# Running mean and standard deviation, sessions and audit trail (seed 000).
app.register_blueprint(stats_api.bp)

install_fallback_routes(app)
