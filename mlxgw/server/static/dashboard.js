// The mlxgw dashboard: polls the daemon's JSON endpoints (the ones the CLI uses) and redraws.
// No framework and no build step; every value from the daemon is put in as text, never as HTML
// (model names come from clients).
"use strict";

const KEY_STORE = "mlxgw.key";
const POLL_REQUESTS_MS = 1000;
const POLL_STATUS_MS = 3000;
const POLL_STATS_MS = 15000;
const STATS_AFTER_NEW_MS = 2000; // new requests redraw the charts, at most this often
const MAX_ROWS = 100;
const TOP_SERIES = 7; // more models or backends than this are summed as "other"
const PALETTE = ["#1f6feb", "#2da44e", "#bf8700", "#cf222e", "#8250df", "#1b7c83", "#bc4c00", "#6e7781"];

const state = { lastId: 0, started: false, statsDue: 0, statsTimer: null };

class NeedKey extends Error {}

function $(id) { return document.getElementById(id); }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

async function api(path) {
  const headers = { accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.authorization = "Bearer " + key;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) {
    askForKey(key ? "that key was refused" : "");
    throw new NeedKey();
  }
  const body = await response.json();
  if (!response.ok) throw new Error((body.error && body.error.message) || response.statusText);
  return body;
}

function askForKey(problem) {
  sessionStorage.removeItem(KEY_STORE);
  $("key-error").textContent = problem;
  $("key-form").hidden = false;
}

function setLive(ok, text) {
  const live = $("live");
  live.className = "live " + (ok ? "ok" : "down");
  live.textContent = text;
}

// ---- formatting ---------------------------------------------------------------------------

