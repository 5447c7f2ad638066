// The minikv dashboard's page script.
//
// It signs in when the nodes have a password, opens the live feed (/api/events, Server-Sent
// Events: `hello` once, then `state` every second and `topology` when the shards change) and
// drives the key browser and the slowlog through the JSON API.
//
// Keys and values are user data: they are only ever put on the page with textContent (the
// `el` helper below), never as HTML.
"use strict";

// ---------------------------------------------------------------------------------------
// Small helpers

const $ = (id) => document.getElementById(id);

/** A new element: `attrs` set as properties (or data-* attributes), children appended, strings as text. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name.startsWith("data-")) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmtNumber(n) {
  if (n === null || n === undefined) return "–";
  return Math.round(n).toLocaleString("en-US");
}

function fmtRate(n) {
  if (n === null || n === undefined) return "–";
  if (n >= 100) return fmtNumber(n);
  return n.toFixed(1);
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i += 1;
  }
  return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
}

function fmtPercent(ratio) {
  if (ratio === null || ratio === undefined) return "–";
  return (ratio * 100).toFixed(1) + " %";
}

function fmtDuration(secs) {
  if (secs === null || secs === undefined) return "–";
  if (secs < 60) return secs + " s";
  if (secs < 3600) return Math.floor(secs / 60) + " min";
  if (secs < 86400) return (secs / 3600).toFixed(1) + " h";
  return (secs / 86400).toFixed(1) + " d";
}

function fmtTtl(ms) {
  if (ms === null || ms === undefined) return "–";
  if (ms === -1) return "no TTL";
  if (ms === -2) return "gone";
  return fmtDuration(Math.ceil(ms / 1000));
}

function fmtMicros(us) {
  if (us === null || us === undefined) return "n/a";
  return us < 10 ? us.toFixed(2) : us < 1000 ? us.toFixed(1) : fmtNumber(us);
}

function fmtAgo(unixSecs) {
  if (!unixSecs) return "never";
  const secs = Math.max(0, Math.round(Date.now() / 1000 - unixSecs));
  return fmtDuration(secs) + " ago";
}

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const colour = (i) => PALETTE[i % PALETTE.length];

/** fetch() for the JSON API: resolves to the parsed body; a failure throws an Error with the server's words. */
async function api(path, body) {
  const options = body === undefined
    ? { headers: { Accept: "application/json" } }
    : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const response = await fetch(path, options);
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    data = null;
  }
  if (response.status === 401 && path !== "/login") {
    signedOut();
  }
  if (!response.ok) {
    const error = new Error((data && data.error) || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

// ---------------------------------------------------------------------------------------
// Sign-in

let session = { password: false, signed_in: true, servers: [] };

async function boot() {
  try {
    session = await api("/api/session");
  } catch (e) {
    $("live").textContent = "cannot reach the dashboard: " + e.message;
    return;
  }
  if (session.password && !session.signed_in) showSignIn();
  else start();
}

function showSignIn() {
  $("main").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("live").dataset.state = "signed-out";
  $("live").textContent = "signed out";
  $("password").focus();
}

function signedOut() {
  stopFeed();
  showSignIn();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    await api("/login", { password: $("password").value });
    $("password").value = "";
    $("signin").hidden = true;
    start();
  } catch (e) {
    $("signin-error").textContent = e.status === 401 ? "Wrong password." : e.message;
  }
});

$("signout").addEventListener("click", async () => {
  stopFeed();
  try {
    await api("/logout", {});
  } finally {
    showSignIn();
  }
});

// ---------------------------------------------------------------------------------------
// The live feed

let feed = null;
let servers = [];
let started = false;

function start() {
  $("signin").hidden = true;
  $("main").hidden = false;
  $("signout").hidden = !session.password;
  if (!started) {
    started = true;
    fillNodeSelects(session.servers || []);
    window.addEventListener("resize", resizeCharts);
    refreshSlowlog();
    setInterval(() => {
      if (feed && !document.hidden) refreshSlowlog();
    }, 10000);
  }
  openFeed();
}

