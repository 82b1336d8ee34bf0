// The tokens page: "Copy" puts the new secret on the clipboard, and the new secret gets focus
// after htmx swaps it in. Everything works without it (the secret is in a selectable field).
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    var status = document.querySelector("[data-copy-status]");
    if (!field) return;
    field.select();
    var done = function (ok) {
      if (status) status.textContent = ok ? "Copied. Paste it where the program asks for it." : "Select the token and copy it with Ctrl+C (⌘C on a Mac).";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(field.value).then(function () { done(true); }, function () { done(false); });
    } else {
      done(false);
    }
  });

  function focusNewSecret() {
    var secret = document.getElementById("new-token-secret");
    if (secret) { secret.focus(); secret.select(); }
  }
  document.addEventListener("htmx:afterSwap", focusNewSecret);
  document.addEventListener("DOMContentLoaded", focusNewSecret);
})();
