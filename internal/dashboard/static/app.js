// Isotope dashboard: the few live parts. Every page reads without this
// script; it refreshes [data-refresh] sections in place and follows
// streamed logs in pre[data-follow].
"use strict";

(function () {
  // Refresh sections: fetch this page again and swap in the section with
  // the same id.
  document.querySelectorAll("[data-refresh]").forEach(function (el) {
    var every = parseInt(el.getAttribute("data-refresh"), 10);
    if (!every || !el.id) return;
    var busy = false;
    setInterval(function () {
      if (busy || document.hidden) return;
      busy = true;
      fetch(location.pathname + location.search, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          var doc = new DOMParser().parseFromString(html, "text/html");
          var fresh = doc.getElementById(el.id);
          if (fresh && fresh.innerHTML !== el.innerHTML) el.innerHTML = fresh.innerHTML;
        })
        .catch(function () {})
        .finally(function () { busy = false; });
    }, every);
  });

  // Follow a streamed log: the server sends the log so far, then each
  // line as it comes, until the build ends or the page closes.
  document.querySelectorAll("pre[data-follow]").forEach(function (pre) {
    var url = pre.getAttribute("data-follow");
    var reload = pre.getAttribute("data-reload") === "true";
    var dec = new TextDecoder();
    var first = true;
    function append(text) {
      if (first) { pre.textContent = ""; first = false; }
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += text;
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    fetch(url, { credentials: "same-origin" }).then(function (resp) {
      if (!resp.ok || !resp.body) return;
      var reader = resp.body.getReader();
      function pump() {
        return reader.read().then(function (r) {
          if (r.done) {
            pre.setAttribute("data-done", "true");
            if (reload) setTimeout(function () { location.reload(); }, 500);
            return;
          }
          append(dec.decode(r.value, { stream: true }));
          return pump();
        });
      }
      return pump();
    }).catch(function () {});
  });
})();
