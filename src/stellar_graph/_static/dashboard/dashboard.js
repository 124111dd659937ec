// The live dashboard: one orchestra thread's board, agents and events, kept current over SSE.
// No framework and no network besides this server: the page works offline.
"use strict";

const FINISHED = new Set(["completed", "failed", "degraded"]);
const WAITING = new Set(["pending", "held", "allocated", "queued", "escalating"]);
const STAMP = { running: "started_at", completed: "finished_at", failed: "finished_at", degraded: "finished_at",
                allocated: "allocated_at", queued: "allocated_at", refused: "submitted_at" };

const model = { thread: "", agents: {}, tasks: {}, allocations: {}, collaborations: {}, events: [], selected: null };
// What the page showed and when, for tests and for people curious about the lag.
// lags: from the time a record carries (started_at, finished_at...) to the screen (the orchestra's
// own latency included); pipeline: from the server emitting a change to the screen.
window.__dashboard = { seen: {}, lags: [], pipeline: [], updates: 0 };

const $ = (selector) => document.querySelector(selector);
const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function merge(target, part) {
  for (const [key, value] of Object.entries(part || {})) {
    if (value === null) delete target[key];
    else target[key] = { ...(target[key] || {}), ...value };
  }
}

function noteStatuses() {
  const now = Date.now();
  for (const [id, task] of Object.entries(model.tasks)) {
    const seen = (window.__dashboard.seen[id] ||= {});
    if (task.status && !(task.status in seen)) {
      seen[task.status] = now;
      const at = Date.parse(task[STAMP[task.status]] || "");
      if (!Number.isNaN(at)) window.__dashboard.lags.push({ task: id, status: task.status, ms: now - at });
    }
  }
}

let scheduled = false;
let pending = [];  // emission times of the deltas the next draw shows
function render() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => {
    scheduled = false;
    draw();
    const now = Date.now();
    window.__dashboard.pipeline.push(...pending.map((at) => now - at));
    pending = [];
  });
}

function draw() {
  const started = performance.now();
  noteStatuses();
  const tasks = Object.values(model.tasks).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  const columns = { waiting: [], running: [], finished: [], refused: [] };
  const counts = {};
  for (const task of tasks) {
    counts[task.status] = (counts[task.status] || 0) + 1;
    const column = task.status === "running" ? "running" : task.status === "refused" ? "refused"
      : FINISHED.has(task.status) ? "finished" : "waiting";
    columns[column].push(card(task));
  }
  for (const [name, cards] of Object.entries(columns)) {
    document.querySelector(`[data-column="${name}"] .cards`).innerHTML = cards.join("");
  }
  $("#counts").innerHTML = Object.entries(counts).map(([s, n]) => `<span>${esc(s)} ${n}</span>`).join("");
  drawAgents(tasks);
  drawEscalations(tasks);
  drawCollaborations();
  noteFinished(tasks);
  setTimeout(() => drawCharts(tasks), 0);  // after the board is on screen: charts never delay it
  $("#events").innerHTML = model.events.slice(-200).reverse().map((e) =>
    `<li>${esc((e.timestamp || "").slice(11, 19))} ${esc(e.type)} ${esc(e.task_id || e.agent_id || "")}${e.agent_id && e.task_id ? " → " + esc(e.agent_id) : ""}${e.error ? ": " + esc(e.error) : ""}</li>`).join("");
  if (model.selected) drawDetails(model.selected);
  const stats = window.__dashboard;
  stats.updates += 1;
  stats.drawMs = performance.now() - started;
  if (stats.firstPaintMs === undefined && tasks.length) {
    stats.firstPaintMs = performance.now();  // since navigation
    stats.firstPaintTasks = tasks.length;
  }
}

// -- charts (uPlot, shipped with the page) ----------------------------------------------------------
const finished = {};  // task id -> {at: epoch seconds, wall: seconds}; kept after a task leaves the board
const charts = {};
let chartsDrawn = 0;

function noteFinished(tasks) {
  for (const task of tasks) {
    if (FINISHED.has(task.status) && task.finished_at && !(task.id in finished)) {
      finished[task.id] = { at: Date.parse(task.finished_at) / 1000, wall: Number(task.wall_seconds ?? NaN) };
    }
  }
}

function percentile(sorted, q) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : null;
}

