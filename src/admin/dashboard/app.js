// sorcha-peer dashboard: plain JavaScript, no dependencies. Reads the node's admin API with
// the token kept in sessionStorage (sent as "Authorization: Bearer", never as a cookie or in a
// URL) and follows GET /api/events with fetch, so the token travels in a header there too.
"use strict";

const TOKEN_KEY = "sorcha-peer-token";
const REFRESH_MS = 2000;
const HISTORY = 90;        // samples kept per chart
const MAX_LOG = 300;       // event lines kept on the page

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let peers = [];
let sort = { key: "state", dir: 1 };
let lastEventSeq = 0;
const series = { peers: [], latency: [], tps: [], sync: [] };
const sampledAt = [];       // when each sample was taken (ms), for the charts' time axis

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// `kind`: true or "error" for a failure, "ok" for an action that succeeded.
function notice(text, kind) {
  const n = $("#notice");
  n.textContent = text || "";
  n.hidden = !text;
  n.classList.toggle("error", kind === true || kind === "error");
  n.classList.toggle("ok", kind === "ok");
}

// Every change needs a token: without one, the controls that make changes are disabled (and
// say why) rather than failing with an API error.
function gate() {
  $("#write-hint").hidden = !!token;
  for (const c of document.querySelectorAll("[data-write]")) {
    c.disabled = !token;
    if (!token) c.title = "needs a token (enter it above)";
    else c.removeAttribute("title");
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!res.ok) {
    const message = (data && data.error) || res.status + " " + res.statusText;
    const err = new Error(message);
    err.status = res.status;
    throw err;
  }
  return data;
}

// Runs an action; says it succeeded with `done(result)`, or why it failed.
async function act(what, fn, done) {
  try {
    const result = await fn();
    notice(done ? done(result) : what + " done.", "ok");
    await refresh();
  } catch (e) {
    notice(what + " failed: " + e.message + (e.status === 401 || e.status === 403 ? " (enter a token with the rights for it)" : ""), true);
  }
}

// ----- formatting -----------------------------------------------------------------------

function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
function short(id) { return id && id.length > 12 ? id.slice(0, 12) + "…" : id; }
function ms(v) { return v === null || v === undefined ? "-" : v < 10 ? v.toFixed(2) + " ms" : v.toFixed(0) + " ms"; }
function duration(s) {
  if (s === null || s === undefined) return "until unbanned";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  if (s < 86400) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}
function ago(iso) {
  if (!iso) return "-";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  return s < 5 ? "just now" : duration(s) + " ago";
}

// ----- rendering --------------------------------------------------------------------------

