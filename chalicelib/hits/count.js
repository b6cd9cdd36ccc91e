// livestats page views (docs/hits.md#tracking-snippet): counts /<site><location.pathname> on load and on
// single-page navigation; sends nothing with DNT, GPC, navigator.webdriver or localStorage "livestats-ignore".
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var base = script.src.replace(/[^/]*$/, ""); // where count.js came from: the service, under any prefix
  var site = script.getAttribute("data-site") || location.hostname;
  var nav = navigator;
  var last = null;

  function optedOut() {
    try {
      if (localStorage.getItem("livestats-ignore")) return true;
    } catch (e) {} // storage switched off: no opt-out can be stored either
    return nav.doNotTrack === "1" || window.doNotTrack === "1" || nav.globalPrivacyControl === true ||
      (nav.webdriver === true && !script.hasAttribute("data-allow-automation"));
  }

  function count() {
    var path = location.pathname;
    try {
      path = decodeURIComponent(path); // as API Gateway decodes GET /api/{path}
    } catch (e) {}
    path = "/" + site + path;
    if (path === last || optedOut()) return; // a hash or query change is the same page
    last = path;
    var url = base + "count.gif?p=" + encodeURIComponent(path);
    if (window.fetch) {
      fetch(url, { mode: "no-cors", credentials: "omit", keepalive: true, cache: "no-store",
        referrerPolicy: "no-referrer" }).catch(function () {});
    } else {
      var pixel = new Image();
      pixel.referrerPolicy = "no-referrer";
      pixel.src = url;
    }
  }

  var pushState = history.pushState;
  history.pushState = function () {
    var result = pushState.apply(this, arguments);
    count();
    return result;
  };
  addEventListener("popstate", count);
  if (document.prerendering) document.addEventListener("prerenderingchange", count, { once: true });
  else count();
})();