function chart(id, series, data) {
  const host = document.getElementById(id);
  if (!host || typeof uPlot === "undefined") return;
  if (!charts[id]) {
    const width = Math.max(host.clientWidth, 240);
    charts[id] = new uPlot({ width, height: 160, series: [{}, ...series], axes: [{}, { size: 40 }],
                             legend: { show: true }, cursor: { drag: { x: false, y: false } } }, data, host);
  } else {
    charts[id].setData(data);
  }
}

function drawCharts(tasks) {
  const now = performance.now();
  if (now - chartsDrawn < 500) return;  // at most twice a second, whatever the event rate
  chartsDrawn = now;
  const points = Object.values(finished).sort((a, b) => a.at - b.at);
  chart("chart-throughput", [{ label: "finished", stroke: "#1a7f37", width: 2 }],
        [points.map((p) => p.at), points.map((_, i) => i + 1)]);
  const timed = points.filter((p) => Number.isFinite(p.wall));
  const p50 = [], p90 = [];
  timed.forEach((_, i) => {
    const recent = timed.slice(Math.max(0, i - 49), i + 1).map((p) => p.wall).sort((a, b) => a - b);
    p50.push(percentile(recent, 0.5));
    p90.push(percentile(recent, 0.9));
  });
  chart("chart-latency", [
    { label: "task", stroke: "#98a2b3", points: { show: true, size: 4 }, width: 0 },
    { label: "p50", stroke: "#0b62c4", width: 2 },
    { label: "p90", stroke: "#c0362c", width: 2 },
  ], [timed.map((p) => p.at), timed.map((p) => p.wall), p50, p90]);
  $("#utilisation").innerHTML = Object.values(model.agents).sort((a, b) => a.agent_id.localeCompare(b.agent_id)).map((agent) => {
    const busy = tasks.filter((t) => t.agent_id === agent.agent_id && t.status === "running").length;
    const share = Math.min(1, busy / Math.max(1, Number(agent.capacity) || 1));
    return `<div class="meter"><span>${esc(agent.agent_id)}</span><div class="bar"><span style="width:${(share * 100).toFixed(0)}%"></span></div><span>${busy}/${esc(agent.capacity)}</span></div>`;
  }).join("");
}

// -- collaborations: plan, bids, votes, conflicts --------------------------------------------------
function drawCollaborations() {
  const records = Object.values(model.collaborations).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  $("#collaborations").hidden = records.length === 0;
  $("#collaboration-list").innerHTML = records.map((c) => {
    const subtasks = Object.values(c.subtasks || {}).map((s) =>
      `<li>${esc(s.id)} → ${esc(s.agent_id || "-")} <em>${esc(s.status)}</em>${s.score ? ` (bid ${Number(s.score).toFixed(2)})` : ""}</li>`).join("");
    const bids = (c.rounds || []).flatMap((r) => r.bids || []).map((b) =>
      `${esc(b.agent_id)} ${b.kind === "refuse" ? "refused" : "bid " + Number(b.score).toFixed(2)} on ${esc(b.subtask_id)}`).join("; ");
    const ballots = ((c.votes || {}).ballots || []).map((v) => `${esc(v.voter)}: ${esc(v.choice)}`).join(", ");
    const conflicts = Object.values(c.conflicts || {}).map((k) =>
      `${esc(k.kind || k.type || "conflict")}: ${esc((k.resolution || {}).decision || k.status || "open")}`).join("; ");
    const outcome = c.outcome || {};
    return `<article class="collaboration" data-collaboration="${esc(c.id)}">
      <h3>${esc(c.id)} <em>${esc(c.status)}</em></h3>
      <p>${esc((c.goal || {}).description || "")}</p>
      <ul>${subtasks}</ul>
      <p><strong>bids</strong> ${bids || "none yet"}</p>
      <p><strong>votes</strong> ${ballots || "none yet"}${outcome.decided_by ? ` → ${esc(outcome.decision)} (${esc(outcome.decided_by)})` : ""}</p>
      <p><strong>conflicts</strong> ${conflicts || "none"}</p></article>`;
  }).join("");
}

// -- the metrics tree, asked for every few seconds ---------------------------------------------------
const learning = { at: [], score: [] };

async function refreshSummary() {
  if (!model.thread) return;
  try {
    const response = await fetch(`/dashboard/api/summary?thread=${encodeURIComponent(model.thread)}`);
    if (!response.ok) return;
    drawSummary(await response.json());
  } catch (error) { /* the stream's status shows the connection; try again next time */ }
}

