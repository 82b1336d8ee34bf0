/*! LeadCRM chat widget. One self-contained file, no dependencies.
 * <script src="https://crm.example.com/static/chatbot/widget.js" data-site="KEY" async></script>
 * Optional identity (signed by your server): data-user-email, data-user-name, data-user-hash
 * (hex HMAC-SHA256 of the lower-cased email with the site's identity secret).
 * Everything the visitor or an agent writes is rendered with textContent, never as HTML. */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-site]");
  if (!script || window.__leadcrmChat) return;
  window.__leadcrmChat = true;
  var KEY = script.getAttribute("data-site");
  var ORIGIN = new URL(script.src, location.href).origin;
  var API = ORIGIN + "/api/v1/chat/sites/" + encodeURIComponent(KEY) + "/";
  var WS = ORIGIN.replace(/^http/, "ws") + "/ws/chat/visitor/";
  var P = "lcw:" + KEY + ":";

  // --- storage (private mode or blocked storage must not break the chat) ----------------------
  function get(k, d) {
    try { var v = localStorage.getItem(P + k); return v === null ? d : JSON.parse(v); } catch (e) { return d; }
  }
  function put(k, v) {
    try { v === null ? localStorage.removeItem(P + k) : localStorage.setItem(P + k, JSON.stringify(v)); } catch (e) { /* ignore */ }
  }
  function rid() {
    var a = new Uint8Array(12);
    (window.crypto || window.msCrypto).getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  var vid = get("vid") || "v_" + rid();
  put("vid", vid);
  var token = get("token");
  var lastId = 0; // a reload renders the whole open conversation again
  var outbox = get("outbox", []);
  var trail = get("trail", []);
  var here = { url: location.href, title: document.title.slice(0, 200), at: new Date().toISOString() };
  trail.push(here);
  put("trail", trail.slice(-20));
  var cfg = { name: "Chat", brand_color: "#1f5fbf", privacy_url: "", privacy_text: "", proactive: [], max_message_chars: 1000 };

  // --- HTTP ----------------------------------------------------------------------------------
  function call(method, path, body) {
    return fetch(API + path, {
      method: method,
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      mode: "cors"
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (d) {
        if (!r.ok) { var e = new Error(errorText(d, r.status)); e.status = r.status; throw e; }
        return d;
      });
    });
  }
  function errorText(d, status) {
    if (status === 429) return "You're sending messages quickly. Please wait a moment.";
    if (d && d.detail) return String(d.detail);
    for (var k in d) { if (Array.isArray(d[k])) return String(d[k][0]); }
    return "Something went wrong. Please try again.";
  }
  function conv(path) { return "conversations/" + encodeURIComponent(token) + "/" + path; }

  // --- DOM -----------------------------------------------------------------------------------
  function el(tag, attrs, kids) {
    var n = document.createElement(tag);
    for (var a in attrs || {}) {
      if (a === "text") n.textContent = attrs[a];
      else if (a.slice(0, 2) === "on") n.addEventListener(a.slice(2), attrs[a]);
      else n.setAttribute(a, attrs[a]);
    }
    (kids || []).forEach(function (c) { if (c) n.appendChild(c); });
    return n;
  }
  var host = el("div", { id: "leadcrm-chat" });
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var CSS =
    ":host{all:initial}*{box-sizing:border-box;font:15px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330}" +
    ".w{position:fixed;right:16px;bottom:16px;z-index:2147483000;display:flex;flex-direction:column;align-items:flex-end;gap:8px}" +
    "button{cursor:pointer;border-radius:8px;border:1px solid #9aa3b5;background:#fff;padding:6px 10px}" +
    "button:focus-visible,input:focus-visible,textarea:focus-visible,a:focus-visible{outline:3px solid #f0b400;outline-offset:2px}" +
    ".l{background:var(--b);color:#fff;border:0;border-radius:28px;padding:12px 18px;font-weight:600;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".p{width:360px;max-width:calc(100vw - 32px);height:540px;max-height:calc(100vh - 90px);background:#fff;border:1px solid #c8ceda;border-radius:12px;box-shadow:0 8px 30px rgba(0,0,0,.25);display:flex;flex-direction:column;overflow:hidden}" +
    ".h{background:var(--b);color:#fff;padding:10px 12px;display:flex;gap:6px;align-items:center}.h *{color:#fff}.h strong{flex:1}.h small{display:block;font-size:12px;opacity:.9}" +
    ".h button{background:transparent;border:1px solid rgba(255,255,255,.6);padding:3px 8px;font-size:13px}" +
    ".g{flex:1;overflow-y:auto;padding:10px;display:flex;flex-direction:column;gap:6px;margin:0;list-style:none}" +
    ".m{max-width:85%;padding:7px 10px;border-radius:10px;background:#eef1f6;white-space:pre-wrap;overflow-wrap:anywhere}" +
    ".m.visitor{align-self:flex-end;background:var(--b);color:#fff}.m.agent{background:#e7f5ec;border:1px solid #b5dcc2}" +
    ".m.pending{opacity:.6}.m b{display:block;font-size:12px;color:inherit}.m.err{background:#fdecea;color:#8a1c14}" +
    ".a{display:flex;flex-wrap:wrap;gap:6px}.a button{font-size:13px;padding:4px 8px;border-color:var(--b);color:var(--b)}" +
    "form{padding:10px;border-top:1px solid #dde1e8;display:flex;flex-direction:column;gap:6px;margin:0}" +
    ".c{flex-direction:row;align-items:flex-end}.c textarea{flex:1;resize:none;height:40px;padding:8px;border:1px solid #9aa3b5;border-radius:8px}" +
    "input[type=text],input[type=email],input[type=tel],textarea{width:100%;padding:6px;border:1px solid #9aa3b5;border-radius:6px}" +
    ".s{background:var(--b);color:#fff;border-color:var(--b)}label{font-size:13px}.x{font-size:12px;color:#5a6275}" +
    ".v{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}" +
    ".q{max-width:260px;background:#fff;border:1px solid #c8ceda;border-radius:10px;padding:8px 10px;box-shadow:0 4px 14px rgba(0,0,0,.2);display:flex;gap:6px;align-items:flex-start}" +
    ".q span{flex:1}.q button{border:0;padding:0 4px}" +
    ".r{display:flex;gap:4px}.r label{border:1px solid #9aa3b5;border-radius:6px;padding:4px 9px}.r input{margin:0 4px 0 0}" +
    "[hidden]{display:none!important}.k{border:0;padding:0;text-decoration:underline;font-size:13px;background:none;color:#39414f}" +
    "@media (max-width:480px){.w{right:0;bottom:0;left:0;align-items:stretch}.p{position:fixed;inset:0;width:auto;max-width:none;height:auto;max-height:none;border-radius:0}.o .l,.o .q{display:none}.l{margin:0 12px 12px auto}}";
  root.appendChild(el("style", { text: CSS }));

  var wrap = el("div", { "class": "w" });
  var statusLine = el("small", { text: "" });
  var title = el("strong", {}, [document.createTextNode(cfg.name), statusLine]);
  var log = el("ol", { "class": "g", role: "log", "aria-live": "polite", "aria-label": "Chat messages" });
  var actionsBox = el("div", { "class": "a", style: "padding:0 10px" });
  var input = el("textarea", { id: "lcw-in", maxlength: "1000", rows: "1", placeholder: "Type your question…" });
  var composer = el("form", { "class": "c" }, [
    el("label", { "for": "lcw-in", "class": "v", text: "Your message" }),
    input,
    el("button", { type: "submit", "class": "s", text: "Send" })
  ]);
  var idForm = buildIdentify();
  var rateForm = buildRating();
  var panel = el("div", { "class": "p", role: "dialog", "aria-label": "Chat", hidden: "" }, [
    el("div", { "class": "h" }, [
      title,
      el("button", { type: "button", text: "Talk to a person", onclick: handoff }),
      el("button", { type: "button", text: "End chat", onclick: function () { show(rateForm); } }),
      el("button", { type: "button", "aria-label": "Minimise chat", text: "–", onclick: function () { toggle(false); } })
    ]),
    log, actionsBox, idForm, rateForm, composer,
    el("div", { "class": "a", style: "padding:0 10px 8px" }, [
      el("button", { type: "button", "class": "k", text: "Leave my contact details", onclick: function () { consentLine(); ensure().then(function () { show(idForm); }); } })
    ])
  ]);
  var teaser = el("div", { "class": "q", role: "status", hidden: "" });
  var launcher = el("button", { type: "button", "class": "l", "aria-expanded": "false", text: "Chat with us", onclick: function () { toggle(); } });
  wrap.appendChild(panel);
  wrap.appendChild(teaser);
  wrap.appendChild(launcher);
  root.appendChild(wrap);

  composer.addEventListener("submit", function (e) { e.preventDefault(); send(input.value); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(input.value); }
  });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });

  function brand(color) { wrap.style.setProperty("--b", /^#[0-9a-fA-F]{6}$/.test(color) ? color : "#1f5fbf"); }
  brand(cfg.brand_color);

  function show(form) {
    [idForm, rateForm].forEach(function (f) { f.hidden = f !== form; });
    composer.hidden = !!form;
    var first = form && form.querySelector("input,textarea");
    if (first) first.focus();
  }

  function buildIdentify() {
    var consentText = el("span", {});
    var f = el("form", { hidden: "", "aria-label": "Your contact details" }, [
      el("label", { "for": "lcw-n", text: "Name" }), el("input", { id: "lcw-n", name: "name", type: "text", autocomplete: "name" }),
      el("label", { "for": "lcw-e", text: "Email" }), el("input", { id: "lcw-e", name: "email", type: "email", autocomplete: "email" }),
      el("label", { "for": "lcw-t", text: "Phone (optional)" }), el("input", { id: "lcw-t", name: "phone", type: "tel", autocomplete: "tel" }),
      el("label", {}, [el("input", { type: "checkbox", name: "contact_consent", required: "" }), consentText]),
      el("label", {}, [el("input", { type: "checkbox", name: "marketing_consent" }), document.createTextNode(" Also send me news and offers (optional).")]),
      el("p", { "class": "x err", role: "alert" }),
      el("div", { "class": "a" }, [
        el("button", { type: "submit", "class": "s", text: "Save my details" }),
        el("button", { type: "button", text: "Cancel", onclick: function () { show(null); } })
      ])
    ]);
    f._consent = consentText;
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var d = {
        name: f.elements.name.value, email: f.elements.email.value, phone: f.elements.phone.value,
        contact_consent: f.elements.contact_consent.checked, marketing_consent: f.elements.marketing_consent.checked
      };
      call("POST", conv("identify/"), d).then(function (r) {
        show(null); render(r.messages);
      }).catch(function (err) { f.querySelector("[role=alert]").textContent = err.message; });
    });
    return f;
  }

  function consentLine() {
    var s = idForm._consent;
    s.textContent = " I agree that " + cfg.name + " stores these details to answer me and contact me about my request. ";
    if (cfg.privacy_url) {
      s.appendChild(el("a", { href: cfg.privacy_url, target: "_blank", rel: "noopener", text: "Privacy notice" }));
    } else if (cfg.privacy_text) {
      s.appendChild(el("span", { "class": "x", text: "(" + cfg.privacy_text + ")" }));
    }
  }

  function buildRating() {
    var stars = el("div", { "class": "r", role: "radiogroup", "aria-label": "Rating from 1 to 5" });
    for (var i = 1; i <= 5; i++) {
      stars.appendChild(el("label", {}, [el("input", { type: "radio", name: "rating", value: String(i) }), document.createTextNode(String(i))]));
    }
    var f = el("form", { hidden: "", "aria-label": "Rate this chat" }, [
      el("p", { style: "margin:0", text: "How was this chat? (1 = poor, 5 = great)" }), stars,
      el("label", { "for": "lcw-rc", text: "Comment (optional)" }), el("textarea", { id: "lcw-rc", name: "comment", rows: "2", maxlength: "2000" }),
      el("p", { "class": "x", role: "alert" }),
      el("div", { "class": "a" }, [
        el("button", { type: "submit", "class": "s", text: "End chat" }),
        el("button", { type: "button", text: "Back to chat", onclick: function () { show(null); } })
      ])
    ]);
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var picked = f.querySelector("input[name=rating]:checked");
      call("POST", conv("close/"), { rating: picked ? +picked.value : null, comment: f.elements.comment.value })
        .then(function () {
          token = null; put("token", null); lastId = 0; seen = {};
          if (sock) sock.close();
          log.textContent = ""; actionsBox.textContent = "";
          show(null);
          note("Thanks! The chat has ended. Write again any time.");
        })
        .catch(function (err) { f.querySelector("[role=alert]").textContent = err.message; });
    });
    return f;
  }

  // --- Messages ------------------------------------------------------------------------------
  var seen = {};
  function note(text, cls) { log.appendChild(el("li", { "class": "m " + (cls || "bot"), text: text })); scroll(); }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function render(messages) {
    (messages || []).forEach(function (m) {
      if (seen[m.id]) return;
      seen[m.id] = 1;
      var pending = m.from === "visitor" && log.querySelector('[data-c="' + cssEsc(m.client_id || "") + '"]');
      var li = el("li", { "class": "m " + m.from, "data-id": String(m.id) });
      if (m.from === "agent") li.appendChild(el("b", { text: m.agent || "Team" }));
      li.appendChild(document.createTextNode(m.text));
      if (pending) log.replaceChild(li, pending);
      else log.insertBefore(li, after(m.id));
      if (m.id > lastId) lastId = m.id;
      showActions(m);
    });
    scroll();
  }
  // Keep server order: a reply that arrives late goes before later messages and unsent bubbles.
  function after(id) {
    for (var n = log.firstChild; n; n = n.nextSibling) {
      if (n.getAttribute("data-c") || +n.getAttribute("data-id") > id) return n;
    }
    return null;
  }
  function cssEsc(s) { return String(s).replace(/[^a-zA-Z0-9_-]/g, ""); }

  function showActions(m) {
    if (m.from === "visitor") { actionsBox.textContent = ""; return; }
    actionsBox.textContent = "";
    (m.actions || []).forEach(function (a) {
      actionsBox.appendChild(el("button", { type: "button", text: a.label, onclick: function () { act(a, m); } }));
    });
  }

  function act(a, m) {
    actionsBox.textContent = "";
    if (a.type === "handoff") handoff();
    else if (a.type === "helpful") call("POST", conv("feedback/"), { message_id: m.id, helpful: !!a.value }).then(function (r) { render(r.messages); if (a.value) note("Glad I could help!"); });
    else if (a.type === "confirm") send(a.text || a.label);
    else if (a.type === "identify") { consentLine(); show(idForm); }
    else if (a.type === "callback") call("POST", conv("callback/"), { due_at: a.due_at }).then(function (r) { render(r.messages); }).catch(function (err) {
      note(err.message, "err"); consentLine(); show(idForm);
    });
  }

  function handoff() {
    ensure().then(function () { return call("POST", conv("handoff/")); }).then(function (r) { render(r.messages); setStatus(r.status); })
      .catch(function (err) { note(err.message, "err"); });
  }

  function setStatus(s, agent) {
    statusLine.textContent = s === "human" ? (agent ? agent + " is here" : "With a person") : s === "waiting" ? "Waiting for a person…" : cfg.open_now ? "Online" : "Offline: bot only";
  }

  // Sending: every message gets a client id and waits in a stored outbox until the server has
  // it, so a network drop or a reload never loses one and a resend is never doubled.
  var flushing = false, backoff = 1000;
  function send(text) {
    text = (text || "").trim();
    if (!text) return;
    if (text.length > cfg.max_message_chars) { note("Please keep messages under " + cfg.max_message_chars + " characters.", "err"); return; }
    input.value = "";
    var item = { text: text, client_id: rid() };
    outbox.push(item);
    put("outbox", outbox);
    log.appendChild(el("li", { "class": "m visitor pending", "data-c": item.client_id, text: text }));
    scroll();
    flush();
  }
  function flush() {
    if (flushing || !outbox.length) return;
    flushing = true;
    ensure().then(function () {
      var item = outbox[0];
      return call("POST", conv("messages/"), item).then(function (r) {
        r.messages.forEach(function (m) { if (m.from === "visitor") m.client_id = item.client_id; });
        outbox.shift(); put("outbox", outbox); backoff = 1000;
        render(r.messages); setStatus(r.status);
      });
    }).then(function () { flushing = false; flush(); }, function (err) {
      flushing = false;
      if (err.status && err.status !== 429 && err.status < 500) {
        var item = outbox.shift(); put("outbox", outbox);
        var p = log.querySelector('[data-c="' + item.client_id + '"]');
        if (p) p.remove();
        if (err.status === 404) { token = null; put("token", null); }
        note(err.message, "err");
        return flush();
      }
      setTimeout(flush, backoff); backoff = Math.min(backoff * 2, 30000);
    });
  }
  window.addEventListener("online", function () { backoff = 1000; flush(); connect(); });

  // --- Conversation and live socket --------------------------------------------------------------
  var starting = null;
  function ensure() {
    if (token) return Promise.resolve();
    if (starting) return starting;
    var d = script.dataset;
    starting = call("POST", "conversations/", {
      visitor_id: vid, page_url: location.href, page_title: document.title.slice(0, 200),
      language: (navigator.language || "").slice(0, 35),
      timezone: (Intl.DateTimeFormat().resolvedOptions().timeZone || "").slice(0, 64),
      trail: trail.slice(0, -1).slice(-10).map(function (t) { return { url: t.url.slice(0, 500), title: t.title }; }),
      identity_email: d.userEmail || "", identity_name: d.userName || "", identity_signature: d.userHash || ""
    }).then(function (r) {
      token = r.token; vid = r.visitor_id; put("token", token); put("vid", vid);
      render(r.messages); setStatus(r.status); connect();
    }).finally(function () { starting = null; });
    return starting;
  }

  var sock = null, wsRetry = 1000;
  function connect() {
    if (!token || (sock && sock.readyState < 2)) return;
    var mine = token;
    sock = new WebSocket(WS + encodeURIComponent(token) + "/");
    sock.onopen = function () { wsRetry = 1000; resync(); };
    sock.onmessage = function (e) {
      var d = JSON.parse(e.data);
      if (d.type === "message") render([d.message]);
      else if (d.type === "status") setStatus(d.status, d.agent);
    };
    sock.onclose = function () {
      if (token !== mine) return;
      setTimeout(connect, wsRetry); wsRetry = Math.min(wsRetry * 2, 30000);
    };
  }
  function resync() {
    if (!token) return;
    call("GET", conv("messages/?after=" + lastId)).then(function (r) { render(r.messages); setStatus(r.status); }).catch(function (err) {
      if (err.status === 404) { token = null; put("token", null); }
    });
  }
  setInterval(function () {
    if (!token || document.hidden) return;
    if (sock && sock.readyState === 1) sock.send(JSON.stringify({ type: "ping" }));
    else call("POST", conv("heartbeat/")).catch(function () {});
  }, 60000);

  function toggle(open) {
    open = open === undefined ? panel.hidden : open;
    panel.hidden = !open;
    wrap.classList.toggle("o", open);
    teaser.hidden = true;
    launcher.setAttribute("aria-expanded", String(open));
    launcher.textContent = open ? "Close chat" : "Chat with us";
    put("open", open);
    if (open) {
      input.focus();
      if (!token) ensure().catch(function (err) { note(err.message, "err"); });
    } else launcher.focus();
  }

  function proactive() {
    if (token || get("teased") || !panel.hidden) return;
    cfg.proactive.some(function (p) {
      if (p.url_contains && location.href.indexOf(p.url_contains) < 0) return false;
      setTimeout(function () {
        if (!panel.hidden || token) return;
        teaser.textContent = "";
        teaser.appendChild(el("span", { text: p.text }));
        teaser.appendChild(el("button", { type: "button", "aria-label": "Dismiss", text: "×", onclick: function () { teaser.hidden = true; put("teased", 1); } }));
        teaser.hidden = false;
      }, p.delay_seconds * 1000);
      return true;
    });
  }

  function boot() {
    document.body.appendChild(host);
    call("GET", "config/?visitor_id=" + encodeURIComponent(vid)).then(function (c) {
      cfg = c;
      title.firstChild.textContent = c.name;
      input.setAttribute("maxlength", String(c.max_message_chars));
      brand(c.brand_color);
      consentLine();
      setStatus("bot");
      proactive();
    }).catch(function () { /* offline: the chat still opens and retries */ });
    if (token) {
      call("POST", conv("pageviews/"), { url: here.url.slice(0, 500), title: here.title }).catch(function (err) {
        if (err.status === 404) { token = null; put("token", null); }
      });
      resync();
      connect();
      flush();
      if (get("open")) toggle(true);
    }
  }
  if (document.body) boot(); else document.addEventListener("DOMContentLoaded", boot);
})();
