// The mock SIEM's page, live. The server pushes the re-rendered live part of the page (stats,
// rules in force, deliveries; escaped on the server) as server-sent events, and this swaps it
// in. The page works without this script; the browser reconnects by itself when the stream ends.
"use strict";
(function () {
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  if (!live || !window.EventSource) {
    return;
  }
  function state(name, text) {
    document.body.dataset.live = name;
    if (conn) {
      conn.textContent = text;
    }
  }
  state("connecting", "connecting…");
  var source = new EventSource(live.dataset.stream);
  source.onopen = function () {
    state("connected", "● live");
  };
  source.onerror = function () {
    state("reconnecting", "reconnecting…");
  };
  source.addEventListener("live", function (event) {
    live.innerHTML = event.data;
    state("connected", "● live");
  });
})();
