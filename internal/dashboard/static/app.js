// Switchyard dashboard: the server pushes the live part of the page as
// server-sent events whenever it changes; this swaps it in. No polling.
"use strict";
(function () {
  const live = document.getElementById("live");
  const offline = document.getElementById("offline");
  if (!live || !live.dataset.events || !window.EventSource) return;
  let es;
  function connect() {
    es = new EventSource(live.dataset.events);
    es.onmessage = function (ev) {
      live.innerHTML = JSON.parse(ev.data);
      offline.hidden = true;
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    };
    es.onerror = function () {
      offline.hidden = false; // EventSource reconnects by itself
    };
  }
  connect();
})();
