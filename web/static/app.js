// pylon-venus web console: live status (server-sent events), history charts (own SVG),
// settings form (from the daemon's schema) and actions. No external resources.
"use strict";
(function () {
  var csrf = null, authenticated = false, live = null, events = null, formData = null;
  var metrics = window.pvMetrics = {firstData: null, events: 0, chartMs: null, settingsLoads: 0};
  var $ = function (id) { return document.getElementById(id); };

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) { node.appendChild(typeof c === "string" ? document.createTextNode(c) : c); });
    return node;
  }
  function known(v) { return v !== null && v !== undefined; }
  // a value with its unit, or "unknown" (never 0 for something not known)
  function show(node, v, unit, digits) {
    node.classList.toggle("unknown", !known(v));
    if (!known(v)) { node.textContent = "unknown"; return; }
    if (typeof v === "number" && digits !== undefined) v = v.toFixed(digits);
    if (typeof v === "boolean") v = v ? "on" : "off";
    node.textContent = v + (unit ? " " + unit : "");
  }
  function text(v, unit, digits) { var s = el("span"); show(s, v, unit, digits); return s; }
  function onOff(id, v) { var n = $(id); show(n, v); n.classList.toggle("on", v === true); n.classList.toggle("off", v === false); }
  function get(obj, path) { return path.split(".").reduce(function (o, k) { return o && known(o[k]) ? o[k] : null; }, obj); }
  function rows(tbody, list) { tbody.textContent = ""; list.forEach(function (r) { tbody.appendChild(el("tr", {}, r.map(function (c) { return typeof c === "string" ? el("td", {}, [c]) : el("td", {class: "num"}, [c]); }))); }); }
  function duration(s) { if (!known(s)) return null; return s < 120 ? s.toFixed(1) + " s" : s < 7200 ? (s / 60).toFixed(0) + " min" : (s / 3600).toFixed(1) + " h"; }
  function message(msg, error, id) {   // the page's message; the settings' also beside their Save button
    [id, "message"].forEach(function (name) {
      var m = name && $(name); if (!m) return;
      m.hidden = !msg; m.textContent = msg || ""; m.className = error ? "error" : "";
    });
  }

  // ---- live status -------------------------------------------------------------------
  var UNITS = {charge_voltage_v: "V", discharge_voltage_v: "V", charge_current_a: "A", discharge_current_a: "A"};
  function render(doc) {
    live = doc;
    var d = doc.decision;
    show($("phase"), d.phase); show($("freshness"), d.freshness);
    show($("source"), d.source); show($("data_age"), duration(d.data_age_s));
    rows($("limits").tBodies[0], d.limits.map(function (l) {
      return [l.name, text(l.value, UNITS[l.field], 1), l.reason === null ? text(null) : l.reason];
    }));
    onOff("charge_enable", d.enables.charge_enable); onOff("discharge_enable", d.enables.discharge_enable);
    var req = d.requests, names = Object.keys(req).filter(function (k) { return req[k]; });
    show($("requests"), Object.keys(req).some(function (k) { return known(req[k]); }) ? (names.length ? names.join(", ") : "none") : null);
    show($("protections"), d.protections === null ? null : (d.protections.length ? d.protections.join(", ") : "none"));
    $("protections").classList.toggle("alarm-text", !!(d.protections && d.protections.length));
    show($("warnings"), d.warnings === null ? null : (d.warnings.length ? d.warnings.join(", ") : "none"));
    $("warnings").classList.toggle("warn-text", !!(d.warnings && d.warnings.length));
    var b = doc.battery || {};
    rows($("battery").tBodies[0], [["voltage", text(b.voltage_v, "V", 2)], ["current", text(b.current_a, "A", 1)],
      ["SoC", text(b.soc_pct, "%", 1)], ["temperature", text(b.temperature_c, "degC", 1)],
      ["lowest cell", text(b.cell_min_v, "V", 3)], ["highest cell", text(b.cell_max_v, "V", 3)],
      ["data age", text(duration(b.age_s))], ["monitor", text(b.service)]]);
    var inv = doc.inverter || {};
    show($("link"), inv.link); show($("last_seen"), duration(inv.last_seen_age_s));
    rows($("inverter_values").tBodies[0], Object.keys(inv.values || {}).map(function (k) { return [k, text(inv.values[k])]; }));
    show($("role"), doc.role);
    var sb = doc.standby, peer = sb && sb.peer;
    show($("standby"), !sb ? null : !sb.enabled ? "hot standby off" : "node " + sb.node_id + "; peer " + (peer
      ? "node " + (known(peer.node_id) ? peer.node_id : "?") + " " + peer.role + ", heard " + duration(peer.last_seen_age_s) + " ago"
      : "none heard"));
    var failsafe = doc.failsafe ? doc.failsafe.engaged : null;
    show($("failsafe"), failsafe === null ? null : (failsafe ? "ENGAGED" : "standing by"));
    $("failsafe").classList.toggle("off", failsafe === true);
    show($("can"), doc.can ? [doc.can.interface, doc.can.channel, doc.can.state].join(" ") : null);
    var workers = doc.workers || {};
    rows($("workers").tBodies[0], Object.keys(workers).map(function (n) {
      var w = workers[n];
      return [n, w.state, text(w.pid), text(w.restarts), text(duration(w.last_heartbeat_age_s)),
        text(known(w.rss_bytes) ? w.rss_bytes / 1048576 : null, "MiB", 1), text(w.cpu_percent, "%", 1)];
    }));
    rows($("frames").tBodies[0], (doc.frames || []).map(function (f) {
      return [f.id, f.data, f.error ? "error: " + f.error : f.name + " " + JSON.stringify(f.fields)];
    }));
    show($("version"), doc.version); show($("uptime"), duration(doc.uptime_s));
    show($("manual_force"), doc.manual.force_charge ? "requested" : "off");
    var list = $("actions"); list.textContent = "";
    doc.manual.actions.slice().reverse().forEach(function (a) { list.appendChild(el("li", {}, [new Date(a.t * 1000).toLocaleString() + ": " + a.what + " (" + a.who + ")"])); });
    var box = $("restart_buttons"); box.textContent = "";
    Object.keys(workers).forEach(function (n) {
      var w = workers[n], button = el("button", {type: "button", "data-worker": n}, ["restart " + n + " (" + w.state + ")"]);
      button.disabled = !(w.state === "fault" || w.state === "backoff");
      button.addEventListener("click", function () { act("restart_worker", n); });
      box.appendChild(button);
    });
    var status = $("connection");
    status.textContent = doc.status_stale ? "live, status file old" : "live"; status.className = "badge " + (doc.status_stale ? "lost" : "live");
  }

  function connect() {
    if (events) events.close();
    events = new EventSource("/api/events");
    var lost = false;
    events.onopen = function () { if (lost) refreshSession(); lost = false; };   // a new console: a new login
    events.onmessage = function (e) {
      metrics.events += 1;
      if (metrics.firstData === null) metrics.firstData = performance.now();
      render(JSON.parse(e.data));
    };
    events.onerror = function () {
      lost = true;
      var status = $("connection"); status.textContent = "reconnecting"; status.className = "badge lost";
      if (events.readyState === EventSource.CLOSED) {   // refused (a login needed) or not a stream: ask again later
        events = null;
        setTimeout(refreshSession, 2000);
      }
    };
  }

  // ---- requests ----------------------------------------------------------------------
  function request(method, url, body, retried) {
    var headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (csrf) headers["X-CSRF-Token"] = csrf;
    return fetch(url, {method: method, headers: headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)}).then(function (r) {
      var type = r.headers.get("Content-Type") || "";
      if (type.indexOf("application/json") !== 0) return r.blob().then(function (blob) { return {status: r.status, blob: blob, doc: {}}; });
      return r.json().then(function (doc) { return {status: r.status, doc: doc}; });
    }, function (error) {   // no answer (the console restarting, a dropped connection): a read is tried once more
      if (method !== "GET" || retried) { message("no answer from the console: " + error, true); throw error; }
      return new Promise(function (done) { setTimeout(done, 500); }).then(function () { return request(method, url, body, true); });
    });
  }
  function refreshSession() {
    return request("GET", "/api/session").then(function (r) {
      authenticated = r.doc.authenticated; csrf = r.doc.csrf;
      $("login").hidden = authenticated || !r.doc.password_set;
      $("session").hidden = !authenticated;
      $("nopassword").hidden = r.doc.password_set;
      if (!r.doc.read_open && !authenticated) message("log in to see the status", true);
      else if (!events) connect();
    });
  }
  $("login").addEventListener("submit", function (e) {
    e.preventDefault();
    request("POST", "/api/login", {password: $("password").value}).then(function (r) {
      $("password").value = "";
      if (r.status !== 200) { message(r.doc.error || "login failed", true); return; }
      message("logged in"); csrf = r.doc.csrf; refreshSession(); connect();
    });
  });
  $("logout").addEventListener("click", function () {
    request("POST", "/api/logout").then(function () { csrf = null; refreshSession(); message("logged out"); });
  });

  // ---- actions -----------------------------------------------------------------------
  function act(action, worker) {
    var what = {full_charge: "Request a full charge now?", force_charge_start: "Start a force charge (until stopped)?",
      force_charge_stop: "Stop the force charge?", restart_worker: "Restart worker " + worker + "?"}[action];
    if (!window.confirm(what)) return;
    var body = {action: action, confirm: true};
    if (worker) body.worker = worker;
    request("POST", "/api/action", body).then(function (r) {
      message(r.status === 200 ? "done: " + r.doc.done : r.doc.error, r.status !== 200);
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-action]"), function (b) {
    b.addEventListener("click", function () { act(b.getAttribute("data-action")); });
  });
  $("diagnostics").addEventListener("click", function () {
    if (!window.confirm("Download a diagnostics bundle (takes a few seconds)?")) return;
    request("POST", "/api/diagnostics", {confirm: true}).then(function (r) {
      if (r.status !== 200) { message(r.doc.error, true); return; }
      var a = el("a", {href: URL.createObjectURL(r.blob), download: "pylon-venus-diagnostics.tar.gz"});
      document.body.appendChild(a); a.click(); a.remove(); message("diagnostics bundle downloaded");
    });
  });

  // ---- settings ----------------------------------------------------------------------
  function loadSettings() {
    request("GET", "/api/settings").then(function (r) {
      if (r.status !== 200) { message(r.doc.error, true); return; }
      formData = r.doc; $("settings_where").textContent = r.doc.where;
      var box = $("settings_fields"); box.textContent = "";
      var section = null;
      r.doc.settings.forEach(function (s) {
        if (s.section !== section) { section = s.section; box.appendChild(el("h3", {}, ["[" + section + "]"])); }
        var input = el("input", {id: "setting-" + s.key, name: s.key, type: "number", step: "any", value: String(s.value),
          min: String(s.min), max: String(s.max), "data-value": String(s.value)});
        input.addEventListener("input", function () { input.parentNode.classList.toggle("changed", input.value !== input.getAttribute("data-value")); });
        box.appendChild(el("div", {class: "field", id: "field-" + s.key}, [el("label", {for: "setting-" + s.key}, [s.key]), input,
          el("span", {}, [s.unit]), el("span", {class: "help"}, [s.help + " (" + s.allowed + "; default " + s.default + ")"])]));
      });
      metrics.settingsLoads += 1;
    });
  }
  $("settings").addEventListener("submit", function (e) {
    e.preventDefault();
    var changes = {};
    formData.settings.forEach(function (s) {
      var input = $("setting-" + s.key);
      input.parentNode.classList.remove("invalid");
      if (input.value !== input.getAttribute("data-value")) changes[s.key] = input.value === "" ? null : Number(input.value);
    });
    if (!Object.keys(changes).length) { message("nothing changed", false, "settings_result"); return; }
    request("POST", "/api/settings", changes).then(function (r) {
      if (r.status === 200) { message("saved: " + Object.keys(r.doc.applied).map(function (k) { return k + " = " + r.doc.applied[k]; }).join(", ") + " (" + r.doc.written_to + ")", false, "settings_result"); loadSettings(); return; }
      (r.doc.errors || []).forEach(function (problem) {
        Object.keys(changes).forEach(function (k) { if (problem.indexOf(k) !== -1) $("field-" + k).classList.add("invalid"); });
      });
      message("not saved, nothing changed: " + r.doc.error, true, "settings_result");
    });
  });

  // ---- history (own SVG) -------------------------------------------------------------
  var CHARTS = [["Voltage", "V", [["voltage_v", "#06c"], ["charge_voltage_v", "#c60"]]],
    ["Current", "A", [["current_a", "#06c"], ["charge_current_a", "#c60"], ["-discharge_current_a", "#960"]]],
    ["SoC", "%", [["soc_pct", "#06c"]]], ["Temperature", "degC", [["temperature_c", "#c33"]]]];
  var SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) { var n = document.createElementNS(SVG, tag); Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); }); return n; }
  function value(sample, field) { var neg = field[0] === "-", v = sample[neg ? field.slice(1) : field]; return known(v) ? (neg ? -v : v) : null; }
  function drawHistory(doc) {
    var started = performance.now(), box = $("charts"), samples = doc.samples;
    show($("history_interval"), doc.interval_s);
    box.textContent = "";
    if (!samples.length) { box.appendChild(el("p", {class: "hint"}, ["no samples yet"])); return; }
    // the axis spans the samples there are, at most the last 24 h
    var t1 = samples[samples.length - 1].t, t0 = Math.max(samples[0].t, t1 - 86400), span = Math.max(t1 - t0, 1);
    var W = 1000, H = 140, band = 10;
    var x = function (t) { return ((t - t0) / span * W).toFixed(1); };
    CHARTS.forEach(function (c) {
      var all = [];
      samples.forEach(function (s) { c[2].forEach(function (f) { var v = value(s, f[0]); if (v !== null) all.push(v); }); });
      var lo = all.length ? Math.min.apply(null, all) : 0, hi = all.length ? Math.max.apply(null, all) : 1;
      if (hi - lo < 1e-6) { lo -= 1; hi += 1; }
      var y = function (v) { return (band + 4 + (hi - v) / (hi - lo) * (H - 2 * band - 8)).toFixed(1); };
      var chart = svg("svg", {viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": c[0]});
      // phase band at the bottom, alarm marks at the top: one rectangle per run of equal samples
      var runs = function (key, draw) {
        var start = 0;
        samples.forEach(function (s, i) {
          var last = i + 1 === samples.length;
          if (!last && key(samples[i + 1]) === key(s)) return;
          var end = last ? s.t + doc.interval_s : samples[i + 1].t, first = samples[start];
          if (key(first)) draw(key(first), x(first.t), Math.max(0.5, (end - first.t) / span * W).toFixed(1));
          start = i + 1;
        });
      };
      runs(function (s) { return s.phase; }, function (phase, left, w) {
        chart.appendChild(svg("rect", {x: left, y: H - band, width: w, height: band, class: phase}));
      });
      runs(function (s) { return s.protections ? "#c62828" : s.warnings ? "#b26a00" : null; }, function (color, left, w) {
        chart.appendChild(svg("rect", {x: left, y: 0, width: w, height: band, fill: color}));
      });
      c[2].forEach(function (f) {
        var points = [];
        var flush = function () { if (points.length) chart.appendChild(svg("polyline", {points: points.join(" "), stroke: f[1]})); points = []; };
        samples.forEach(function (s) { var v = value(s, f[0]); if (v === null) flush(); else points.push(x(s.t) + "," + y(v)); });
        flush();
      });
      var legend = c[2].map(function (f) { return f[0]; }).join(", ");
      box.appendChild(el("div", {class: "chart"}, [el("h3", {}, [c[0] + " (" + c[1] + ") " + lo.toFixed(1) + " to " + hi.toFixed(1) + ": " + legend]), chart]));
    });
    box.appendChild(el("p", {class: "hint"}, [new Date(t0 * 1000).toLocaleString() + " to " + new Date(t1 * 1000).toLocaleString() + ", " + samples.length + " samples"]));
    metrics.chartMs = performance.now() - started;
  }
  window.pvDrawHistory = drawHistory;     // for the tests' measurement of a full day
  function loadHistory() { request("GET", "/api/history").then(function (r) { if (r.status === 200) drawHistory(r.doc); else message(r.doc.error, true); }); }

  // ---- views -------------------------------------------------------------------------
  var timer = null;
  Array.prototype.forEach.call(document.querySelectorAll("nav button"), function (b) {
    b.addEventListener("click", function () {
      var name = b.getAttribute("data-view");
      Array.prototype.forEach.call(document.querySelectorAll("nav button"), function (o) { o.classList.toggle("active", o === b); });
      ["status", "history", "settings", "actions"].forEach(function (v) { $("view-" + v).hidden = v !== name; });
      clearInterval(timer);
      if (name === "history") { loadHistory(); timer = setInterval(loadHistory, 60000); }
      if (name === "settings") loadSettings();
    });
  });
  connect();            // the live data first, while the session is asked for
  refreshSession();
})();