function stopFeed() {
  if (feed) feed.close();
  feed = null;
}

function openFeed() {
  stopFeed();
  const source = new EventSource("/api/events");
  feed = source;
  source.addEventListener("hello", (e) => {
    const hello = JSON.parse(e.data);
    servers = hello.servers;
    fillNodeSelects(servers);
    buildCharts(hello.history);
    showTopology(hello.topology);
    showState(hello.state, false);
    setLive("live", "live");
  });
  source.addEventListener("state", (e) => {
    showState(JSON.parse(e.data), true);
    setLive("live", "live");
  });
  source.addEventListener("topology", (e) => showTopology(JSON.parse(e.data)));
  source.onerror = () => {
    if (feed !== source) return;
    setLive("reconnecting", "reconnecting…");
    if (source.readyState === EventSource.CLOSED) {
      // Refused (signed out, or the dashboard restarted): ask again what to do.
      stopFeed();
      setTimeout(boot, 2000);
    }
  };
}

function setLive(state, text) {
  $("live").dataset.state = state;
  $("live").textContent = text;
}

function fillNodeSelects(list) {
  for (const id of ["scan-node", "slowlog-node"]) {
    const select = $(id);
    if (select.options.length === list.length) continue;
    const keep = select.value;
    select.replaceChildren(...list.map((addr, i) => el("option", { value: String(i) }, addr)));
    if (keep !== "" && Number(keep) < list.length) select.value = keep;
  }
}

// ---------------------------------------------------------------------------------------
// Nodes, latency, persistence

let lastState = null;

function showState(state, append) {
  lastState = state;
  const nodes = state.nodes;
  const up = nodes.filter((n) => n.status === "up").length;
  const keys = nodes.reduce((sum, n) => sum + (n.status === "up" && n.keys ? n.keys : 0), 0);
  $("summary").textContent = up + " of " + nodes.length + " nodes up · " + fmtNumber(keys) + " keys";

  $("nodes").tBodies[0].replaceChildren(...nodes.map(nodeRow));
  $("latency").tBodies[0].replaceChildren(...nodes.flatMap(latencyRows));
  $("persistence").tBodies[0].replaceChildren(...nodes.map(persistenceRow));
  if (append) appendCharts(state);
}

const OWN_COMMANDS = ["info", "cluster|shards", "slowlog|get"];

function roleText(node) {
  if (node.shards && node.shards.length) {
    return node.shards.map((s) => "shard " + s.shard + ": " + s.role).join(", ");
  }
  return node.role || "–";
}

function nodeRow(node) {
  const status = el("span", { className: "status " + node.status, "data-status": node.status },
    node.status);
  if (node.error) status.title = node.error;
  // The busiest command but the dashboard's own polling (INFO, CLUSTER SHARDS).
  const best = (node.latency || []).find((l) => !OWN_COMMANDS.includes(l.cmd)) || null;
  const latency = best ? fmtMicros(best.p50) + " / " + fmtMicros(best.p99) + " µs (" + best.cmd + ")" : "n/a";
  const migrations = node.migrations ? el("span", { className: "badge" }, node.migrations + " migrating") : null;
  return el("tr", { "data-addr": node.addr, "data-status": node.status },
    el("td", {}, el("span", { className: "mono" }, node.addr),
      node.version ? el("div", { className: "note" }, node.version) : null),
    el("td", {}, status, node.error && node.status !== "up" ? el("div", { className: "note error" }, node.error) : null),
    el("td", {}, roleText(node), migrations),
    el("td", { className: "num" }, fmtNumber(node.keys)),
    el("td", { className: "num" }, fmtBytes(node.memory)),
    el("td", { className: "num" }, fmtNumber(node.clients)),
    el("td", { className: "num" }, fmtRate(node.ops)),
    el("td", { className: "num" }, fmtPercent(node.hit)),
    el("td", { className: "num" }, latency),
    el("td", { className: "num" }, fmtDuration(node.uptime)));
}

