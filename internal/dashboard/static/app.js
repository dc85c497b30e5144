// Switchyard dashboard: the server pushes the live part of the page as
// server-sent events whenever it changes; this swaps it in. No polling.
// It also counts a bake down to its end, between pushes.
"use strict";
(function () {
  const live = document.getElementById("live");
  const offline = document.getElementById("offline");
  function countdown() {
    for (const t of document.querySelectorAll("time.countdown")) {
      const left = Math.round((Date.parse(t.dateTime) - Date.now()) / 1000);
      t.textContent = left > 0 ? "in " + left + " s" : "now";
    }
  }
  setInterval(countdown, 1000);
  countdown();
  if (!live || !live.dataset.events || !window.EventSource) return;
  const es = new EventSource(live.dataset.events);
  es.onmessage = function (ev) {
    // keep an open <details> open across updates
    const open = Array.from(live.querySelectorAll("details[open] > summary"), (s) => s.textContent);
    live.innerHTML = JSON.parse(ev.data);
    for (const s of live.querySelectorAll("details > summary")) {
      if (open.some((o) => o.split(" (")[0] === s.textContent.split(" (")[0])) s.parentElement.open = true;
    }
    countdown();
    offline.hidden = true;
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  };
  es.onerror = function () {
    offline.hidden = false; // EventSource reconnects by itself
  };
})();
