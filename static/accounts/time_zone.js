// Tells the server the browser's time zone (a `tz` cookie), so pages show times in it until the
// user picks a zone on their profile page. The server checks the name against the zones it knows.
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (err) {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) {
    return;
  }
  var value = "tz=" + zone; // the pattern above keeps it a plain cookie value
  if (document.cookie.split("; ").indexOf(value) !== -1) {
    return;
  }
  var secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = value + "; path=/; max-age=31536000; SameSite=Lax" + secure;
})();