function latencyRows(node) {
  if (!node.latency || node.latency.length === 0) {
    return [el("tr", {}, el("td", { className: "mono" }, node.addr), el("td", { colSpan: 4, className: "note" }, "n/a"))];
  }
  return node.latency.map((l, i) => el("tr", {},
    el("td", { className: "mono" }, i === 0 ? node.addr : ""),
    el("td", { className: "mono" }, l.cmd),
    el("td", { className: "num" }, fmtNumber(l.calls)),
    el("td", { className: "num" }, fmtMicros(l.p50)),
    el("td", { className: "num" }, fmtMicros(l.p99))));
}

function persistenceRow(node) {
  const p = node.persistence || {};
  let status = p.last_status || "–";
  if (p.saving) status += " (saving now)";
  if (p.loading) status += " (loading)";
  const aof = p.aof ? "on, " + (p.aof_status || "?") : "off";
  const bad = p.last_status === "err" || (p.aof && p.aof_status === "err");
  return el("tr", { className: bad ? "bad" : "" },
    el("td", { className: "mono" }, node.addr),
    el("td", {}, node.status === "up" ? fmtAgo(p.last_save) : "–"),
    el("td", { className: "num" }, fmtNumber(p.changes)),
    el("td", {}, status),
    el("td", {}, aof));
}

// ---------------------------------------------------------------------------------------
// Charts (uPlot): one series per node over the feed's history

const CHARTS = [
  { id: "chart-ops", field: "ops", format: fmtRate, scale: 1, total: true },
  { id: "chart-hit", field: "hit", format: (v) => v.toFixed(0), scale: 100, total: false, range: [0, 100] },
  { id: "chart-memory", field: "memory", format: fmtBytes, scale: 1, total: true },
  { id: "chart-keys", field: "keys", format: fmtNumber, scale: 1, total: true },
];
const HISTORY = 300;
let charts = [];

function chartWidth(figure) {
  return Math.max(240, figure.clientWidth - 8);
}

function buildCharts(history) {
  for (const chart of charts) chart.plot.destroy();
  charts = CHARTS.map((spec) => {
    const figure = $(spec.id);
    const data = [history.t.slice()];
    servers.forEach((_, i) => {
      const series = history.nodes[i] ? history.nodes[i][spec.field] : [];
      data.push(series.map((v) => (v === null ? null : v * spec.scale)));
    });
    const options = {
      width: chartWidth(figure),
      height: 180,
      scales: { x: { time: true }, y: spec.range ? { range: spec.range } : {} },
      axes: [{}, { size: 84, values: (u, values) => values.map((v) => (v === null ? "" : spec.format(v))) }],
      series: [{}].concat(servers.map((addr, i) => ({
        label: addr,
        stroke: colour(i),
        width: 1.5,
        value: (u, v) => (v === null ? "–" : spec.format(v)),
      }))),
      legend: { live: true },
    };
    const plot = new uPlot(options, data, figure);
    const chart = { spec, figure, data, plot };
    markLatest(chart);
    return chart;
  });
}

function appendCharts(state) {
  for (const chart of charts) {
    const { spec, data } = chart;
    data[0].push(state.t);
    state.nodes.forEach((node, i) => {
      const v = node.status === "up" ? node[spec.field] : null;
      if (data[i + 1]) data[i + 1].push(v === null || v === undefined ? null : v * spec.scale);
    });
    if (data[0].length > HISTORY) data.forEach((column) => column.shift());
    chart.plot.setData(data);
    markLatest(chart);
  }
}

