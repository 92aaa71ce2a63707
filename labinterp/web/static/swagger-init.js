// Starts Swagger UI on /docs. A file of its own rather than an inline <script>: the page's
// Content-Security-Policy runs scripts from this server only. The page says where the
// OpenAPI document is (data-spec-url) and any extra Swagger UI settings (data-config).
(function () {
  "use strict";
  var container = document.getElementById("swagger-ui");
  var config = JSON.parse(container.getAttribute("data-config") || "{}");
  config.url = container.getAttribute("data-spec-url");
  config.dom_id = "#swagger-ui";
  // no badge from validator.swagger.io: the policy refuses other origins, and the spec's
  // address is not theirs to know
  config.validatorUrl = null;
  window.ui = SwaggerUIBundle(config);
})();