function renderNode(status, health) {
  $("#node-name").textContent = (status.name ? status.name + " · " : "") + short(status.peerId);
  const facts = [
    ["Peer ID", status.peerId],
    ["Version", status.version],
    ["Uptime", duration(status.uptimeSeconds)],
    // /api/health answers 503 while unhealthy (then `health` is null): storage comes from status.
    ["Health", health ? health.status + ((health.warnings || []).length ? " · " + health.warnings.join("; ") : "") : (status.storageHealth === "failing" ? "unhealthy" : "-")],
    ["Storage", (status.storageHealth === "failing" ? "failing: " + (status.storageError || "") : "ok") + " (" + status.storage + ")"],
    ["Listen", status.listen],
    ["Announced", status.announcedAddress || status.advertisedAddress || "-"],
    ["Reachability", status.reachability ? status.reachability + (status.addressSource ? " (" + status.addressSource + ")" : "") : "-"],
    ["Transport", status.peerTls === "off" ? "plaintext (peer_tls = off)" : "TLS 1.3 (peer_tls = " + status.peerTls + ")" + (status.peerCertificateWarning ? " · " + status.peerCertificateWarning : "") + (status.revocationListProblem ? " · " + status.revocationListProblem : "")],
    ["Peers", status.peers.connected + " connected, " + status.peers.known + " known, " + plural(status.bans, "ban")],
  ];
  $("#node-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// The same list as `sorcha-peer doctor`.
function renderDoctor(report) {
  if (!report) return;
  $("#doctor-status").textContent = "(" + report.status + ")";
  $("#doctor-list").replaceChildren(...report.findings.map((f) => el("li", { class: f.verdict, "data-item": f.item },
    el("span", { class: "v" }, f.verdict), " ", el("b", {}, f.item), ": ", f.detail,
    f.fix ? el("div", { class: "small-text" }, "fix: " + f.fix) : null)));
}

function cmp(a, b) {
  const x = a[sort.key], y = b[sort.key];
  if (x === y) return a.peerId < b.peerId ? -1 : 1;
  if (x === null || x === undefined) return 1;
  if (y === null || y === undefined) return -1;
  return (x < y ? -1 : 1) * sort.dir;
}

function renderPeers() {
  const filter = $("#peer-filter").value.trim().toLowerCase();
  const shown = peers.filter((p) => !filter || [p.peerId, p.name, p.endpoint, p.state, ...p.advertisedRegisters.map((r) => r.registerId)]
    .some((v) => v && v.toLowerCase().includes(filter))).sort(cmp);
  $("#peer-count").textContent = shown.length + " of " + peers.length;
  for (const th of document.querySelectorAll("#peer-table th[data-sort]")) {
    th.classList.toggle("asc", th.dataset.sort === sort.key && sort.dir === 1);
    th.classList.toggle("desc", th.dataset.sort === sort.key && sort.dir === -1);
  }
  const rows = shown.map((p) => {
    const q = p.qualityComponents;
    const penalty = q.lastPenalty ? q.lastPenalty.reason + " (" + ago(q.lastPenalty.at) + ")" : "-";
    const actions = [];
    const who = p.name || short(p.peerId);
    if (p.isBanned) actions.push(el("button", { class: "small secondary", "data-write": true, "data-unban": p.peerId, onclick: () => act("Unban", () => api("DELETE", "/api/bans/" + encodeURIComponent(p.peerId)), () => "Unbanned " + who + ".") }, "Unban"));
    else actions.push(el("button", { class: "small danger", "data-write": true, "data-ban": p.peerId, onclick: () => { $("#ban-target").value = p.peerId; $("#ban-reason").focus(); } }, "Ban…"));
    if (p.state === "connected") actions.push(el("button", { class: "small secondary", "data-write": true, "data-disconnect": p.peerId, onclick: () => act("Disconnect", () => api("POST", "/api/peers/" + encodeURIComponent(p.peerId) + "/disconnect"), () => "Disconnected " + who + " (not banned: it may connect again).") }, "Disconnect"));
    actions.push(el("button", { class: "small secondary", "data-write": true, "data-reset": p.peerId, onclick: () => act("Reset", () => api("POST", "/api/peers/" + encodeURIComponent(p.peerId) + "/reset"), () => "Reset the quality record of " + who + ".") }, "Reset"));
    return el("tr", { "data-peer": p.peerId },
      el("td", { class: "id", "data-label": "Peer", title: p.peerId }, p.name ? p.name + " · " : "", short(p.peerId)),
      el("td", { "data-label": "Address" }, p.endpoint),
      el("td", { "data-label": "State", class: "state-" + p.state }, p.state, p.isBanned && p.banReason ? el("div", { class: "small-text" }, p.banReason) : null),
      el("td", { "data-label": "Latency" }, ms(p.latency ? p.latency.averageMs : null)),
      el("td", { "data-label": "Quality" }, p.qualityScore.toFixed(0) + " " + p.qualityRating),
      el("td", { "data-label": "Components", class: "small-text" },
        "success " + q.successPoints.toFixed(1) + " · latency " + q.latencyPoints.toFixed(1) + " · validity " + q.validityPoints.toFixed(1)),
      el("td", { "data-label": "Last penalty", class: "small-text" }, penalty),
      el("td", { "data-label": "Registers", class: "small-text" }, p.advertisedRegisters.map((r) => r.registerId + "@" + r.latestDocketVersion).join(", ") || "-"),
      el("td", { "data-label": "Actions", class: "actions" }, actions));
  });
  $("#peer-table tbody").replaceChildren(...rows);
  gate();
}

function renderBans(bans) {
  const rows = bans.map((b) => el("tr", { "data-ban-target": b.target },
    el("td", { class: "id", "data-label": "Target" }, b.target),
    el("td", { "data-label": "Reason" }, b.reason),
    el("td", { "data-label": "Source" }, b.source),
    el("td", { "data-label": "Time left" }, b.expiresAt ? duration(b.remainingSeconds) : "until unbanned"),
    el("td", { "data-label": "" }, el("button", { class: "small secondary", "data-write": true, onclick: () => act("Unban", () => api("DELETE", "/api/bans/" + encodeURIComponent(b.target)), () => "Unbanned " + b.target + ".") }, "Unban"))));
  $("#ban-table tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No bans."))]));
  gate();
}