/** The chart's latest figure and its peak over the window, in data attributes (read by the tests). */
function markLatest(chart) {
  const { spec, data, figure } = chart;
  const last = data[0].length - 1;
  let latest = null;
  let peak = null;
  for (let s = 1; s < data.length; s++) {
    const column = data[s];
    if (last >= 0 && column[last] !== null && column[last] !== undefined) {
      latest = spec.total ? (latest || 0) + column[last] : Math.max(latest === null ? -Infinity : latest, column[last]);
    }
  }
  for (let row = 0; row <= last; row++) {
    let value = null;
    for (let s = 1; s < data.length; s++) {
      const v = data[s][row];
      if (v === null || v === undefined) continue;
      value = spec.total ? (value || 0) + v : Math.max(value === null ? -Infinity : value, v);
    }
    if (value !== null && (peak === null || value > peak)) peak = value;
  }
  figure.dataset.latest = latest === null ? "" : String(latest);
  figure.dataset.peak = peak === null ? "" : String(peak);
}

function resizeCharts() {
  for (const chart of charts) chart.plot.setSize({ width: chartWidth(chart.figure), height: 180 });
}

// ---------------------------------------------------------------------------------------
// Shards and the slot map

let topology = null;

function showTopology(t) {
  topology = t;
  const note = $("cluster-note");
  if (!t) {
    note.textContent = "Not a replicated cluster (no node answers CLUSTER SHARDS): every node holds its own keys.";
    $("shards").hidden = true;
    $("slotmap-box").hidden = true;
    return;
  }
  note.textContent = t.shards.length + " shards, " + fmtNumber(t.slots) + " slots.";
  $("shards").hidden = false;
  $("shards").tBodies[0].replaceChildren(...t.shards.map((s) => {
    const leader = s.nodes.find((n) => n.leader);
    const followers = s.nodes.filter((n) => !n.leader);
    const swatch = el("span", { className: "swatch" });
    swatch.style.background = colour(s.id - 1);
    return el("tr", { "data-shard": String(s.id) },
      el("td", {}, swatch, "shard " + s.id),
      el("td", { className: "num" }, fmtNumber(s.slots)),
      el("td", { className: "mono" }, leader ? leader.addr + " (" + leader.health + ")" : "no leader"),
      el("td", { className: "mono" }, followers.map((n) => n.addr + " (" + n.health + ")").join(", ") || "–"));
  }));
  drawSlotMap();
}

const SLOT_COLUMNS = 192;
const SLOT_CELL = 4;

function drawSlotMap() {
  const box = $("slotmap-box");
  if (!topology || !topology.owners) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const canvas = $("slotmap");
  const rows = Math.ceil(topology.owners.length / SLOT_COLUMNS);
  canvas.width = SLOT_COLUMNS * SLOT_CELL;
  canvas.height = rows * SLOT_CELL;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  topology.owners.forEach((owner, slot) => {
    ctx.fillStyle = owner ? colour(owner - 1) : "#ddd";
    ctx.fillRect((slot % SLOT_COLUMNS) * SLOT_CELL, Math.floor(slot / SLOT_COLUMNS) * SLOT_CELL, SLOT_CELL, SLOT_CELL);
  });
}

$("slotmap").addEventListener("mousemove", (event) => {
  if (!topology || !topology.owners) return;
  const canvas = $("slotmap");
  const rect = canvas.getBoundingClientRect();
  const x = Math.floor(((event.clientX - rect.left) * canvas.width) / rect.width / SLOT_CELL);
  const y = Math.floor(((event.clientY - rect.top) * canvas.height) / rect.height / SLOT_CELL);
  const slot = y * SLOT_COLUMNS + x;
  if (x < 0 || x >= SLOT_COLUMNS || slot < 0 || slot >= topology.owners.length) return;
  const owner = topology.owners[slot];
  $("slot-hover").textContent = "slot " + slot + ": " + (owner ? "shard " + owner : "no owner");
});

// ---------------------------------------------------------------------------------------
// The key browser

let scan = null; // { node, pattern, type, cursor }