function drawSummary(m) {
  const latency = (m.performance || {}).latency_seconds || {};
  const tokens = m.tokens || {};
  const routing = tokens.routing || {}, work = tokens.work || {};
  const routingTokens = (routing.input || 0) + (routing.output || 0), workTokens = (work.input || 0) + (work.output || 0);
  const share = routingTokens + workTokens ? (100 * routingTokens / (routingTokens + workTokens)).toFixed(1) : "0";
  const fmt = (x) => (typeof x === "number" ? x.toFixed(2) : "-");
  $("#summary").innerHTML = `<table class="summary">
    <tr><th>task wall time</th><td>p50 ${fmt(latency.p50)} s · p90 ${fmt(latency.p90)} s · p99 ${fmt(latency.p99)} s</td></tr>
    <tr><th>throughput</th><td>${fmt((m.performance || {}).throughput_per_minute)} tasks/min</td></tr>
    <tr><th>tokens: routing</th><td>${routingTokens} (${routing.calls || 0} calls, ${share}% of all)</td></tr>
    <tr><th>tokens: work</th><td>${workTokens}</td></tr>
    <tr><th>allocation efficiency</th><td>${fmt((m.task_allocation || {}).efficiency)}</td></tr></table>`;
  const score = (m.adaptation || {}).learning_score;
  if (typeof score === "number") {
    learning.at.push(Date.now() / 1000);
    learning.score.push(score);
    chart("chart-learning", [{ label: "learning score", stroke: "#8250df", width: 2 }], [learning.at, learning.score]);
  } else if (!learning.at.length) {
    document.getElementById("chart-learning").textContent = "no learned outcomes yet";
  }
}
setInterval(refreshSummary, 3000);

function card(task) {
  const alloc = model.allocations[task.allocation_id] || {};
  const late = alloc.likely_late ? " late" : "";
  const score = alloc.agent_id && typeof alloc.score === "number" ? ` · ${alloc.score.toFixed(2)}` : "";
  return `<div class="card${late}" data-task="${esc(task.id)}" data-status="${esc(task.status)}">
    <div class="id">${esc(task.id)}</div>
    <div class="meta">${esc(task.status)} · ${esc(task.agent_id || "-")}${score} · ${esc(task.priority || "")}</div></div>`;
}

function drawAgents(tasks) {
  const rows = Object.values(model.agents).sort((a, b) => a.agent_id.localeCompare(b.agent_id)).map((agent) => {
    const mine = tasks.filter((t) => t.agent_id === agent.agent_id);
    const load = mine.filter((t) => t.status === "running" || t.status === "queued" || t.status === "allocated").length;
    const done = mine.filter((t) => t.status === "completed").length;
    const failed = mine.filter((t) => t.status === "failed").length;
    return `<tr data-agent="${esc(agent.agent_id)}"><td>${esc(agent.agent_id)}</td><td>${esc(agent.agent_type)}</td>
      <td>${load}/${esc(agent.capacity)}</td><td>${agent.healthy === false ? "unhealthy" : "healthy"}</td>
      <td>${done}</td><td>${failed}</td></tr>`;
  });
  $("#agents tbody").innerHTML = rows.join("");
}

function drawEscalations(tasks) {
  const waiting = tasks.filter((t) => t.status === "escalating");
  $("#escalations").hidden = waiting.length === 0;
  const list = $("#escalation-list");
  const signature = JSON.stringify([waiting.map((t) => t.id), Object.keys(model.agents).sort()]);
  if (list.dataset.signature === signature) return;  // unchanged: keep a choice being made
  list.dataset.signature = signature;
  list.innerHTML = waiting.map((t) => {
    const others = Object.keys(model.agents).filter((a) => a !== t.agent_id).sort();
    return `<div class="escalation" data-task="${esc(t.id)}">
    <strong>${esc(t.id)}</strong> on ${esc(t.agent_id || "-")}: ${esc(t.error || "")}
    <button data-action="retry" data-task="${esc(t.id)}">retry</button>
    <label>reassign to <select data-task="${esc(t.id)}">${others.map((a) => `<option>${esc(a)}</option>`).join("")}</select></label>
    <button data-action="reassign" data-task="${esc(t.id)}">reassign</button>
    <button data-action="fail" data-task="${esc(t.id)}">fail</button></div>`;
  }).join("");
}