function renderRegisters(registers, subscriptions, available) {
  const subs = new Map(subscriptions.map((s) => [s.registerId, s]));
  const blocks = registers.map((r) => {
    const s = subs.get(r.registerId);
    const pct = Math.max(0, Math.min(100, r.syncProgressPercent));
    // A subscription in error is not progressing, whatever share of the chain it holds.
    const failing = !!s && (s.syncState === "Error" || !!s.errorMessage);
    return el("div", { class: "register", "data-register": r.registerId },
      el("div", {}, el("b", {}, r.registerId), " ", el("span", { class: "muted" }, r.role + (r.syncState !== r.role ? " · " + r.syncState : "") + " · docket " + r.latestDocketVersion + " · " + r.transactionCount + " tx" + (r.pendingTransactions ? " · " + r.pendingTransactions + " pending" : ""))),
      s ? el("div", { class: failing ? "bar failing" : "bar", title: (failing ? "failing · " : "") + pct.toFixed(1) + "%" }, el("span", { style: "width:" + pct + "%" })) : null,
      s ? el("div", { class: "small-text" }, (failing ? "failing · " : "") + "docket " + (s.lastSyncedDocketVersion ?? "-") + " of " + (s.targetDocketVersion ?? "?") + " (" + pct.toFixed(1) + "%) · last sync " + ago(s.lastSyncAt) + (s.consecutiveFailures ? " · " + s.consecutiveFailures + " failures" : "")) : null,
      s && s.errorMessage ? el("div", { class: "error-text small-text" }, s.errorMessage) : null,
      s ? el("button", { class: "small secondary", "data-write": true, onclick: () => act("Unsubscribe", () => api("DELETE", "/api/registers/" + encodeURIComponent(r.registerId) + "/subscribe"), () => "Unsubscribed from " + r.registerId + ".") }, "Unsubscribe") : null);
  });
  $("#register-list").replaceChildren(...(blocks.length ? blocks : [el("p", { class: "muted" }, "No registers held here.")]));
  const rows = available.map((a) => el("tr", { "data-available": a.registerId },
    el("td", { "data-label": "Register" }, a.registerId),
    el("td", { "data-label": "Peers" }, a.peerCount + " (" + a.fullReplicaPeerCount + " full)"),
    el("td", { "data-label": "Version" }, a.latestVersion),
    el("td", { "data-label": "Here" }, a.localRole || "-"),
    el("td", { class: "actions", "data-label": "" }, a.localRole ? "" : [
      el("select", { "aria-label": "mode", "data-write": true }, el("option", { value: "full-replica" }, "full replica"), el("option", { value: "forward-only" }, "forward only")),
      " ",
      el("button", { class: "small", "data-write": true, onclick: (ev) => {
        const mode = ev.target.parentElement.querySelector("select").value;
        act("Subscribe", () => api("POST", "/api/registers/" + encodeURIComponent(a.registerId) + "/subscribe", { mode }), () => "Subscribed to " + a.registerId + " (" + mode + ").");
      } }, "Subscribe")])));
  $("#available-table tbody").replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "Peers advertise no other register."))]));
  gate();
}

