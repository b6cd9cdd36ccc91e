// The /docs page: Swagger UI (served from docs/assets/, no CDN) over this service's own openapi.json.
"use strict";
// The document's absolute URL, wherever the service is mounted (a stage, a base path): this script is
// <root>/assets/docs.js. Swagger UI resolves the document's relative `servers` URL against it for "Try it out".
const DOCUMENT = new URL("../openapi.json", document.currentScript.src).href;
window.ui = SwaggerUIBundle({
  url: DOCUMENT,
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No calls to swagger.io's validator badge: the page talks only to this origin.
  validatorUrl: null,
});