function drawDetails(id) {
  const task = model.tasks[id];
  if (!task) return;
  const alloc = model.allocations[task.allocation_id] || {};
  const interval = alloc.predicted_interval || {};
  const runnersUp = (alloc.alternatives || []).map((a) => `${esc(a.agent_id)} (${Number(a.score).toFixed(2)})`).join(", ") || "none";
  $("#details").hidden = false;
  $("#details-id").textContent = id;
  $("#details-body").innerHTML = `
    <p>${esc(task.description)}</p>
    <p>status <strong>${esc(task.status)}</strong>, agent ${esc(task.agent_id || "-")}; runners-up: ${runnersUp}</p>
    <p>predicted ${interval.median_minutes ? Number(interval.median_minutes).toFixed(0) + " min" : "-"}
       (${interval.lower_minutes ? Number(interval.lower_minutes).toFixed(0) : "?"}–${interval.upper_minutes ? Number(interval.upper_minutes).toFixed(0) : "?"} min)${alloc.likely_late ? ", <strong>likely late</strong>" : ""}</p>
    <pre>${esc(alloc.explanation || Object.values(alloc.reasons || {}).join("\n") || "no allocation yet")}</pre>
    ${task.result ? `<h3>Result</h3><pre>${esc(task.result)}</pre>` : ""}`;
}

async function resolve(taskId, action) {
  const decision = { action, reason: "decided on the dashboard" };
  if (action === "reassign") decision.agent_id = document.querySelector(`select[data-task="${CSS.escape(taskId)}"]`).value;
  const response = await fetch("/orchestra/resume", {
    method: "POST", headers: { "Content-Type": "application/json", "X-Thread-Id": model.thread },
    body: JSON.stringify({ decisions: { [taskId]: decision } }),
  });
  if (!response.ok) {
    const row = document.querySelector(`.escalation[data-task="${CSS.escape(taskId)}"]`);
    row.insertAdjacentHTML("beforeend", `<p class="problem" role="alert">${esc((await response.json()).detail)}</p>`);
  }
}

let source = null;
async function load(thread) {
  if (source) source.close();
  const query = thread ? `?thread=${encodeURIComponent(thread)}` : "";
  let early = [];  // deltas that arrive before the board: applied after it, so nothing goes back in time
  const apply = (delta) => {
    for (const key of ["agents", "tasks", "allocations", "collaborations"]) merge(model[key], delta[key]);
    if (delta.events) model.events.push(...delta.events);
    if (delta.emitted_at) pending.push(delta.emitted_at * 1000);
    render();
  };
  source = new EventSource(`/dashboard/api/stream${query}`);
  source.addEventListener("open", () => { $("#connection").textContent = "live"; $("#connection").className = "pill live"; });
  source.addEventListener("error", () => { $("#connection").textContent = "reconnecting…"; $("#connection").className = "pill down"; });
  source.addEventListener("delta", (message) => {
    const delta = JSON.parse(message.data);
    if (early) early.push(delta); else apply(delta);
  });
  const requested = window.__boardRequest;  // started by the page's head, before the scripts loaded
  window.__boardRequest = null;
  const response = await (requested && requested.thread === thread ? requested.response : fetch(`/dashboard/api/board${query}`));
  const board = await response.json();
  model.thread = board.thread;
  $("#thread").value = board.thread;
  for (const key of ["agents", "tasks", "allocations", "collaborations"]) merge(model[key], board[key]);
  model.events = [...(board.events || [])];
  const buffered = early;
  early = null;
  buffered.forEach(apply);
  render();
  refreshSummary();
}

document.addEventListener("click", (event) => {
  const target = event.target.closest("button[data-action], .card");
  if (!target) return;
  if (target.matches("button[data-action]")) resolve(target.dataset.task, target.dataset.action);
  else { model.selected = target.dataset.task; drawDetails(model.selected); }
});
$("#thread-form").addEventListener("submit", (event) => {
  event.preventDefault();
  Object.assign(model, { agents: {}, tasks: {}, allocations: {}, collaborations: {}, events: [], selected: null });
  const thread = $("#thread").value.trim();
  history.replaceState(null, "", `/dashboard${thread ? "?thread=" + encodeURIComponent(thread) : ""}`);
  load(thread);
});
load(new URLSearchParams(location.search).get("thread") || "");