// ----- charts ------------------------------------------------------------------------------

function push(name, value) {
  const s = series[name];
  s.push(value);
  if (s.length > HISTORY) s.shift();
}

function draw(name, canvasId, label, format) {
  const data = series[name];
  const canvas = $(canvasId);
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 300, h = canvas.clientHeight || 70;
  canvas.width = w * ratio; canvas.height = h * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, w, h);
  const values = data.filter((v) => v !== null);
  $(label).textContent = values.length ? format(values[values.length - 1]) : "-";
  if (values.length < 2) return;
  const max = Math.max(1, ...values) * 1.15;
  // Newest sample at the right edge; the first minute spreads over the whole width.
  const span = Math.max(data.length, 30) - 1;
  const offset = span + 1 - data.length;
  const xy = (v, i) => [((i + offset) / span) * w, h - 4 - (v / max) * (h - 8)];
  ctx.fillStyle = "rgba(36, 89, 197, 0.12)"; ctx.strokeStyle = "#2459c5"; ctx.lineWidth = 1.5;
  let start = null, prev = null;
  const path = new Path2D();
  data.forEach((v, i) => {
    if (v === null) { prev = null; return; }
    const [x, y] = xy(v, i);
    if (prev === null) path.moveTo(x, y); else path.lineTo(x, y);
    if (start === null) start = x;
    prev = x;
  });
  ctx.stroke(path);
  if (start !== null && prev !== null) {
    const area = new Path2D(path);
    area.lineTo(prev, h); area.lineTo(start, h); area.closePath();
    ctx.fill(area);
  }
  ctx.fillStyle = "#98a2b3"; ctx.font = "10px system-ui, sans-serif";
  ctx.fillText(format(max / 1.15), 4, 11);
  // Time axis: when the oldest sample shown was taken, and now at the right edge.
  if (sampledAt.length > 1) {
    const oldest = Math.round((Date.now() - sampledAt[0]) / 1000);
    ctx.fillText("-" + duration(oldest), (offset / span) * w + 2, h - 2);
    ctx.textAlign = "right";
    ctx.fillText("now", w - 2, h - 2);
    ctx.textAlign = "left";
  }
}

function sample(status, subscriptions) {
  push("peers", status.peers.connected);
  const lat = peers.filter((p) => p.state === "connected" && p.latency).map((p) => p.latency.averageMs);
  push("latency", lat.length ? lat.reduce((a, b) => a + b, 0) / lat.length : null);
  // Computed on the node over a fixed window (status.rateWindowSeconds), not between polls.
  push("tps", status.transactionsPerSecond === undefined ? null : status.transactionsPerSecond);
  if (status.rateWindowSeconds) $("#w-tps").textContent = "(" + status.rateWindowSeconds + " s window)";
  sampledAt.push(Date.now());
  if (sampledAt.length > HISTORY) sampledAt.shift();
  push("sync", subscriptions.length ? subscriptions.reduce((a, s) => a + s.syncProgressPercent, 0) / subscriptions.length : null);
  draw("peers", "#c-peers", "#v-peers", (v) => v.toFixed(0));
  draw("latency", "#c-latency", "#v-latency", (v) => v.toFixed(2));
  draw("tps", "#c-tps", "#v-tps", (v) => v.toFixed(1));
  draw("sync", "#c-sync", "#v-sync", (v) => v.toFixed(0));
}

