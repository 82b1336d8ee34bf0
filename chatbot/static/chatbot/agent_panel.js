/* Agent panel: streams a lead's chat over a websocket. Visitor text is only ever set with
   textContent. Safe to load many times (htmx re-runs the script on every panel swap). */
(function () {
  "use strict";
  var LABELS = { visitor: "Visitor", bot: "Bot", agent: "Agent" };

  function init(panel) {
    if (panel._chatInit) return;
    panel._chatInit = true;
    var log = panel.querySelector("[data-role=transcript]");
    var nowOn = panel.querySelector("[data-role=now-on]");
    var conversation = panel.dataset.conversation;
    var lastId = 0;
    var retry = 500;
    var socket = null;
    var typingSent = 0;
    var typingTimer = null;
    var typing = panel.querySelector("[data-role=typing]");
    function showTyping() {
      if (!typing) return;
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.hidden = true; }, 4000);
    }
    if (log) log.querySelectorAll("li[data-id]").forEach(function (li) { lastId = Math.max(lastId, +li.dataset.id); });

    function attached() { return document.body.contains(panel); }
    function reload() {
      if (window.htmx && attached()) window.htmx.ajax("GET", panel.dataset.panelUrl, { target: panel, swap: "outerHTML" });
    }
    function add(m) {
      if (!log || log.querySelector('li[data-id="' + m.id + '"]')) return;
      var empty = log.querySelector("[data-role=empty]");
      if (empty) empty.remove();
      var li = document.createElement("li");
      li.className = "msg msg-" + m.from;
      li.dataset.id = m.id;
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = m.from === "agent" && m.agent ? m.agent : LABELS[m.from] || m.from;
      var text = document.createElement("span");
      text.className = "text";
      text.textContent = m.text;
      li.append(who, " ", text);
      log.appendChild(li);
      lastId = Math.max(lastId, m.id);
      log.scrollTop = log.scrollHeight;
    }
    function catchUp() {
      if (!panel.dataset.messagesUrl) return;
      fetch(panel.dataset.messagesUrl + "?after=" + lastId, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (d) { if (d) d.messages.forEach(add); })
        .catch(function () {});
    }
    function connect() {
      if (!attached()) return;
      var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + panel.dataset.ws);
      ws.onopen = function () { retry = 500; catchUp(); };
      ws.onmessage = function (e) {
        if (!attached()) { ws.close(); return; }
        var d = JSON.parse(e.data);
        if (d.type === "message") {
          if (d.message.from === "visitor" && typing) typing.hidden = true;
          if (String(d.conversation) === String(conversation)) add(d.message); else reload();
        } else if (d.type === "typing" && String(d.conversation) === String(conversation)) {
          showTyping();
        } else if (d.type === "page" && nowOn) {
          nowOn.textContent = (d.title || d.url) + " (" + d.url + ")";
        } else if (d.type === "status" && String(d.conversation) !== String(conversation)) {
          reload();
        }
      };
      socket = ws;
      ws.onclose = function () {
        if (!attached()) return;
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 10000);
      };
    }
    connect();
    panel.addEventListener("htmx:afterRequest", catchUp);
    // The agent is typing: at most one frame every 2 s (the server throttles too); no text is sent.
    panel.addEventListener("input", function (e) {
      if (!e.target.matches || !e.target.matches("textarea[name=text]") || !conversation) return;
      if (!socket || socket.readyState !== 1 || Date.now() - typingSent < 2000 || !e.target.value) return;
      typingSent = Date.now();
      socket.send(JSON.stringify({ type: "typing", conversation: +conversation }));
    });
    log && (log.scrollTop = log.scrollHeight);
  }

  function scan(root) {
    if (root.matches && root.matches("[data-chat-panel]")) init(root);
    if (root.querySelectorAll) root.querySelectorAll("[data-chat-panel]").forEach(init);
  }
  scan(document);
  if (!window.__leadcrmChatPanel) {
    window.__leadcrmChatPanel = true;
    document.addEventListener("htmx:load", function (e) { scan(e.detail.elt); });
  }
})();
