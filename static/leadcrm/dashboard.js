// The dashboard's little bit of behaviour: focus and highlight the opened lead, show the lost
// reason only when it is needed, and "/" to jump to search. Everything works without it.
(function () {
  "use strict";

  function markActiveRow() {
    var panel = document.querySelector("#lead-panel .panel");
    var id = panel ? panel.getAttribute("data-lead-id") : null;
    document.querySelectorAll("#queue-table tr[data-lead-id]").forEach(function (row) {
      if (row.getAttribute("data-lead-id") === id) row.setAttribute("aria-current", "true");
      else row.removeAttribute("aria-current");
    });
    var dashboard = document.querySelector(".dashboard");
    if (dashboard) dashboard.classList.toggle("has-panel", Boolean(panel));
  }

  function syncLostReason(root) {
    (root || document).querySelectorAll("select[data-shows-lost-reason]").forEach(function (select) {
      var box = select.form && select.form.querySelector(".lost-reason");
      if (!box) return;
      var update = function () { box.hidden = select.value !== "lost" && !box.querySelector("[aria-invalid]"); };
      select.addEventListener("change", update);
      update();
    });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && target.id === "lead-panel") {
      var focus = target.querySelector("[data-autofocus]") || target.querySelector("#lead-heading");
      if (focus) focus.focus({ preventScroll: true });
      if (!target.querySelector("[data-autofocus]")) target.scrollTop = 0;  // a new lead starts at its top
      if (window.matchMedia("(max-width: 1099px)").matches && !target.querySelector("[data-autofocus]")) {
        target.scrollIntoView({ block: "start" });  // stacked layout: the panel is below the queue
      }
      syncLostReason(target);
    }
    markActiveRow();
  });

  document.addEventListener("click", function (event) {
    var close = event.target.closest && event.target.closest("[data-close-panel]");
    if (!close) return;
    var panel = document.getElementById("lead-panel");
    if (!panel || !document.getElementById("queue-table")) return;
    event.preventDefault();
    var id = panel.querySelector(".panel") && panel.querySelector(".panel").getAttribute("data-lead-id");
    panel.innerHTML = '<p class="panel-empty">Pick a lead from the queue to see who they are, why they scored, and what to say next.</p>';
    var url = document.getElementById("queue-table").getAttribute("data-queue-url");
    if (url) history.pushState({}, "", url);
    markActiveRow();
    var link = id && document.getElementById("lead-link-" + id);
    if (link) link.focus();
  });

  document.addEventListener("keydown", function (event) {
    var tag = (event.target.tagName || "").toLowerCase();
    if (event.key === "/" && !/input|textarea|select/.test(tag)) {
      var search = document.getElementById("id_q");
      if (search) { event.preventDefault(); search.focus(); }
    }
    if (event.key === "Escape" && document.querySelector("#lead-panel .panel") && !/input|textarea|select/.test(tag)) {
      var close = document.querySelector("[data-close-panel]");
      if (close) close.click();
    }
  });

  // The queue polls every 15 s, but not while the tab is hidden. (An hx-trigger filter would do it,
  // but htmx evaluates filters with eval, which the Content-Security-Policy forbids.) Polls carry
  // no triggering event; "queue-changed" refreshes always go through.
  document.addEventListener("htmx:confirm", function (event) {
    if (event.target.id === "queue-table" && !event.detail.triggeringEvent && document.visibilityState !== "visible") {
      event.preventDefault();
    }
  });

  // Phone: the filters fold behind their summary (open again when the window grows), and a lead
  // opens as its own page with a back link instead of a panel appended far below the list.
  var phone = window.matchMedia("(max-width: 640px)");

  function foldFilters() {
    var box = document.getElementById("filter-box");
    if (box) box.open = !phone.matches;
  }

  document.addEventListener("htmx:confirm", function (event) {
    var el = event.target;
    if (!phone.matches || !el.closest || !el.closest("#queue-table")) return;
    if (el.getAttribute("hx-target") !== "#lead-panel") return;
    event.preventDefault();
    if (el.tagName === "A") window.location.assign(el.href);
    else if (el.tagName === "FORM") el.submit();
  });

  if (phone.addEventListener) phone.addEventListener("change", foldFilters);

  document.addEventListener("DOMContentLoaded", function () { markActiveRow(); syncLostReason(document); foldFilters(); });
})();