// ----- refresh ------------------------------------------------------------------------------

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [status, health, list, bans, registers, subscriptions, available, doctor] = await Promise.all([
      api("GET", "/api/status"), api("GET", "/api/health").catch(() => null), api("GET", "/api/peers"),
      api("GET", "/api/bans"), api("GET", "/api/registers"), api("GET", "/api/registers/subscriptions"),
      api("GET", "/api/registers/available"), api("GET", "/api/doctor").catch(() => null)]);
    peers = list;
    renderNode(status, health);
    renderDoctor(doctor);
    renderPeers();
    renderBans(bans);
    renderRegisters(registers, subscriptions, available);
    sample(status, subscriptions);
    setConn("live", "ok");
  } catch (e) {
    if (e.status === 401 || e.status === 403) { setConn("token needed", "warn"); notice("Reading this node needs a token: enter the admin token or a JWT above.", true); }
    else setConn("unreachable", "bad");
  } finally {
    refreshing = false;
  }
}

function setConn(text, kind) {
  const b = $("#conn");
  b.textContent = text;
  b.className = "badge " + kind;
}

// ----- events -------------------------------------------------------------------------------

const BAD = new Set(["peerBanned", "peerDisconnected", "verificationFailed", "queuePressure", "storageFailing", "lagged"]);
const GOOD = new Set(["peerConnected", "peerUnbanned", "storageRecovered", "docketReplicated"]);

function summary(e) {
  switch (e.type) {
    case "peerConnected": return short(e.peerId) + " connected (" + e.direction + ", " + e.address + ")";
    case "peerDisconnected": return short(e.peerId) + (e.failed ? " failed: " : " disconnected: ") + e.reason;
    case "peerBanned": return e.target + " banned (" + e.source + (e.expiresAt ? ", until " + e.expiresAt : "") + "): " + e.reason;
    case "peerUnbanned": return e.target + (e.expired ? " ban expired" : " unbanned");
    case "verificationFailed": return short(e.peerId) + " served bad data" + (e.registerId ? " for " + e.registerId : "") + ": " + e.reason;
    case "subscriptionState": return e.registerId + " " + e.state + (e.error ? ": " + e.error : "");
    case "subscriptionProgress": return e.registerId + " docket " + e.height + (e.target !== null ? " of " + e.target + " (" + e.percent + "%)" : "");
    case "docketSealed": return e.registerId + " sealed docket " + e.docketNumber + " (" + e.transactions + " tx)";
    case "docketReplicated": return e.registerId + " replicated " + e.dockets + " docket(s) to " + e.docketNumber;
    case "queuePressure": return e.queue + " queue" + (e.peerId ? " to " + short(e.peerId) : "") + " at its bound (" + e.depth + "/" + e.limit + ")";
    case "storageFailing": return "storage failing: " + e.reason;
    case "storageRecovered": return "storage recovered";
    case "lagged": return "the page fell behind: " + e.missed + " event(s) missed";
    default: return JSON.stringify(e);
  }
}

function logEvent(e) {
  const log = $("#event-log");
  const time = (e.time || "").slice(11, 19);
  const li = el("li", { class: BAD.has(e.type) ? "bad" : GOOD.has(e.type) ? "good" : "", "data-type": e.type },
    el("span", { class: "t" }, time), el("span", { class: "k" }, e.type), summary(e));
  log.prepend(li);
  while (log.children.length > MAX_LOG) log.lastChild.remove();
}

let streamAbort = null;
let refreshSoon = null;
async function followEvents() {
  for (;;) {
    streamAbort = new AbortController();
    try {
      const headers = { Accept: "text/event-stream" };
      if (token) headers.Authorization = "Bearer " + token;
      if (lastEventSeq) headers["Last-Event-ID"] = String(lastEventSeq);
      const type = $("#event-filter").value;
      const res = await fetch("/api/events" + (type ? "?type=" + encodeURIComponent(type) : ""), { headers, signal: streamAbort.signal, cache: "no-store" });
      if (!res.ok) {
        let msg = res.status + "";
        try { msg = (await res.json()).error; } catch (_) { /* keep the status */ }
        $("#event-state").textContent = "(not following: " + msg + ")";
        await sleep(res.status === 401 || res.status === 403 ? 5000 : 3000);
        continue;
      }
      $("#event-state").textContent = "(live)";
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = message.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).replace(/^ /, "")).join("\n");
          if (!data) continue;
          const event = JSON.parse(data);
          if (event.seq) lastEventSeq = event.seq;
          logEvent(event);
          if (!refreshSoon) refreshSoon = setTimeout(() => { refreshSoon = null; refresh(); }, 250);
        }
      }
      $("#event-state").textContent = "(reconnecting)";
    } catch (e) {
      if (e.name !== "AbortError") $("#event-state").textContent = "(reconnecting)";
    }
    await sleep(1000);
  }
}

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

