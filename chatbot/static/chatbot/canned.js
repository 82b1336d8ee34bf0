/* Canned replies in the agent panel: insert the chosen reply (already merged for this lead on the
   server) into the reply box, where the agent edits it before sending. Safe to load many times. */
(function () {
  "use strict";
  if (window.__cannedReplies) {
    reveal();
    return;
  }
  window.__cannedReplies = true;

  function reveal() {
    document.querySelectorAll(".canned-picker[hidden]").forEach(function (p) { p.hidden = false; });
  }

  function insert(picker) {
    var select = picker.querySelector("[data-canned-select]");
    var option = select && select.selectedOptions[0];
    var box = document.getElementById(picker.dataset.cannedFor);
    if (!option || !option.value || !box) return;
    var text = option.dataset.text || "";
    var start = box.selectionStart, end = box.selectionEnd;
    if (typeof start === "number" && document.activeElement === box) {
      box.value = box.value.slice(0, start) + text + box.value.slice(end);
    } else {
      box.value = box.value ? box.value.replace(/\s*$/, "") + "\n" + text : text;
    }
    box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
    select.value = "";
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-canned-insert]");
    if (button) insert(button.closest(".canned-picker"));
  });
  document.addEventListener("htmx:afterSettle", reveal);
  reveal();
})();
