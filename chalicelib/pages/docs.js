// The /docs page: Swagger UI (served from /docs/assets/, no CDN) over this service's own /openapi.json.
"use strict";
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No calls to swagger.io's validator badge: the page talks only to this origin.
  validatorUrl: null,
});