// ----- wiring -------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("#token").value = token ? "••••••" : "";
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = $("#token").value.trim();
    if (v && v !== "••••••") { token = v; sessionStorage.setItem(TOKEN_KEY, token); }
    $("#token").value = token ? "••••••" : "";
    notice(token ? "Token kept for this browser tab (session storage)." : "");
    gate();
    if (streamAbort) streamAbort.abort();
    refresh();
  });
  $("#token-clear").addEventListener("click", () => {
    token = ""; sessionStorage.removeItem(TOKEN_KEY); $("#token").value = "";
    if (streamAbort) streamAbort.abort();
    notice("Token forgotten.");
    gate();
    refresh();
  });
  // A ban is asked for, then confirmed in the page (saying what and for how long), then said.
  let pendingBan = null;
  $("#ban-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const body = { target: $("#ban-target").value.trim() };
    const reason = $("#ban-reason").value.trim();
    const dur = $("#ban-duration").value.trim();
    if (reason) body.reason = reason;
    if (dur) body.duration = dur;
    const peer = peers.find((p) => p.peerId === body.target);
    const what = peer && peer.name ? peer.name + " (" + short(peer.peerId) + ")" : body.target;
    pendingBan = { body, what };
    $("#ban-confirm-text").textContent = "Ban " + what + (dur ? " for " + dur : " until unbanned") + "? Its sessions close now.";
    $("#ban-confirm").hidden = false;
  });
  $("#ban-confirm-no").addEventListener("click", () => { pendingBan = null; $("#ban-confirm").hidden = true; });
  $("#ban-confirm-yes").addEventListener("click", () => {
    const ban = pendingBan;
    pendingBan = null;
    $("#ban-confirm").hidden = true;
    if (!ban) return;
    act("Ban", async () => {
      const answer = await api("POST", "/api/bans", ban.body);
      $("#ban-target").value = ""; $("#ban-reason").value = ""; $("#ban-duration").value = "";
      return answer;
    }, () => "Banned " + ban.what + (ban.body.duration ? " for " + ban.body.duration : " until unbanned") + ".");
  });
  $("#connect-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const address = $("#connect-address").value.trim();
    act("Connect", () => api("POST", "/api/peers", { address }),
      (r) => (r.alreadyConnected ? "Already connected to " : "Connected to ") + short(r.peerId) + " at " + r.address + ".");
  });
  $("#create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const registerId = $("#create-id").value.trim();
    act("Create register", async () => {
      const answer = await api("POST", "/api/registers", { registerId, isPublic: $("#create-public").checked });
      $("#create-id").value = "";
      return answer;
    }, (r) => "Created register " + r.registerId + " (" + (r.isPublic ? "public" : "private") + "); this node is its origin.");
  });
  $("#event-filter").addEventListener("change", () => {
    $("#event-log").replaceChildren();
    lastEventSeq = 0;
    if (streamAbort) streamAbort.abort();
  });
  $("#peer-filter").addEventListener("input", renderPeers);
  for (const th of document.querySelectorAll("#peer-table th[data-sort]")) {
    th.addEventListener("click", () => {
      sort = { key: th.dataset.sort, dir: sort.key === th.dataset.sort ? -sort.dir : 1 };
      renderPeers();
    });
  }
  gate();
  refresh();
  setInterval(refresh, REFRESH_MS);
  followEvents();
});
