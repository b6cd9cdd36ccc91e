"""The HTTP edge: a request in, an answer out. The app class, each route's credential check, the contract (the
operations' declarations, the models' bases and the OpenAPI document), the body parser and input checks, the error
shape, the middleware (error shape, idempotency), the fallback routes, and the service's own routes (/health,
/openapi.json, /docs). The capabilities' blueprints sit on top of it."""