$("scan-form").addEventListener("submit", (event) => {
  event.preventDefault();
  scan = {
    node: Number($("scan-node").value || 0),
    pattern: $("scan-pattern").value || "*",
    type: $("scan-type").value,
    cursor: "0",
  };
  $("keys").tBodies[0].replaceChildren();
  scanMore();
});

$("scan-more").addEventListener("click", () => scanMore());

/** Scans until a page of keys is found or the scan is over (at most 10 calls at a time). */
async function scanMore() {
  if (!scan) return;
  const status = $("scan-status");
  status.textContent = "scanning…";
  $("scan-more").hidden = true;
  let found = 0;
  try {
    for (let calls = 0; calls < 10 && found < 50; calls++) {
      const params = new URLSearchParams({
        node: String(scan.node), cursor: scan.cursor, match: scan.pattern, type: scan.type, count: "100",
      });
      const page = await api("/api/keys?" + params);
      scan.cursor = page.cursor;
      found += page.keys.length;
      $("keys").tBodies[0].append(...page.keys.map((k) => keyRow(scan.node, k)));
      if (page.cursor === "0") break;
    }
    const total = $("keys").tBodies[0].rows.length;
    status.textContent = total + (total === 1 ? " key" : " keys") + (scan.cursor === "0" ? ", scan complete" : "");
    $("scan-more").hidden = scan.cursor === "0";
  } catch (e) {
    status.textContent = "scan failed: " + e.message;
  }
}

function keyRow(node, k) {
  const name = el("span", { className: "mono" }, k.key.shown.text);
  if (k.key.shown.binary) name.append(el("span", { className: "badge" }, "binary"));
  const row = el("tr", { className: "key", tabIndex: 0, "data-key": k.key.id },
    el("td", {}, name),
    el("td", {}, k.type || "–"),
    el("td", { className: "num ttl" }, fmtTtl(k.ttl)));
  const open = () => openKey(node, k.key.id);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => {
    if (e.key === "Enter") open();
  });
  return row;
}

let detail = null; // { node, id, type, next }

async function openKey(node, id, next) {
  const params = new URLSearchParams({ node: String(node), key: id, count: "100" });
  if (next && next.offset !== undefined) params.set("offset", String(next.offset));
  if (next && next.cursor !== undefined) params.set("cursor", next.cursor);
  $("detail-error").textContent = "";
  $("key-detail").hidden = false;
  try {
    const info = await api("/api/key?" + params);
    showKey(node, info, Boolean(next));
  } catch (e) {
    if (!next) {
      $("detail-value").replaceChildren();
      $("detail-more").hidden = true;
    }
    $("detail-error").textContent = e.message;
  }
}

