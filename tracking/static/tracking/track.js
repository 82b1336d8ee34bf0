/* LeadCRM website tracking: <script src="…/static/tracking/track.js" data-site="pk_…" async></script>
 * Page views (URL, title, referrer, UTM tags), time on page, form submissions, downloads and
 * window.leadcrm.track("signup", {plan: "pro"}). Nothing at all under Do-Not-Track or Global
 * Privacy Control. Consent: window.leadcrm.consent(true) from your banner, a click on any element
 * with data-leadcrm-consent (="deny" withdraws), or data-consent="granted" on this tag. Before it,
 * the site's mode decides: nothing is sent, or anonymous events without any visitor id.
 * Signed identity (as the chat widget): data-user-email + data-user-hash, or leadcrm.identify(email, hash).
 * No cookies; no inline code (works under a strict CSP); events go by sendBeacon as text/plain.
 */
(function () {
  "use strict";
  var w = window, d = document, n = navigator, ls;
  var script = d.currentScript || d.querySelector("script[data-site][src*='track']");
  var api = { track: noop, consent: noop, identify: noop };
  if (!script || w.leadcrm && w.leadcrm.track) return;
  w.leadcrm = api;
  if (n.doNotTrack == "1" || w.doNotTrack == "1" || n.globalPrivacyControl) return;
  var data = script.dataset, KEY = data.site;
  var BASE = new URL(script.src, location.href).origin + "/api/v1/track/sites/" + encodeURIComponent(KEY) + "/";
  var P = "lct:" + KEY + ":";
  try { ls = w.localStorage; } catch (e) { ls = null; }
  var mode = null, dead = false, fresh = "", queue = [], vid = "", page = rid(), shown = Date.now(), spent = 0;

  function noop() {}
  function get(k) { try { return ls.getItem(k); } catch (e) { return null; } }
  function put(k, v) { try { v ? ls.setItem(k, v) : ls.removeItem(k); } catch (e) { /* private mode */ } }
  function rid() {
    var a = new Uint8Array(12);
    w.crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }
  function consented() { return get(P + "consent") === "1" || data.consent === "granted"; }

  function send(path, body) {
    var text = JSON.stringify(body);
    if (path === "events" && n.sendBeacon && n.sendBeacon(BASE + path, text)) return;
    fetch(BASE + path, { method: "POST", body: text, keepalive: true, credentials: "omit",
      headers: { "Content-Type": "text/plain" } }).catch(noop);
  }

  function flush() {
    if (!mode || !queue.length) return;
    var ok = consented();
    if (!ok && mode !== "anonymous") return; // after consent: keep this page's events until then
    if (ok && !vid) { vid = get(P + "vid") || fresh; put(P + "vid", vid); }
    var token = "";
    try { token = JSON.parse(get("lcw:" + KEY + ":token")) || ""; } catch (e) { /* none */ }
    while (queue.length) {
      send("events", { visitor_id: ok ? vid : "", consent: ok, chat_token: ok ? token : "",
        chat_widget: !!w.__leadcrmChat, events: queue.splice(0, 20) });
    }
  }

  function track(type, fields) {
    if (dead) return;
    fields.id = fields.id || rid();
    fields.type = type;
    fields.at = Date.now();
    if (type !== "time_on_page") { fields.url = fields.url || location.href; fields.title = d.title.slice(0, 200); }
    queue.push(fields);
    flush();
  }

  api.track = function (name, props) { track("custom", { name: String(name), props: props || {} }); };
  api.consent = function (yes) {
    put(P + "consent", yes ? "1" : "");
    if (!yes) { put(P + "vid", ""); vid = ""; }
    flush();
  };
  api.identify = function (email, hash) {
    if (!consented() || !mode) return;
    flush();
    send("identify", { visitor_id: vid, email: email, signature: hash });
  };

  d.addEventListener("click", function (e) {
    var el = e.target.closest && e.target.closest("a[href],[data-leadcrm-consent]");
    if (!el) return;
    if (el.hasAttribute("data-leadcrm-consent")) return api.consent(el.getAttribute("data-leadcrm-consent") !== "deny");
    if (el.hasAttribute("download") || /\.(pdf|zip|docx?|xlsx?|pptx?|csv|odt|ods|epub|mp3|mp4|dmg|exe)([?#]|$)/i.test(el.pathname)) {
      track("download", { file: el.href });
    }
  }, true);
  d.addEventListener("submit", function (e) {
    var f = e.target;
    track("form_submit", { form: (f.id || f.getAttribute("name") || f.getAttribute("action") || "").slice(0, 100) });
  }, true);
  d.addEventListener("visibilitychange", function () {
    if (d.visibilityState === "hidden") {
      spent += Date.now() - shown;
      track("time_on_page", { page_id: page, seconds: Math.min(86400, Math.round(spent / 1000)) });
    } else {
      shown = Date.now();
    }
  });

  track("page_view", { id: page, referrer: d.referrer });
  fetch(BASE + "config", { credentials: "omit" }).then(function (r) { return r.json(); }).then(function (c) {
    if (c.mode === "off" || c.do_not_track) { dead = true; queue = []; return; }
    mode = c.mode;
    fresh = c.visitor_id;
    flush();
    if (data.userEmail && data.userHash) api.identify(data.userEmail, data.userHash);
  }).catch(noop);
})();
