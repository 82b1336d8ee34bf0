// Staff alerts: every signed-in staff page holds ONE websocket (/ws/staff/) that says "a visitor is
// waiting" the moment it happens. Frames carry only ids: on each one (and on every (re)connect) the
// page reads the waiting list it may see over HTTP, then shows the nav badge, the count in the tab
// title, the waiting strip, and (opted in) a beep and a desktop notification for newly waiting
// visitors. Reconnects with backoff; while the socket is down the live lists poll slowly instead.
// Visitor-typed text is only ever set with textContent. Docs: docs/chat.md#alerts.
(function () {
  "use strict";
  var root = document.getElementById("staff-alerts");
  if (!root || !window.WebSocket) return;

  var wsPath = root.dataset.ws;
  var waitingUrl = root.dataset.waitingUrl;
  var baseTitle = document.title.replace(/^\(\d+\)\s+/, "");
  var badge = document.querySelector("[data-waiting-count]");
  var announcer = document.querySelector("[data-alert-announce]");
  var prefs = { sound: root.dataset.sound === "1", desktop: root.dataset.desktop === "1" };
  var known = null;        // conversation ids seen waiting; null until the first list is read
  var socket = null;
  var retry = 1000;
  var stopped = false;
  var fetchTimer = null;
  var lastList = [];

  window.leadcrmStaffAlerts = { connected: false };

  // --- The waiting list -------------------------------------------------------------------------
  function minutesSince(iso) {
    var ms = Date.now() - new Date(iso).getTime();
    return Math.max(0, Math.floor(ms / 60000));
  }

  function waitedText(iso) {
    var m = minutesSince(iso);
    if (m < 1) return "waiting less than a minute";
    if (m < 60) return "waiting " + m + " min";
    return "waiting " + Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function renderStrip(list) {
    document.querySelectorAll("[data-waiting-strip]").forEach(function (strip) {
      var items = strip.querySelector("[data-waiting-items]");
      var heading = strip.querySelector("[data-waiting-heading]");
      if (!items) return;
      items.replaceChildren();
      list.forEach(function (w) {
        var li = document.createElement("li");
        li.className = "waiting-item";
        li.dataset.conversation = w.conversation;
        var name = document.createElement("strong");
        name.textContent = w.name;
        var meta = document.createElement("span");
        meta.className = "muted";
        meta.dataset.since = w.since;
        meta.textContent = " · " + w.site + " · " + waitedText(w.since) + (w.for_you ? " · for you" : "");
        var join = document.createElement("a");
        join.className = "button primary";
        join.href = w.url;
        join.textContent = "Join";
        join.setAttribute("aria-label", "Join the chat with " + w.name);
        li.append(name, meta, " ", join);
        items.appendChild(li);
      });
      if (heading) heading.textContent = list.length === 1 ? "1 visitor is waiting for a person" : list.length + " visitors are waiting for a person";
      strip.hidden = list.length === 0;
    });
  }

  function render(list) {
    lastList = list;
    var n = list.length;
    document.title = n ? "(" + n + ") " + baseTitle : baseTitle;
    if (badge) {
      badge.textContent = String(n);
      badge.hidden = n === 0;
      badge.setAttribute("aria-label", n === 1 ? "1 visitor waiting" : n + " visitors waiting");
    }
    renderStrip(list);
    document.documentElement.dataset.waiting = String(n);
  }

  function fresh(list) {
    if (known === null) return [];
    return list.filter(function (w) { return !known.has(w.conversation); });
  }

  function readWaiting() {
    fetchTimer = null;
    return fetch(waitingUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        prefs.sound = d.sound; prefs.desktop = d.desktop;
        var arrived = fresh(d.waiting);
        known = new Set(d.waiting.map(function (w) { return w.conversation; }));
        render(d.waiting);
        if (arrived.length) alertFor(arrived);
      })
      .catch(function () {});
  }

  function scheduleRead() {
    if (!fetchTimer) fetchTimer = setTimeout(readWaiting, 50);  // a burst of frames: one read
  }

  // --- Sound and desktop notification (opt-in) --------------------------------------------------
  var audio = null;
  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      if (audio.state === "suspended") audio.resume();
      var t = audio.currentTime;
      [0, 0.22].forEach(function (offset) {
        var osc = audio.createOscillator();
        var gain = audio.createGain();
        osc.type = "sine";
        osc.frequency.value = 880;
        gain.gain.setValueAtTime(0.0001, t + offset);
        gain.gain.exponentialRampToValueAtTime(0.2, t + offset + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, t + offset + 0.18);
        osc.connect(gain).connect(audio.destination);
        osc.start(t + offset);
        osc.stop(t + offset + 0.2);
      });
    } catch (e) { /* no audio here: the badge and title still show */ }
  }

  // Several tabs of the same person: only the first to see a newly waiting visitor beeps.
  function claim(conversation) {
    try {
      var key = "leadcrm-alerted-" + conversation;
      var at = +localStorage.getItem(key) || 0;
      if (Date.now() - at < 60000) return false;
      localStorage.setItem(key, String(Date.now()));
    } catch (e) { /* storage refused: every tab alerts */ }
    return true;
  }

  function alertFor(arrived) {
    var first = arrived[0];
    var text = arrived.length === 1 ? first.name + " is waiting for a person (" + first.site + ")"
      : arrived.length + " visitors are waiting for a person";
    if (announcer) announcer.textContent = text;
    var mine = arrived.filter(function (w) { return claim(w.conversation); });
    if (!mine.length) return;
    if (prefs.sound) beep();
    if (prefs.desktop && window.Notification && Notification.permission === "granted") {
      try {
        var note = new Notification("A visitor is waiting", { body: text, tag: "leadcrm-waiting-" + first.conversation });
        note.onclick = function () { window.focus(); location.href = first.url; };
      } catch (e) { /* notifications refused by the browser */ }
    }
  }

  // --- The socket ---------------------------------------------------------------------------------
  // The queue (a heavier page) refreshes at most every 5 s however busy the websites are.
  var queueAt = 0, queueTimer = null;
  function refreshQueue() {
    queueTimer = null;
    queueAt = Date.now();
    if (window.htmx && document.getElementById("queue-table")) window.htmx.trigger(document.body, "queue-changed");
  }
  function chatsChanged() {
    document.body.dispatchEvent(new CustomEvent("chats-changed", { bubbles: true }));
    if (!queueTimer) queueTimer = setTimeout(refreshQueue, Math.max(0, 5000 - (Date.now() - queueAt)));
  }
  var changedTimer = null;
  function scheduleChanged() {
    if (!changedTimer) changedTimer = setTimeout(function () { changedTimer = null; chatsChanged(); }, 300);
  }

  function connect() {
    if (stopped) return;
    socket = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + wsPath);
    socket.onopen = function () {
      retry = 1000;
      window.leadcrmStaffAlerts.connected = true;
      root.dataset.connected = "1";
      readWaiting();  // whatever happened while disconnected
      chatsChanged();
    };
    socket.onmessage = function (e) {
      var d;
      try { d = JSON.parse(e.data); } catch (err) { return; }
      window.leadcrmStaffAlerts.last = { kind: d.kind || d.type, at: Date.now() };
      scheduleRead();
      if (d.type === "inbox" || (d.kind && d.kind.indexOf("chat.") === 0)) scheduleChanged();
    };
    socket.onclose = function (e) {
      window.leadcrmStaffAlerts.connected = false;
      root.dataset.connected = "0";
      if (e.code === 4403) { stopped = true; return; }  // signed out or no role: no alerts
      var wait = retry + Math.random() * 500;
      retry = Math.min(retry * 2, 30000);
      setTimeout(connect, wait);
    };
  }

  // While the socket is up, the live lists' polls are skipped (the socket refreshes them); while it
  // is down they poll, slowly, as the fallback. Polls carry no triggering event.
  document.addEventListener("htmx:confirm", function (event) {
    if (event.target.id === "inbox-list" && !event.detail.triggeringEvent && window.leadcrmStaffAlerts.connected) {
      event.preventDefault();
    }
  });

  // --- Alert preferences (nav menu): saved as they change; desktop asks the browser first ------
  var form = document.querySelector("[data-alert-prefs]");
  function savePrefs() {
    var body = new FormData(form);
    return fetch(form.action, { method: "POST", body: body, credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        var status = form.querySelector("[data-prefs-status]");
        if (d) { prefs.sound = d.sound; prefs.desktop = d.desktop; }
        if (status) status.textContent = d ? "Saved." : "Could not save; try again.";
      });
  }
  if (form) {
    var save = form.querySelector("[data-prefs-save]");
    if (save) save.hidden = true;
    form.addEventListener("change", function (event) {
      var box = event.target;
      var status = form.querySelector("[data-prefs-status]");
      if (box.name === "alert_sound" && box.checked) beep();  // a sample, and unlocks audio
      if (box.name === "alert_desktop" && box.checked && window.Notification && Notification.permission !== "granted") {
        Notification.requestPermission().then(function (permission) {
          if (permission !== "granted") {
            box.checked = false;
            if (status) status.textContent = "The browser blocked notifications for this site; allow them in its settings.";
            return;
          }
          savePrefs();
        });
        return;
      }
      savePrefs();
    });
  }

  setInterval(function () { if (lastList.length) renderStrip(lastList); }, 30000);  // "waiting N min"
  connect();
})();
