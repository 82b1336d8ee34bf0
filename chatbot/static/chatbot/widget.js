/*! LeadCRM chat widget. One self-contained file, no dependencies.
 * <script src="https://crm.example.com/static/chatbot/widget.js" data-site="KEY" async></script>
 * Optional identity (signed by your server): data-user-email, data-user-name, data-user-hash
 * (hex HMAC-SHA256 of the lower-cased email with the site's identity secret).
 * Without it a visitor can verify their email in the chat with a one-time code we email them.
 * Everything the visitor or an agent writes is rendered with textContent, never as HTML.
 * Styles: widget.css beside this file (no inline styles: works under a strict CSP).
 * The conversation token travels in the X-Chat-Token header and the socket's first frame, never
 * in a URL. */
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
  var prev = get("prev"); // the last, closed conversation's token: the server links its lead
  var known = false; // the server says the visitor is identified (may see / erase their data)
  var verified = false; // signed identity or email code: no need to offer "Verify my email"
  var lastId = 0; // a reload renders the whole open conversation again
  var outbox = get("outbox", []);
  var trail = get("trail", []);
  var here = { url: location.href, title: document.title.slice(0, 200), at: new Date().toISOString() };
  trail.push(here);
  put("trail", trail.slice(-20));
  var cfg = { name: "Chat", brand_color: "#1f5fbf", privacy_url: "", privacy_text: "", proactive: [], max_message_chars: 1000,
    consent_text: "I agree that you store these details to answer me and contact me about my request.",
    marketing_consent_text: "Also send me news and offers (optional).", consent_version: "" };

  // --- HTTP ----------------------------------------------------------------------------------
  function call(method, path, body, tok, raw) {
    var h = body ? { "Content-Type": "application/json" } : {};
    tok = tok === undefined ? token : tok;
    if (tok) h["X-Chat-Token"] = tok;
    return fetch(API + path, {
      method: method,
      headers: h,
      body: body ? JSON.stringify(body) : undefined,
      credentials: "omit",
      mode: "cors"
    }).then(function (r) {
      if (raw && r.ok) return r;
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
  function conv(path) { return "conversation/" + path; }

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
  // Styles come from widget.css next to this script (a <link>, which a strict CSP allows for the
  // CRM's origin); the widget stays hidden until they load, so it never flashes unstyled.
  var sheet = el("link", { rel: "stylesheet", href: new URL("widget.css", script.src).href });
  root.appendChild(sheet);


  var wrap = el("div", { "class": "w" });
  var statusLine = el("small", { text: "" });
  // One line, cut with an ellipsis (widget.css); the full name is the tooltip.
  var title = el("strong", { title: cfg.name }, [document.createTextNode(cfg.name), statusLine]);
  // A <div role="log">, not an <ol>: the log role would strip the list's semantics and leave its
  // items orphaned (axe: listitem). Focusable, so keyboard users can scroll the history.
  var log = el("div", { "class": "g", role: "log", "aria-live": "polite", "aria-label": "Chat messages", tabindex: "0" });
  var typing = el("p", { "class": "x tp", hidden: "" });  // "Anna is typing…" (the agent, over the socket)
  var actionsBox = el("div", { "class": "a pad" });
  var input = el("textarea", { id: "lcw-in", maxlength: "1000", rows: "1", placeholder: "Type your question…" });
  var composer = el("form", { "class": "c" }, [
    el("label", { "for": "lcw-in", "class": "v", text: "Your message" }),
    input,
    el("button", { type: "submit", "class": "s", text: "Send" })
  ]);
  var idForm = buildIdentify();
  var verifyForm = buildVerify();
  var verifyBtn = el("button", { type: "button", "class": "k", text: "Verify my email", onclick: function () { ensure().then(function () { openVerify(""); }); } });
  var mine = buildMine();
  var rateForm = buildRating();
  var personBtn = el("button", { type: "button", text: "Talk to a person", onclick: handoff });
  var panel = el("div", { "class": "p", role: "dialog", "aria-label": "Chat", hidden: "" }, [
    el("div", { "class": "h" }, [
      title,
      personBtn,
      el("button", { type: "button", text: "End chat", onclick: function () { show(rateForm); } }),
      el("button", { type: "button", "aria-label": "Minimise chat", text: "–", onclick: function () { toggle(false); } })
    ]),
    log, typing, actionsBox, idForm, verifyForm, rateForm, composer,
    el("div", { "class": "a pad8" }, [
      el("button", { type: "button", "class": "k", text: "Leave my contact details", onclick: function () { consentLine(); ensure().then(function () { show(idForm); }); } }),
      verifyBtn
    ]),
    mine
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
    [idForm, verifyForm, rateForm].forEach(function (f) { f.hidden = f !== form; });
    composer.hidden = !!form;
    var first = form && form.querySelector("input,textarea");
    if (first) first.focus();
  }

  function buildIdentify() {
    var consentText = el("span", {});
    var marketingText = el("span", {});
    var f = el("form", { hidden: "", "aria-label": "Your contact details" }, [
      el("label", { "for": "lcw-n", text: "Name" }), el("input", { id: "lcw-n", name: "name", type: "text", autocomplete: "name" }),
      el("label", { "for": "lcw-e", text: "Email" }), el("input", { id: "lcw-e", name: "email", type: "email", autocomplete: "email" }),
      el("label", { "for": "lcw-t", text: "Phone (optional)" }), el("input", { id: "lcw-t", name: "phone", type: "tel", autocomplete: "tel" }),
      el("label", {}, [el("input", { type: "checkbox", name: "contact_consent", required: "" }), consentText]),
      el("label", {}, [el("input", { type: "checkbox", name: "marketing_consent" }), marketingText]),
      el("p", { "class": "x err", role: "alert" }),
      el("div", { "class": "a" }, [
        el("button", { type: "submit", "class": "s", text: "Save my details" }),
        el("button", { type: "button", text: "Cancel", onclick: function () { show(null); } })
      ])
    ]);
    f._consent = consentText;
    f._marketing = marketingText;
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      var d = {
        name: f.elements.name.value, email: f.elements.email.value, phone: f.elements.phone.value,
        contact_consent: f.elements.contact_consent.checked, marketing_consent: f.elements.marketing_consent.checked,
        consent_version: cfg.consent_version
      };
      call("POST", conv("identify/"), d).then(function (r) {
        show(null); render(r.messages); setKnown(r.identified); retryPromise();
        if (d.email && !verified) offerVerify(d.email); // offer to prove it: a code by email
      }).catch(function (err) { f.querySelector("[role=alert]").textContent = err.message; });
    });
    return f;
  }

  // "Verify it's you": a one-time code mailed to the address, typed here. The address stays in
  // this form only (not stored, never in a URL).
  function buildVerify() {
    var info = el("p", { "class": "x m0", role: "status", "aria-live": "polite" });
    var err = el("p", { "class": "x m0 err", role: "alert" });
    var codeBox = el("div", { hidden: "" }, [
      el("label", { "for": "lcw-vc", text: "6-digit code from the email" }),
      el("input", { id: "lcw-vc", name: "code", type: "text", inputmode: "numeric", autocomplete: "one-time-code", maxlength: "7" })
    ]);
    var ask = el("button", { type: "button", text: "Send me a code", onclick: request });
    var ok = el("button", { type: "submit", "class": "s", text: "Confirm", hidden: "" });
    var f = el("form", { hidden: "", "aria-label": "Verify your email" }, [
      el("p", { "class": "m0", text: "Verify it's you to see your past conversations with us: we email you a code." }),
      el("label", { "for": "lcw-ve", text: "Your email" }), el("input", { id: "lcw-ve", name: "email", type: "email", autocomplete: "email" }),
      codeBox, info, err,
      el("div", { "class": "a" }, [ask, ok, el("button", { type: "button", text: "Cancel", onclick: function () { show(null); } })])
    ]);
    function fail(e, what) { err.textContent = e.status === 429 ? "Too many " + what + ". Please try again later." : e.message; }
    function request() {
      info.textContent = err.textContent = "";
      call("POST", conv("email-code/"), { email: f.elements.email.value }).then(function (r) {
        info.textContent = r.detail; codeBox.hidden = ok.hidden = false; ask.textContent = "Send a new code";
        f.elements.code.value = ""; f.elements.code.focus();
      }).catch(function (e) { fail(e, "codes were asked for"); });
    }
    f.addEventListener("submit", function (e) {
      e.preventDefault();
      if (codeBox.hidden) return request();
      err.textContent = "";
      call("POST", conv("email-code/confirm/"), { email: f.elements.email.value, code: f.elements.code.value }).then(function (r) {
        show(null); render(r.messages); setKnown(r.identified); setVerified(r.identity_verified);
      }).catch(function (e) { fail(e, "tries"); });
    });
    f._reset = function (email) {
      f.elements.email.value = email; f.elements.code.value = "";
      info.textContent = err.textContent = ""; codeBox.hidden = ok.hidden = true; ask.textContent = "Send me a code";
    };
    f._request = request;
    return f;
  }
  function openVerify(email, send) {
    verifyForm._reset(email || "");
    show(verifyForm);
    if (send) verifyForm._request();
  }
  function offerVerify(email) {
    var b = el("button", { type: "button", text: "Verify it's me: email me a code", onclick: function () { actionsBox.textContent = ""; openVerify(email, true); } });
    actionsBox.appendChild(b);
    b.focus();
  }
  function setVerified(v) {
    if (v === undefined) return;
    verified = !!v; verifyBtn.hidden = verified;
  }

  function consentLine() {
    var s = idForm._consent;
    s.textContent = " " + cfg.consent_text + " ";
    idForm._marketing.textContent = " " + cfg.marketing_consent_text;
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
      el("p", { "class": "m0", text: "How was this chat? (1 = poor, 5 = great)" }), stars,
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
          prev = token; put("prev", prev);
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

  // "What do you know about me?" and erasure, for an identified visitor (privacy endpoints).
  function buildMine() {
    var out = el("p", { "class": "x", role: "status" });
    var box = el("div", { "class": "me", hidden: "", role: "group", "aria-label": "Your data" }, [
      el("button", { type: "button", "class": "k", text: "What do you know about me?", onclick: download }),
      el("button", { type: "button", "class": "k", text: "Ask us to erase my data", onclick: erase }),
      out
    ]);
    function download() {
      out.textContent = "Preparing your data…";
      call("GET", "me/data?format=json", null, token || prev, true).then(function (r) { return r.blob(); }).then(function (b) {
        var a = el("a", { href: URL.createObjectURL(b), download: "my-data.json" });
        root.appendChild(a); a.click(); a.remove();
        out.textContent = "Your data was downloaded (my-data.json).";
      }).catch(function (err) { out.textContent = err.message; });
    }
    function erase() {
      if (!window.confirm("Erase the details and chats we hold about you? This cannot be undone.")) return;
      call("POST", "me/erasure", {}, token || prev).then(function (r) {
        out.textContent = r.detail || r.message || "Your request was received.";
      }).catch(function (err) { out.textContent = err.message; });
    }
    return box;
  }
  function setKnown(k) {
    if (k === undefined) return;
    known = !!k; mine.hidden = !known; put("known", known);
  }

  // --- Messages ------------------------------------------------------------------------------
  var seen = {};
  function note(text, cls) { log.appendChild(el("div", { "class": "m " + (cls || "bot"), text: text })); scroll(); }
  function scroll() { log.scrollTop = log.scrollHeight; }
  function render(messages) {
    (messages || []).forEach(function (m) {
      if (seen[m.id]) return;
      seen[m.id] = 1;
      var pending = m.from === "visitor" && log.querySelector('[data-c="' + cssEsc(m.client_id || "") + '"]');
      var li = el("div", { "class": "m " + m.from, "data-id": String(m.id) });
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
      var label = a.type === "handoff" && !cfg.live_agents ? LEAVE_MESSAGE : a.label;
      actionsBox.appendChild(el("button", { type: "button", "data-t": a.type, text: label, onclick: function () { act(a, m); } }));
    });
  }

  function act(a, m) {
    actionsBox.textContent = "";
    if (a.type === "handoff") handoff();
    else if (a.type === "helpful") call("POST", conv("feedback/"), { message_id: m.id, helpful: !!a.value }).then(function (r) { render(r.messages); if (a.value) note("Glad I could help!"); });
    else if (a.type === "confirm") send(a.text || a.label);
    else if (a.type === "identify") { consentLine(); show(idForm); }
    else if (a.type === "callback") promise(a, "callback/", { due_at: a.due_at });
    else if (a.type === "follow_up") promise(a, "follow-up/", { via: a.via });
  }
  // A callback or an email instead of waiting; without contact details (400) the form opens, and
  // the request is made again once they are saved.
  var pendingPromise = null;
  function promise(a, path, body) {
    call("POST", conv(path), body).then(function (r) { render(r.messages); }).catch(function (err) {
      note(err.message, "err");
      if (err.status === 400) { pendingPromise = a; consentLine(); show(idForm); }
    });
  }
  function retryPromise() {
    var a = pendingPromise;
    pendingPromise = null;
    if (a) act(a, {});
  }

  function handoff() {
    ensure().then(function () { return call("POST", conv("handoff/")); }).then(function (r) { render(r.messages); setStatus(r.status); })
      .catch(function (err) { note(err.message, "err"); });
  }

  // Honest about who is there: "Online" only when a person can answer live (config live_agents),
  // else "We reply by email" and "Talk to a person" reads "Leave a message".
  var LEAVE_MESSAGE = "Leave a message / request a callback";
  var shownStatus = "bot", shownAgent = "";
  function setStatus(s, agent) {
    shownStatus = s; shownAgent = agent;
    var live = !!cfg.live_agents;
    statusLine.textContent = s === "human" ? (agent ? agent + " is here" : "With a person") : s === "waiting" && live ? "Waiting for a person…" : live ? "Online" : "We reply by email";
    personBtn.textContent = live ? "Talk to a person" : "Leave a message";
    personBtn.setAttribute("aria-label", live ? "Talk to a person" : LEAVE_MESSAGE);
    Array.prototype.forEach.call(actionsBox.querySelectorAll('[data-t="handoff"]'), function (b) { b.textContent = live ? "Talk to a person" : LEAVE_MESSAGE; });
    offerAfterWait(s);
  }
  // Waiting for a person and nobody has answered after the site's callback_offer_after_s: offer a
  // callback or an email instead of waiting unseen (the server picks the time).
  var waitTimer = null;
  function offerAfterWait(s) {
    if (s !== "waiting") { clearTimeout(waitTimer); waitTimer = null; return; }
    if (waitTimer) return;
    waitTimer = setTimeout(function () {
      if (shownStatus !== "waiting" || actionsBox.querySelector('[data-t="follow_up"],[data-t="callback"]')) return;
      note("Sorry for the wait. Rather not wait? We can call you back or email you.");
      showActions({ from: "bot", actions: [
        { type: "follow_up", via: "phone", label: "Call me back" }, { type: "follow_up", via: "email", label: "Email me instead" }
      ] });
    }, (cfg.callback_offer_after_s || 120) * 1000);
  }
  // Who is on duty changes during the day: ask again when the visitor opens the chat.
  function refreshLive() {
    call("GET", "config/", null, token || prev).then(function (c) {
      cfg.live_agents = c.live_agents; cfg.usual_wait = c.usual_wait; cfg.callback_offer_after_s = c.callback_offer_after_s;
      setStatus(shownStatus, shownAgent);
    }).catch(function () { /* keep what we had */ });
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
    log.appendChild(el("div", { "class": "m visitor pending", "data-c": item.client_id, text: text }));
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
    }, prev).then(function (r) {
      token = r.token; vid = r.visitor_id; put("token", token); put("vid", vid);
      render(r.messages); setStatus(r.status); setKnown(r.identified); setVerified(r.identity_verified); connect();
    }).finally(function () { starting = null; });
    return starting;
  }

  var sock = null, wsRetry = 1000;
  function connect() {
    if (!token || (sock && sock.readyState < 2)) return;
    var mine = token;
    sock = new WebSocket(WS);
    // The token goes in the first frame, not the URL (URLs end up in server logs).
    sock.onopen = function () { sock.send(JSON.stringify({ type: "auth", token: mine })); };
    sock.onmessage = function (e) {
      var d = JSON.parse(e.data);
      if (d.type === "ready") { wsRetry = 1000; resync(); }
      else if (d.type === "message") { if (d.message.from === "agent") typing.hidden = true; render([d.message]); }
      else if (d.type === "typing") showTyping(d.agent);
      else if (d.type === "status") setStatus(d.status, d.agent);
    };
    sock.onclose = function () {
      if (token !== mine) return;
      setTimeout(connect, wsRetry); wsRetry = Math.min(wsRetry * 2, 30000);
    };
  }
  // Typing: the agent's shown for a few seconds; the visitor's sent at most every 2 s (no text).
  var typingTimer = null, typingSent = 0;
  function showTyping(agent) {
    typing.textContent = (agent || "Someone from our team") + " is typing…";
    typing.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typing.hidden = true; }, 4000);
  }
  input.addEventListener("input", function () {
    if (!sock || sock.readyState !== 1 || Date.now() - typingSent < 2000 || !input.value) return;
    typingSent = Date.now();
    sock.send(JSON.stringify({ type: "typing" }));
  });
  function resync() {
    if (!token) return;
    call("GET", conv("messages/?after=" + lastId)).then(function (r) { render(r.messages); setStatus(r.status); setKnown(r.identified); setVerified(r.identity_verified); }).catch(function (err) {
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
      refreshLive();
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
    wrap.hidden = true;
    sheet.addEventListener("load", function () { wrap.hidden = false; });
    sheet.addEventListener("error", function () { wrap.hidden = false; });
    document.body.appendChild(host);
    if (token || prev) setKnown(get("known", false));
    call("GET", "config/", null, token || prev).then(function (c) {
      cfg = c;
      title.firstChild.textContent = c.name;
      title.title = c.name;
      input.setAttribute("maxlength", String(c.max_message_chars));
      brand(c.brand_color);
      consentLine();
      setStatus(shownStatus, shownAgent);
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