function showKey(node, info, appending) {
  detail = { node, id: info.key.id, type: info.type, key: info.key, next: info.next };
  $("detail-key").textContent = info.key.shown.text;
  const size = info.size === null || info.size === undefined ? "" :
    info.type === "string" ? " · " + fmtBytes(info.size) : " · " + fmtNumber(info.size) + " elements";
  $("detail-meta").textContent = info.type + " · TTL " + fmtTtl(info.ttl) + size +
    " · on " + (servers[node] || "node " + node);
  const box = $("detail-value");
  if (info.type === "string") {
    const v = info.value;
    const notes = [];
    if (v.binary) notes.push("binary value, shown escaped");
    if (v.truncated) notes.push("first " + fmtBytes(v.text.length) + " of " + fmtBytes(v.size) + " shown");
    const value = el("pre", { className: "value" }, v.text);
    if (notes.length) box.replaceChildren(el("p", { className: "note" }, notes.join("; ")), value);
    else box.replaceChildren(value);
  } else if (info.items) {
    const columns = {
      list: ["Index", "Value"], hash: ["Field", "Value"], set: ["Member"], zset: ["Member", "Score"],
    }[info.type] || ["Value"];
    let table = box.querySelector("table");
    if (!appending || !table) {
      table = el("table", { className: "value" },
        el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", {}, c)))), el("tbody"));
      box.replaceChildren(table);
    }
    table.tBodies[0].append(...info.items.map((item) => valueRow(info.type, item)));
  } else {
    box.replaceChildren(el("p", { className: "note" }, "No viewer for this type."));
  }
  $("detail-more").hidden = !info.next;
}

function shownCell(shown) {
  if (!shown) return el("td", {}, "–");
  const cell = el("td", { className: "mono" }, shown.text);
  if (shown.binary) cell.append(el("span", { className: "badge" }, "binary"));
  if (shown.truncated) cell.append(el("span", { className: "badge" }, "cut, " + fmtBytes(shown.size)));
  return cell;
}

function valueRow(type, item) {
  switch (type) {
    case "list": return el("tr", {}, el("td", { className: "num" }, item.index), shownCell(item.value));
    case "hash": return el("tr", {}, shownCell(item.field), shownCell(item.value));
    case "zset": return el("tr", {}, shownCell(item.member), el("td", { className: "num" }, item.score));
    default: return el("tr", {}, shownCell(item.member));
  }
}

$("detail-more").addEventListener("click", () => {
  if (detail && detail.next) openKey(detail.node, detail.id, detail.next);
});

/** Asks for confirmation in the page's dialog; resolves to true when confirmed. */
function confirmAction(text, okLabel) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel;
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-ok").onclick = null;
      $("confirm-cancel").onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    $("confirm-ok").onclick = () => done(true);
    $("confirm-cancel").onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
  });
}

async function changeKey(path, body, question, okLabel) {
  if (!detail) return;
  const target = detail;
  const where = servers[target.node] || "node " + target.node;
  if (!(await confirmAction(question + " \u201c" + target.key.shown.text + "\u201d on " + where + "?", okLabel))) return;
  $("detail-error").textContent = "";
  try {
    await api(path, Object.assign({ node: target.node, key: target.id }, body));
    if (path.endsWith("delete")) {
      $("key-detail").hidden = true;
      const row = document.querySelector('#keys tr[data-key="' + CSS.escape(target.id) + '"]');
      if (row) row.remove();
    } else {
      openKey(target.node, target.id);
    }
  } catch (e) {
    $("detail-error").textContent = e.message;
  }
}

$("detail-delete").addEventListener("click", () => changeKey("/api/key/delete", {}, "Delete key", "Delete"));
$("detail-persist").addEventListener("click", () =>
  changeKey("/api/key/expire", { seconds: null }, "Remove the TTL of", "Remove TTL"));
$("detail-expire").addEventListener("click", () => {
  const seconds = Number($("detail-ttl").value);
  if (!Number.isInteger(seconds) || seconds < 1) {
    $("detail-error").textContent = "Give the TTL as a whole number of seconds, 1 or more.";
    return;
  }
  changeKey("/api/key/expire", { seconds }, "Expire in " + seconds + " s the key", "Set TTL");
});

// ---------------------------------------------------------------------------------------
// The slowlog

$("slowlog-refresh").addEventListener("click", () => refreshSlowlog());
$("slowlog-node").addEventListener("change", () => refreshSlowlog());

async function refreshSlowlog() {
  const node = $("slowlog-node").value || "0";
  const status = $("slowlog-status");
  try {
    const log = await api("/api/slowlog?" + new URLSearchParams({ node, count: "50" }));
    $("slowlog").tBodies[0].replaceChildren(...log.entries.map((e) => el("tr", {},
      el("td", { className: "num" }, e.id),
      el("td", {}, e.time ? new Date(e.time * 1000).toLocaleString() : "–"),
      el("td", { className: "num" }, fmtNumber(e.usec)),
      el("td", { className: "mono" }, e.args.map((a) => a.text + (a.truncated ? "…" : "")).join(" ")),
      el("td", { className: "mono" }, e.client || ""))));
    status.textContent = log.entries.length ? "" : "empty";
  } catch (e) {
    status.textContent = "slowlog: " + e.message;
  }
}

boot();