function bytes(n) {
  if (n == null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function ms(v) { return v == null ? "—" : v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(2)} s`; }
function num(v) { return v == null ? "—" : Number(v).toLocaleString("en-US"); }
function usd(v) { return v == null ? "—" : v === 0 ? "$0" : v < 0.01 ? `$${v.toFixed(5)}` : `$${v.toFixed(2)}`; }
function pct(v) { return v == null ? "—" : `${(v * 100).toFixed(1)}%`; }
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : `${m}m ${Math.floor(s % 60)}s`;
}

// ---- status: backends and the local worker -----------------------------------------------

function renderStatus(status) {
  $("version").textContent = `v${status.version}`;
  $("uptime").textContent = `up ${duration(status.uptime_s)}`;
  const body = $("backends").tBodies[0];
  body.replaceChildren();
  for (const [name, breaker] of Object.entries(status.breakers || {})) {
    const note = (status.backend_errors || {})[name] ||
      (breaker.retry_in_s != null ? `retried in ${breaker.retry_in_s.toFixed(0)} s` : "");
    body.append(el("tr", { "data-backend": name },
      el("td", {}, name),
      el("td", { class: breaker.state }, breaker.state.replace("_", "-")),
      el("td", { class: "num" }, breaker.consecutive_failures),
      el("td", { class: "muted" }, note)));
  }
  if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "no backends configured")));
  renderLocal(status.local);
}

function renderLocal(local) {
  const dl = $("local");
  dl.replaceChildren();
  const models = $("local-models").tBodies[0];
  models.replaceChildren();
  const item = (term, value, cls) => dl.append(el("dt", {}, term), el("dd", cls ? { class: cls } : {}, value));
  if (!local) { item("worker", "this gateway runs no local backend", "muted"); return; }
  item("worker", local.running ? `running (pid ${local.pid})` : "not running (starts with the first local request)",
    local.running ? "ok" : "muted");
  item("restarts", num(local.restarts));
  if (!local.running) return;
  const memory = local.memory || {};
  item("memory", `${bytes(memory.active_bytes)} active, ${bytes(memory.peak_bytes)} peak`);
  item("queue", `${num(local.pending)} waiting, ${num(local.active_sequences)} generating`);
  const cache = local.prompt_cache || {}, batch = local.batch || {};
  const hits = (cache.hits || 0) + (cache.disk_hits || 0);
  item("prompt cache", cache.lookups ? `${pct(hits / cache.lookups)} of ${num(cache.lookups)} lookups hit` : "no lookups yet");
  if (batch.prompt_tokens) item("prompt tokens reused", pct(batch.cached_prompt_tokens / batch.prompt_tokens));
  for (const m of local.models || []) {
    models.append(el("tr", {},
      el("td", {}, m.name), el("td", { class: "num" }, bytes(m.memory_bytes)),
      el("td", { class: "num" }, num(m.active_sequences)),
      el("td", { class: "num" }, `${num(m.prompt_cache_entries)} entries, ${bytes(m.prompt_cache_bytes)}`)));
  }
  if (!models.rows.length) models.append(el("tr", {}, el("td", { colspan: 4, class: "muted" }, "no model loaded")));
}

// ---- recent requests ---------------------------------------------------------------------

function route(row) {
  const steps = (row.attempts || []).map(a => `${a.backend}:${a.model}` + (a.error ? ` (${a.error})` : ""));
  return steps.join(" → ") || "—";
}

function requestRow(row, fresh) {
  const failed = row.status >= 400 || row.error;
  const tokens = row.input_tokens || row.output_tokens ? `${num(row.input_tokens || 0)} / ${num(row.output_tokens || 0)}` : "—";
  return el("tr", { "data-id": row.id, class: fresh ? "new" : "" },
    el("td", {}, new Date(row.time).toLocaleTimeString()),
    el("td", {}, row.protocol),
    el("td", {}, row.requested_model || "—"),
    el("td", { class: "route" }, route(row)),
    el("td", { class: failed ? "bad" : "ok" }, row.error ? `${row.status} ${row.error}` : row.status),
    el("td", { class: "num" }, ms(row.latency_ms)),
    el("td", { class: "num" }, ms(row.ttft_ms)),
    el("td", { class: "num" }, tokens),
    el("td", { class: "num cached" }, num(row.cached_tokens)),
    el("td", { class: "num" }, usd(row.cost_usd)));
}

function addRequests(rows, fresh) {
  const body = $("requests").tBodies[0];
  for (const row of rows) body.prepend(requestRow(row, fresh));
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
}

// ---- charts: stacked bars per time bucket, drawn on a canvas ----------------------------

function stack(series, key, value) {
  // {name: Map(t -> value)} for the TOP_SERIES largest names; the rest as "other".
  const totals = new Map();
  for (const r of series) totals.set(r[key], (totals.get(r[key]) || 0) + (value(r) || 0));
  const names = [...totals.entries()].filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]).map(([n]) => n);
  const kept = new Set(names.slice(0, TOP_SERIES));
  const out = new Map();
  for (const r of series) {
    const v = value(r) || 0;
    if (!v) continue;
    const name = kept.has(r[key]) ? r[key] : "other";
    if (!out.has(name)) out.set(name, new Map());
    const m = out.get(name);
    m.set(r.t, (m.get(r.t) || 0) + v);
  }
  return out;
}

function drawBars(canvas, legend, stacks, buckets, format, empty) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width, height = canvas.clientHeight || canvas.height;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(document.body);
  const text = style.getPropertyValue("--muted") || "#666", line = style.getPropertyValue("--line") || "#ccc";
  g.font = "11px system-ui, sans-serif";
  legend.replaceChildren();
  const names = [...stacks.keys()];
  const totals = buckets.map(t => names.reduce((s, n) => s + (stacks.get(n).get(t) || 0), 0));
  const top = Math.max(...totals, 0);
  const left = 48, bottom = height - 18, plot = width - left - 4;
  g.strokeStyle = line;
  g.beginPath(); g.moveTo(left, 4); g.lineTo(left, bottom); g.lineTo(width - 4, bottom); g.stroke();
  g.fillStyle = text;
  g.textAlign = "right";
  g.fillText(format(top), left - 4, 12);
  g.fillText(format(0), left - 4, bottom);
  g.textAlign = "left";
  const label = t => new Date(t * 1000).toLocaleString([], buckets.length && buckets.at(-1) - buckets[0] >= 43200
    ? { month: "short", day: "numeric", hour: "2-digit" } : { hour: "2-digit", minute: "2-digit" });
  if (buckets.length) {
    g.fillText(label(buckets[0]), left, height - 4);
    g.textAlign = "right";
    g.fillText(label(buckets.at(-1)), width - 4, height - 4);
  }
  if (!top) {
    g.textAlign = "center";
    g.fillText(empty, left + plot / 2, bottom / 2);
    return;
  }
  const step = plot / buckets.length, bar = Math.max(1, step * 0.8);
  names.forEach((name, i) => {
    const color = name === "other" ? PALETTE[PALETTE.length - 1] : PALETTE[i % (PALETTE.length - 1)];
    const swatch = el("span", {}, name);
    swatch.style.setProperty("--swatch", color);
    legend.append(swatch);
    g.fillStyle = color;
    buckets.forEach((t, j) => {
      const below = names.slice(0, i).reduce((s, n) => s + (stacks.get(n).get(t) || 0), 0);
      const v = stacks.get(name).get(t) || 0;
      if (!v) return;
      const y0 = bottom - (below / top) * (bottom - 6), h = (v / top) * (bottom - 6);
      g.fillRect(left + j * step + (step - bar) / 2, y0 - h, bar, h);
    });
  });
}

function renderStats(stats) {
  const bucket = stats.bucket_s;
  const start = Math.floor(Date.parse(stats.start) / 1000 / bucket) * bucket;
  const end = Math.floor(Date.now() / 1000 / bucket) * bucket;
  const buckets = [];
  for (let t = start; t <= end; t += bucket) buckets.push(t);
  const count = v => num(Math.round(v));
  drawBars($("chart-requests"), $("legend-requests"), stack(stats.series, "model", r => r.requests),
    buckets, count, "no requests in this window");
  drawBars($("chart-tokens"), $("legend-tokens"),
    stack(stats.series, "model", r => r.input_tokens + r.output_tokens), buckets, count, "no tokens in this window");
  drawBars($("chart-cost"), $("legend-cost"), stack(stats.series, "backend", r => r.cost_usd),
    buckets, usd, "no priced requests in this window");
  const body = $("totals").tBodies[0];
  body.replaceChildren();
  for (const b of stats.backends) {
    body.append(el("tr", {},
      el("td", {}, b.backend), el("td", { class: "num" }, num(b.requests)),
      el("td", { class: b.errors ? "num bad" : "num" }, num(b.errors)), el("td", { class: "num" }, pct(b.failover_rate)),
      el("td", { class: "num" }, ms(b.p50_ms)), el("td", { class: "num" }, ms(b.p95_ms)),
      el("td", { class: "num" }, num(b.input_tokens)), el("td", { class: "num" }, num(b.output_tokens)),
      el("td", { class: "num" }, usd(b.cost_usd))));
  }
  if (!body.rows.length) body.append(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "no requests in this window")));
}

// ---- polling ----------------------------------------------------------------------------

async function pollRequests() {
  const first = !state.started;
  const body = await api(`/mlxgw/requests?after=${state.lastId}&limit=${MAX_ROWS}`);
  state.started = true;
  if (body.requests.length) {
    addRequests(body.requests, !first);
    if (!first) scheduleStats(STATS_AFTER_NEW_MS);
  }
  state.lastId = body.last_id;
}

async function refreshStats() {
  state.statsTimer = null;
  renderStats(await api(`/mlxgw/stats?since=${encodeURIComponent($("window").value)}`));
}

function scheduleStats(delay) {
  if (state.statsTimer === null) state.statsTimer = setTimeout(() => guarded(refreshStats), delay);
}

async function guarded(task) {
  try {
    await task();
    setLive(true, `updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (!(err instanceof NeedKey)) setLive(false, `no answer from the gateway (${err.message})`);
  }
}

function every(ms, task) {
  const run = async () => {
    // Hidden tabs and a page waiting for its key ask nothing.
    if (!document.hidden && $("key-form").hidden) await guarded(task);
    setTimeout(run, ms);
  };
  run();
}

function start() {
  $("key-form").addEventListener("submit", event => {
    event.preventDefault();
    const key = $("key-input").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key-input").value = "";
    $("key-form").hidden = true;
    guarded(async () => { await pollRequests(); await refreshStats(); });
  });
  $("window").addEventListener("change", () => guarded(refreshStats));
  every(POLL_STATUS_MS, async () => renderStatus(await api("/mlxgw/status")));
  every(POLL_REQUESTS_MS, pollRequests);
  every(POLL_STATS_MS, refreshStats);
}

document.addEventListener("DOMContentLoaded", start);
