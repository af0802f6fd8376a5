// mamoru managers' console: the little a page needs beyond HTML.
"use strict";

// The timeline's marks and the press links seek the player.
function seekTo(at) {
  const v = document.getElementById("player");
  if (!v) return;
  v.currentTime = at;
  v.play().catch(() => {});
}
document.addEventListener("click", (ev) => {
  const el = ev.target.closest("[data-at]");
  if (!el || !document.getElementById("player")) return;
  ev.preventDefault();
  seekTo(parseFloat(el.dataset.at));
});

// The press marks are placed from their data (no inline styles: the
// Content-Security-Policy allows none).
document.addEventListener("DOMContentLoaded", () => {
  for (const mark of document.querySelectorAll(".timeline .press[data-left]")) {
    mark.style.left = mark.dataset.left + "%";
  }
});

// A browser that cannot play the clip says so where the viewing copy is.
document.addEventListener("DOMContentLoaded", () => {
  const v = document.getElementById("player");
  const note = document.getElementById("cannot-play");
  if (v && note) v.addEventListener("error", () => note.classList.add("failed"));
});

// A form that asks first (deletion).
document.addEventListener("submit", (ev) => {
  const ask = ev.target.dataset.confirm;
  if (ask && !window.confirm(ask)) ev.preventDefault();
});

// The inbox shows "checking" for an incident not verified yet: ask the API
// again until every row on the page has its verdict.
function refreshChecking() {
  const table = document.getElementById("inbox");
  if (!table || !table.dataset.checking) return;
  const q = new URLSearchParams(window.location.search);
  fetch("/api/incidents?" + q.toString(), { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((list) => {
      let pending = false;
      for (const inc of list.incidents || []) {
        const row = table.querySelector(`tr[data-name="${CSS.escape(inc.name)}"]`);
        if (!row) continue;
        const cell = row.querySelector(".state");
        cell.className = "state " + inc.state;
        cell.dataset.state = inc.state;
        cell.textContent = inc.state_text;
        if (inc.state === "checking") pending = true;
      }
      if (pending) setTimeout(refreshChecking, 1000);
      else delete table.dataset.checking;
    })
    .catch(() => setTimeout(refreshChecking, 3000));
}
document.addEventListener("DOMContentLoaded", () => setTimeout(refreshChecking, 500));
