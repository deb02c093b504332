/* simsearch review page: one record on an ECG grid, a queue of beats to label, keyboard first.
 *
 * The whole record is never loaded: the overview asks the server for (min, max) per pixel
 * bucket, the strip for the seconds it shows (raw samples when they fit), beat marks for
 * those seconds only. Every label is sent to the server as it is given (it keeps them on
 * disk), so a reload or a restart loses nothing.
 */
"use strict";

const CLASSES = ["N", "S", "V", "F", "Q"];
const COLORS = { N: "#2e7d32", S: "#1565c0", V: "#c62828", F: "#ef6c00", Q: "#6a1b9a", "": "#777" };
const GRID = { minorS: 0.04, majorS: 0.2, minorMv: 0.1, majorMv: 0.5 };
const MAX_BEAT_SPAN_S = 120;   // marks of every beat up to this span; beyond it only flagged beats
const PX = () => window.devicePixelRatio || 1;

const app = {
  token: sessionStorage.getItem("simsearch-token") || "",
  ws: null,            // the workspace description
  duration: 0,
  view: { start: 0, span: 10, zoom: 0, span25: 10 },
  yRange: [-1.5, 2.0],
  strip: null, overview: null, beatChart: null,
  detail: { seq: 0, beats: null, flagged: null },
  overviewData: null,
  queue: [], current: -1,
  busy: 0,
};

// ------------------------------------------------------------------ helpers
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}
const cls = (c) => el("span", { class: `cls cls-${c}` }, c || "-");
function clock(t, digits = 2) {
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = (t % 60);
  const ss = digits ? s.toFixed(digits).padStart(3 + digits, "0") : String(Math.floor(s)).padStart(2, "0");
  return (h ? `${h}:${String(m).padStart(2, "0")}` : `${m}`) + `:${ss}`;
}
function say(text, isError = false) {
  const m = $("#message");
  m.textContent = text;
  m.className = isError ? "error" : "";
}
function expert() { return ($("#expert").value || "expert").trim() || "expert"; }
function setBusy(delta) {
  app.busy += delta;
  document.body.dataset.busy = app.busy > 0 ? "1" : "0";
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (app.token) headers["X-Simsearch-Token"] = app.token;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  setBusy(1);
  try {
    const response = await fetch(path, { method: options.method || "GET", headers, body: options.body });
    if (response.status === 401) {
      $("#token-box").hidden = false;
      throw new Error("this server needs its access token: paste it in the token box");
    }
    if (options.raw) {
      if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
      return response;
    }
    const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
    if (!response.ok) throw new Error(body.error || `${response.status}`);
    return body;
  } finally {
    setBusy(-1);
  }
}

// ------------------------------------------------------------------ ECG grid
function drawGrid(u, xUnit = 1) {
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  const xs = u.scales.x, ys = u.scales.y;
  if (xs.min == null || ys.min == null) return;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  const lines = (min, max, step, toPos, vertical, style, lw) => {
    const pxStep = Math.abs(toPos(min + step) - toPos(min));
    if (pxStep < 3 * PX()) return false;
    ctx.strokeStyle = style;
    ctx.lineWidth = lw;
    ctx.beginPath();
    for (let v = Math.ceil(min / step) * step; v <= max; v += step) {
      const p = Math.round(toPos(v)) + 0.5;
      if (vertical) { ctx.moveTo(p, top); ctx.lineTo(p, top + height); } else { ctx.moveTo(left, p); ctx.lineTo(left + width, p); }
    }
    ctx.stroke();
    return true;
  };
  const xPos = (v) => u.valToPos(v, "x", true), yPos = (v) => u.valToPos(v, "y", true);
  lines(xs.min, xs.max, GRID.minorS * xUnit, xPos, true, "rgba(240,150,150,0.35)", 1);
  lines(ys.min, ys.max, GRID.minorMv, yPos, false, "rgba(240,150,150,0.35)", 1);
  if (!lines(xs.min, xs.max, GRID.majorS * xUnit, xPos, true, "rgba(220,80,80,0.55)", 1.2 * PX())) {
    lines(xs.min, xs.max, 1 * xUnit, xPos, true, "rgba(220,80,80,0.55)", 1.2 * PX());
  }
  lines(ys.min, ys.max, GRID.majorMv, yPos, false, "rgba(220,80,80,0.55)", 1.2 * PX());
  ctx.restore();
}

// a (min, max) strip as one zig-zag line: an envelope the browser draws as fast as a plain line
function stripSeries(strip) {
  if (strip.kind === "raw") {
    const n = strip.mv.length, x = new Float64Array(n);
    for (let i = 0; i < n; i++) x[i] = strip.start + i / strip.fs;
    return [x, strip.mv];
  }
  const n = strip.min.length, x = new Float64Array(2 * n), y = new Array(2 * n);
  for (let i = 0; i < n; i++) {
    x[2 * i] = strip.start + (i + 0.25) * strip.step;
    x[2 * i + 1] = strip.start + (i + 0.75) * strip.step;
    y[2 * i] = strip.min[i];
    y[2 * i + 1] = strip.max[i];
  }
  return [x, y];
}

// ------------------------------------------------------------------ the strip (detail)
function plotWidth(node) { return Math.max(300, node.clientWidth - 2); }

function makeStrip() {
  const node = $("#strip");
  node.innerHTML = "";
  const opts = {
    width: plotWidth(node), height: 300,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: {
      x: { time: false, range: () => [app.view.start, app.view.start + app.view.span] },
      y: { range: () => app.yRange },
    },
    axes: [
      { size: 28, space: 100, values: (u, ticks) => ticks.map((t) => clock(Math.max(0, t), app.view.span > 60 ? 0 : 2)),
        grid: { show: false } },
      { size: 44, label: "mV", grid: { show: false } },
    ],
    series: [{}, { stroke: "#111", width: 1.1, points: { show: false } }],
    hooks: { drawClear: [(u) => drawGrid(u)], draw: [drawBeatMarks] },
  };
  app.strip = new uPlot(opts, [[], []], node);
  // 25 mm/s: 1 s spans 2.5 times the pixels of 1 mV (25 mm against 10 mm)
  const pxPerMv = app.strip.bbox.height / PX() / (app.yRange[1] - app.yRange[0]);
  app.view.span25 = (app.strip.bbox.width / PX()) / (2.5 * pxPerMv);
  app.view.span = app.view.span25 * Math.pow(2, app.view.zoom);
  installPanning(node);
}

function drawBeatMarks(u) {
  const beats = app.detail.beats;
  const { ctx } = u;
  const { left, top, width, height } = u.bbox;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, width, height);
  ctx.clip();
  ctx.textAlign = "center";
  const font = (px, bold) => `${bold ? "bold " : ""}${px * PX()}px system-ui, sans-serif`;
  (app.ws?.signal?.gaps_s || []).forEach(([from, to]) => {   // invalid signal, bridged by a line: shaded grey
    const x0 = u.valToPos(from, "x", true), x1 = u.valToPos(to, "x", true);
    if (x1 < left || x0 > left + width) return;
    ctx.fillStyle = "rgba(120, 120, 120, 0.3)";
    ctx.fillRect(x0, top, Math.max(x1 - x0, 1), height);
    ctx.fillStyle = "#424242";
    ctx.font = font(11, false);
    ctx.fillText("no signal", (Math.max(x0, left) + Math.min(x1, left + width)) / 2, top + height / 2);
  });
  const current = app.queue[app.current];
  if (current) {
    const x = u.valToPos(current.time, "x", true);
    ctx.fillStyle = "rgba(255, 235, 59, 0.35)";
    ctx.fillRect(x - 0.25 / app.view.span * width, top, 0.7 / app.view.span * width, height);
  }
  if (beats && beats.sample.length) {
    const dense = app.view.span > 30;
    for (let i = 0; i < beats.sample.length; i++) {
      const t = beats.time[i], label = beats.label[i];
      const x = u.valToPos(t, "x", true);
      if (x < left - 20 || x > left + width + 20) continue;
      const color = COLORS[label] || "#777";
      const low = beats.confidence[i] < beats.low_confidence;
      const isExpert = beats.label_source[i] === "expert";
      ctx.strokeStyle = color;
      ctx.lineWidth = (isExpert ? 2.5 : 1.2) * PX();
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + 14 * PX());
      ctx.stroke();
      if (!dense) {
        ctx.fillStyle = color;
        ctx.font = font(13, true);
        ctx.fillText(label + (isExpert ? "✓" : ""), x, top + 28 * PX());
        if (low) {
          ctx.fillStyle = "#b71c1c";
          ctx.font = font(12, true);
          ctx.fillText("?", x, top + 42 * PX());
        }
        if (i > 0 && app.view.span <= 20) {   // RR of the previous interval, between the two beats
          const rr = beats.rr_prev[i];
          const xm = u.valToPos(t - rr / 2, "x", true);
          ctx.fillStyle = "#455a64";
          ctx.font = font(10, false);
          ctx.fillText(`${Math.round(rr * 1000)}`, xm, top + height - 6 * PX());
        }
      } else if (low) {
        ctx.fillStyle = "#b71c1c";
        ctx.fillRect(x - 2 * PX(), top + 16 * PX(), 4 * PX(), 4 * PX());
      }
    }
  } else if (app.detail.flagged) {
    drawTicks(u, app.detail.flagged, top, 14 * PX());
  }
  ctx.restore();
}

function drawTicks(u, beats, y0, len) {
  const { ctx } = u;
  for (let i = 0; i < beats.time.length; i++) {
    const x = u.valToPos(beats.time[i], "x", true);
    ctx.strokeStyle = COLORS[beats.label[i]] || "#777";
    ctx.lineWidth = 1 * PX();
    ctx.beginPath();
    ctx.moveTo(x, y0);
    ctx.lineTo(x, y0 + len);
    ctx.stroke();
  }
}

async function loadDetail() {
  if (!app.ws || !app.strip) return;
  const seq = ++app.detail.seq;
  const { start, span } = app.view;
  const from = Math.max(0, start - span), to = Math.min(app.duration, start + 2 * span);
  const points = Math.min(8000, Math.round(3 * app.strip.bbox.width / PX()));
  const id = app.ws.id;
  try {
    const [strip, beats] = await Promise.all([
      api(`/api/workspaces/${id}/signal?start=${from}&end=${to}&points=${points}`),
      api(`/api/workspaces/${id}/beats?start=${from}&end=${to}&limit=20000` + (span > MAX_BEAT_SPAN_S ? "&flagged=true" : "")),
    ]);
    if (seq !== app.detail.seq) return;   // a newer view was asked for meanwhile
    app.detail.beats = span > MAX_BEAT_SPAN_S ? null : beats;
    app.detail.flagged = span > MAX_BEAT_SPAN_S ? beats : null;
    app.strip.setData(stripSeries(strip));
    showWindowInfo(app.detail.beats);
    app.overview && app.overview.redraw(false, false);
  } catch (e) {
    say(e.message, true);
  }
}

function showWindowInfo(beats) {
  const { start, span } = app.view;
  const speed = 25 * app.view.span25 / span;
  let text = `${clock(start)} – ${clock(Math.min(app.duration, start + span))} · ${span.toFixed(span < 10 ? 2 : 0)} s shown · ` +
    `${speed >= 1 ? speed.toFixed(1) : speed.toPrecision(2)} mm/s`;
  if (beats && beats.sample && beats.sample.length > 1) {
    const inside = [];
    for (let i = 0; i < beats.time.length; i++) {
      if (beats.time[i] >= start && beats.time[i] <= start + span) inside.push(beats.rr_prev[i]);
    }
    if (inside.length > 1) {
      inside.sort((a, b) => a - b);
      const median = inside[Math.floor(inside.length / 2)];
      text += ` · RR ${Math.round(median * 1000)} ms · HR ${Math.round(60 / median)} bpm`;
    }
  }
  $("#window-info").textContent = text;
}

function setView(start, span) {
  const maxSpan = Math.max(app.duration, 1);
  span = Math.min(Math.max(span, 0.5), maxSpan);
  start = Math.min(Math.max(0, start), Math.max(0, app.duration - span));
  app.view.start = start;
  app.view.span = span;
  app.strip.redraw(true, false);
  app.overview && app.overview.redraw(false, false);
  clearTimeout(app.detail.timer);
  app.detail.timer = setTimeout(loadDetail, 60);
}
function centerOn(t) { setView(t - app.view.span / 2, app.view.span); }
function zoom(step) {
  app.view.zoom = step === 0 ? 0 : Math.min(14, Math.max(-3, app.view.zoom + step));
  const center = app.view.start + app.view.span / 2;
  const span = app.view.span25 * Math.pow(2, app.view.zoom);
  setView(center - span / 2, span);
}
function pan(fraction) { setView(app.view.start + fraction * app.view.span, app.view.span); }

function installPanning(node) {
  const over = node.querySelector(".u-over");
  let drag = null;
  over.addEventListener("mousedown", (e) => { drag = { x: e.clientX, start: app.view.start }; node.style.cursor = "grabbing"; });
  window.addEventListener("mouseup", () => { drag = null; node.style.cursor = ""; });
  window.addEventListener("mousemove", (e) => {
    if (!drag) return;
    const secondsPerPx = app.view.span / (app.strip.bbox.width / PX());
    setView(drag.start - (e.clientX - drag.x) * secondsPerPx, app.view.span);
  });
  over.addEventListener("wheel", (e) => { e.preventDefault(); zoom(e.deltaY > 0 ? 1 : -1); }, { passive: false });
}

// ------------------------------------------------------------------ the overview (whole record)
async function makeOverview() {
  const node = $("#overview");
  node.innerHTML = "";
  const width = plotWidth(node);
  const id = app.ws.id;
  const [strip, flagged] = await Promise.all([
    api(`/api/workspaces/${id}/signal?start=0&end=${app.duration}&points=${Math.round(width)}`),
    api(`/api/workspaces/${id}/beats?flagged=true&limit=20000`),
  ]);
  app.overviewData = flagged;
  const data = stripSeries(strip);
  const ys = data[1].filter((v) => v !== null).slice().sort((a, b) => a - b);
  const lo = ys[Math.floor(ys.length * 0.01)] ?? -1, hi = ys[Math.floor(ys.length * 0.99)] ?? 1;
  app.yRange = [Math.max(-4, Math.floor((lo - 0.4) * 2) / 2), Math.min(5, Math.ceil((hi + 0.8) * 2) / 2)];
  app.overview = new uPlot({
    width, height: 90,
    legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false }, y: false },
    scales: { x: { time: false, range: () => [0, app.duration] }, y: { range: () => [lo - 0.2, hi + 0.2] } },
    axes: [{ size: 22, space: 90, values: (u, ticks) => ticks.map((t) => clock(Math.max(0, t), 0)) }, { show: false }],
    series: [{}, { stroke: "#546e7a", width: 1, points: { show: false } }],
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { top, height } = u.bbox;
        if (app.overviewData) drawTicks(u, app.overviewData, top, 10 * PX());
        const x0 = u.valToPos(app.view.start, "x", true), x1 = u.valToPos(app.view.start + app.view.span, "x", true);
        ctx.fillStyle = "rgba(255, 193, 7, 0.30)";
        ctx.strokeStyle = "#f57f17";
        ctx.fillRect(x0, top, Math.max(2, x1 - x0), height);
        ctx.strokeRect(x0, top, Math.max(2, x1 - x0), height);
      }],
    },
  }, data, node);
  node.querySelector(".u-over").addEventListener("click", (e) => {
    const rect = e.target.getBoundingClientRect();
    centerOn(app.overview.posToVal(e.clientX - rect.left, "x"));
  });
}

async function refreshOverviewMarks() {
  app.overviewData = await api(`/api/workspaces/${app.ws.id}/beats?flagged=true&limit=20000`);
  app.overview.redraw(false, false);
}

// ------------------------------------------------------------------ queue and beat view
async function loadQueue(append = false) {
  const taken = new Set(append ? app.queue.map((q) => q.sample) : []);
  const n = append ? app.queue.length + 10 : 10;
  const { suggestions } = await api(`/api/workspaces/${app.ws.id}/suggestions?n=${n}`);
  const fresh = suggestions.filter((s) => !taken.has(s.sample));
  app.queue = append ? app.queue.concat(fresh) : fresh;
  renderQueue();
  const next = app.queue.findIndex((q, i) => !q.given && (!append || i > app.current));
  await select(next >= 0 ? next : app.queue.findIndex((q) => !q.given));
}

function renderQueue() {
  const list = $("#queue");
  list.innerHTML = "";
  app.queue.forEach((q, i) => {
    const item = el("li", { class: (i === app.current ? "current " : "") + (q.given ? "done" : ""),
      dataset: { sample: q.sample, given: q.given || "" }, onclick: () => select(i) },
      `${clock(q.time)} `, cls(q.label), ` ${(q.confidence * 100).toFixed(0)}%`);
    if (q.rr && q.rr.prematurity !== null && q.rr.prematurity < 0.85) item.append(el("span", { class: "low", title: "premature (previous RR under 85 % of the local median)" }, " prem."));
    if (q.given) item.append(" → ", el("span", { class: "given" }, q.given));
    list.append(item);
  });
  const current = list.children[app.current];
  if (current) current.scrollIntoView({ block: "nearest" });
}

async function select(i) {
  if (i < 0 || i >= app.queue.length) { app.current = -1; renderQueue(); return; }
  app.current = i;
  renderQueue();
  const q = app.queue[i];
  centerOn(q.time);
  const seq = (app.beatSeq = (app.beatSeq || 0) + 1);
  try {
    const beat = await api(`/api/workspaces/${app.ws.id}/beats/${q.sample}?k=8`);
    if (seq === app.beatSeq) renderBeat(beat);
  } catch (e) { say(e.message, true); }
}

function renderBeat(result) {
  const b = result.beat;
  $("#beat-title").textContent = `${clock(b.time)} (sample ${b.sample})`;
  const facts = $("#beat-facts");
  facts.innerHTML = "";
  const rr = b.rr;
  const premature = rr.prematurity !== null && rr.prematurity < 0.85;
  facts.append(
    el("span", {}, "label ", cls(b.label), ` ${b.label_source}`),
    el("span", { class: b.confidence < 0.6 ? "low" : "" }, `confidence ${(b.confidence * 100).toFixed(0)}%`),
    el("span", {}, "vote " + CLASSES.filter((c) => result.vote.scores[c] > 0.005)
      .map((c) => `${c} ${(result.vote.scores[c] * 100).toFixed(0)}%`).join(" ")),
    el("span", {}, `RR prev ${rr.prev_s.toFixed(3)} s · next ${rr.next_s.toFixed(3)} s · local ${rr.local_s.toFixed(3)} s`),
    el("span", { class: premature ? "low" : "", title: "previous RR over the local median RR" },
      `prematurity ${rr.prematurity === null ? "-" : rr.prematurity.toFixed(2)}${premature ? " (premature)" : ""}`),
    el("span", {}, `HR ${rr.heart_rate_bpm ?? "-"} bpm`),
  );
  if (b.expert) facts.append(el("span", {}, `expert: ${b.expert.label} by ${b.expert.by} at ${b.expert.at}`));
  // overlay: neighbors (class colors, thin) under the query beat (black, thick), all in mV
  const grid = result.grid, n = b.window.length;
  const x = Array.from({ length: n }, (_, i) => 1000 * (grid.t0 + i / grid.fs));
  const data = [x];
  const series = [{}];
  result.neighbors.forEach((nb) => {
    if (!nb.window) return;
    data.push(nb.window);
    series.push({ stroke: (COLORS[nb.aami] || "#777") + "99", width: 1, points: { show: false } });
  });
  data.push(b.window);
  series.push({ stroke: "#000", width: 2.2, points: { show: false } });
  const node = $("#beat-chart");
  node.innerHTML = "";
  app.beatChart = new uPlot({
    width: plotWidth(node), height: 240, legend: { show: false },
    cursor: { drag: { x: false, y: false }, points: { show: false } },
    scales: { x: { time: false }, y: { range: (u, lo, hi) => [Math.floor((lo - 0.1) * 2) / 2, Math.ceil((hi + 0.1) * 2) / 2] } },
    axes: [{ size: 36, label: "ms from the R-peak", labelSize: 12, labelFont: "11px system-ui", grid: { show: false } },
      { size: 44, label: "mV", labelSize: 14, grid: { show: false } }],
    series,
    hooks: { drawClear: [(u) => drawGrid(u, 1000)] },
  }, data, node);
  const missing = result.neighbors.filter((nb) => !nb.window);
  if (missing.length) {
    node.append(el("div", { class: "low" }, `${missing.length} neighbor window(s) not drawn: ${missing[0].window_error || "unreadable"}`));
  }
  const body = $("#neighbors tbody");
  body.innerHTML = "";
  result.neighbors.forEach((nb, i) => {
    const premature = nb.rr && nb.rr.prematurity !== null && nb.rr.prematurity < 0.85;
    body.append(el("tr", {},
      el("td", {}, i + 1), el("td", {}, nb.record), el("td", {}, clock(nb.time)), el("td", {}, cls(nb.aami)),
      el("td", {}, nb.distance.toFixed(3)),
      el("td", {}, nb.rr ? `${nb.rr.prev_s.toFixed(2)} / ${nb.rr.next_s.toFixed(2)}` : "-"),
      el("td", { class: premature ? "low" : "" }, nb.rr && nb.rr.prematurity !== null ? nb.rr.prematurity.toFixed(2) : "-"),
      el("td", {}, nb.label_source)));
  });
}

async function labelCurrent(label) {
  const q = app.queue[app.current];
  if (!q) return;
  try {
    const answer = await api(`/api/workspaces/${app.ws.id}/labels`, {
      method: "POST", json: { labels: [{ sample: q.sample, label }], by: expert() } });
    q.given = label;
    renderLabeled(answer.labels);
    renderCounts(answer.summary, answer.pending_propagation);
    say(`${clock(q.time)} labeled ${label} (kept on the server); Enter spreads the labels`);
    const next = app.queue.findIndex((item, i) => i > app.current && !item.given);
    if (next >= 0) await select(next);
    else await loadQueue(true);
    loadDetail();
  } catch (e) { say(e.message, true); }
}

async function propagate() {
  try {
    say("propagating…");
    const report = await api(`/api/workspaces/${app.ws.id}/propagate`, { method: "POST", json: { by: expert() } });
    renderChanges(report);
    renderCounts(report.summary, false);
    say(`propagated ${report.expert_labels} expert labels: ${report.switched_count} beats changed class`);
    await loadQueue(false);
    await refreshOverviewMarks();
    loadList();
    loadDetail();
  } catch (e) { say(e.message, true); }
}

function renderChanges(report) {
  const box = $("#changes");
  box.innerHTML = "";
  box.dataset.switched = report.switched_count;
  box.append(el("div", {}, el("strong", {}, "Last propagation: "),
    `${report.switched_count} beats switched, ${report.expert_labels} expert labels`));
  const table = el("table", { id: "change-counts" }, el("tr", {}, el("th", {}, ""), ...CLASSES.map((c) => el("th", {}, cls(c)))));
  table.append(el("tr", {}, el("td", {}, "before"), ...CLASSES.map((c) => el("td", {}, report.counts_before[c]))));
  table.append(el("tr", {}, el("td", {}, "after"), ...CLASSES.map((c) => {
    const d = report.counts_after[c] - report.counts_before[c];
    return el("td", {}, `${report.counts_after[c]}${d ? ` (${d > 0 ? "+" : ""}${d})` : ""}`);
  })));
  box.append(table);
  const list = el("div", { class: "switched" });
  report.switched.slice(0, 200).forEach((s) => {
    list.append(el("a", { onclick: () => centerOn(s.time) }, `${clock(s.time)} ${s.from}→${s.to}`), " ");
  });
  box.append(list);
}

function renderCounts(summary, pending) {
  const table = $("#counts");
  table.innerHTML = "";
  table.append(el("tr", {}, el("th", {}, "class"), el("th", {}, "beats")));
  CLASSES.forEach((c) => table.append(el("tr", {}, el("td", {}, cls(c)), el("td", {}, summary.by_class[c]))));
  table.append(el("tr", {}, el("td", {}, "expert"), el("td", {}, summary.by_label_source.expert)));
  table.append(el("tr", { title: "detections the other lead's check doubts, beats reaching into a gap: Q until an expert labels them" },
    el("td", {}, "doubted"), el("td", {}, summary.by_label_source.doubted)));
  table.append(el("tr", {}, el("td", { class: "low" }, "low conf."), el("td", {}, summary.low_confidence.count)));
  renderEctopy(summary.ectopy);
  $("#propagate-btn").textContent = pending ? "Propagate (pending)" : "Propagate";
}

function renderEctopy(ectopy) {
  const table = $("#ectopy");
  table.innerHTML = "";
  table.append(el("tr", {}, ...["ectopy", "single", "pairs", "runs", "bigem."].map((h) => el("th", {}, h))));
  ["S", "V"].forEach((c) => {
    const e = ectopy[c];
    table.append(el("tr", { dataset: { cls: c } }, el("td", {}, cls(c)),
      ...[e.isolated, e.couplets, e.runs, e.bigeminy].map((n) => el("td", {}, n))));
  });
  const rate = ectopy.heart_rate;
  const pauses = ectopy.pauses;
  $("#rhythm-facts").textContent = `HR ${rate.mean_bpm === null ? "-" : Math.round(rate.mean_bpm)} bpm` +
    (rate.min_bpm === null ? "" : ` (${Math.round(rate.min_bpm)}–${Math.round(rate.max_bpm)})`) +
    `; pauses > ${pauses.threshold_s} s: ${pauses.count}` +
    (pauses.count ? `, longest ${pauses.longest_s.toFixed(1)} s` : "");
}

function renderLabeled(labels) {
  const list = $("#labeled");
  list.innerHTML = "";
  $("#labeled-count").textContent = `(${labels.length})`;
  const fs = app.ws.signal.fs;
  labels.slice().reverse().forEach((l) => {
    list.append(el("li", { dataset: { sample: l.sample, label: l.label } },
      el("a", { onclick: () => centerOn(l.sample / fs) }, clock(l.sample / fs)), " ", cls(l.label),
      ` ${l.symbol !== l.label ? `(${l.symbol}) ` : ""}by ${l.by}, ${l.at.replace("T", " ").replace("+00:00", " UTC")}`));
  });
}

// ------------------------------------------------------------------ export, add to index
async function exportFiles() {
  try {
    const result = await api(`/api/workspaces/${app.ws.id}/export`, { method: "POST", json: { ext: "pred", by: expert() } });
    const box = $("#export-links");
    box.innerHTML = "";
    for (const [kind, url] of Object.entries(result.urls)) {
      box.append(el("a", { href: "#", dataset: { kind, file: result.files[kind] }, onclick: (e) => { e.preventDefault(); download(url, result.files[kind]); } }, result.files[kind]));
    }
    say(`exported ${Object.values(result.files).join(", ")}`);
  } catch (e) { say(e.message, true); }
}
async function download(url, name) {
  const response = await api(url, { raw: true });
  const blob = await response.blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}
async function addToIndex() {
  if (!confirm(`Add ${app.ws.record} to the index (expert and propagated labels)?`)) return;
  try {
    const r = await api(`/api/workspaces/${app.ws.id}/add-to-index`, { method: "POST", json: { by: expert() } });
    say(`added ${r.added} beats of ${r.record} to the index (generation ${r.generation}, ${r.beats_in_index} beats)`);
    loadInfo();
  } catch (e) { say(e.message, true); }
}

// ------------------------------------------------------------------ workspaces
async function loadInfo() {
  try {
    const info = await api("/api/info");
    const c = info.catalog;
    const leads = info.leads === "both" ? " · both leads" : "";
    $("#index-info").textContent = `index ${info.path.split("/").pop()}: ${c.beats} beats of ${c.records} records · encoder ${info.encoder.fingerprint}${leads}`;
  } catch (e) { say(e.message, true); }
}
async function loadList() {
  try {
    const { workspaces } = await api("/api/workspaces");
    const select = $("#ws-list");
    select.innerHTML = "";
    select.append(el("option", { value: "" }, "(choose)"));
    workspaces.forEach((w) => select.append(el("option", { value: w.id },
      `${w.record} · ${w.expert_labels} labels${w.labeled_by.length ? " by " + w.labeled_by.join(", ") : ""} · ${w.created.slice(0, 16).replace("T", " ")}`)));
    if (app.ws) select.value = app.ws.id;
  } catch (e) { say(e.message, true); }
}

async function waitReady(id) {
  const bar = $("#progress");
  bar.hidden = false;
  for (;;) {
    const s = await api(`/api/workspaces/${id}/status`);
    $("#progress-bar").style.width = `${Math.round(100 * s.progress)}%`;
    $("#progress-text").textContent = `${s.state}: ${s.error || s.message}`;
    if (s.state === "ready") { bar.hidden = true; return true; }
    if (s.state === "failed") { say(s.error, true); return false; }
    await new Promise((r) => setTimeout(r, 400));
  }
}

async function openWorkspace(id) {
  document.body.dataset.state = "loading";
  history.replaceState(null, "", `#ws=${id}`);
  try {
    await api(`/api/workspaces/${id}`);   // restarts its preparation after a server restart
    if (!(await waitReady(id))) { document.body.dataset.state = "failed"; return; }
    app.ws = await api(`/api/workspaces/${id}`);
    app.duration = app.ws.signal.duration_s;
    $("#workbench").hidden = false;
    $("#ws-title").textContent = `${app.ws.record} · ${app.ws.signal.lead} · ${app.ws.signal.fs} Hz · ${clock(app.duration)}`;
    app.view.zoom = 0;
    await makeOverview();
    makeStrip();
    renderCounts(app.ws.summary, app.ws.pending_propagation);
    renderLabeled(app.ws.labels);
    $("#changes").innerHTML = "";
    $("#export-links").innerHTML = "";
    $("#legend").innerHTML = "";
    CLASSES.forEach((c) => $("#legend").append(el("span", { style: `color:${COLORS[c]}` }, c)));
    $("#legend").append(el("span", { class: "low" }, "? low confidence"), el("span", {}, "✓ expert"),
      el("span", {}, "numbers: RR (ms)"));
    await loadQueue(false);
    await loadDetail();
    loadList();
    document.body.dataset.state = "ready";
    say(`${app.ws.record}: ${app.ws.summary.beats} beats; label with N S V F Q, move with ↑ ↓, Enter propagates`);
  } catch (e) {
    document.body.dataset.state = "failed";
    say(e.message, true);
  }
}

async function openRecord(e) {
  e.preventDefault();
  const record = $("#record-path").value.trim();
  if (!record) return;
  try {
    const w = await api("/api/workspaces", { method: "POST", json: { record, by: expert() } });
    await openWorkspace(w.id);
  } catch (err) { say(err.message, true); }
}

async function uploadRecord(e) {
  e.preventDefault();
  const files = $("#upload-files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  form.append("by", expert());
  try {
    say("uploading…");
    const w = await api("/api/workspaces/upload", { method: "POST", body: form });
    await openWorkspace(w.id);
  } catch (err) { say(err.message, true); }
}

// ------------------------------------------------------------------ keyboard
function onKey(e) {
  const tag = (e.target.tagName || "").toLowerCase();
  if (tag === "input" || tag === "select" || tag === "textarea" || e.ctrlKey || e.metaKey || e.altKey) return;
  if (!app.ws) return;
  const key = e.key;
  const upper = key.length === 1 ? key.toUpperCase() : key;
  if (CLASSES.includes(upper)) { e.preventDefault(); labelCurrent(upper); return; }
  switch (key) {
    case "ArrowDown": case "ArrowRight": e.preventDefault(); select(Math.min(app.queue.length - 1, app.current + 1)); break;
    case "ArrowUp": case "ArrowLeft": e.preventDefault(); select(Math.max(0, app.current - 1)); break;
    case "Enter": e.preventDefault(); propagate(); break;
    case ",": pan(-0.5); break;
    case ".": pan(0.5); break;
    case "+": case "=": zoom(-1); break;
    case "-": zoom(1); break;
    case "0": zoom(0); break;
    default: break;
  }
}

// ------------------------------------------------------------------ start
function start() {
  const params = new URLSearchParams(location.hash.slice(1));
  if (params.get("token")) {
    app.token = params.get("token");
    sessionStorage.setItem("simsearch-token", app.token);
  }
  $("#token").value = app.token;
  $("#token").addEventListener("change", (e) => {
    app.token = e.target.value.trim();
    sessionStorage.setItem("simsearch-token", app.token);
    loadInfo(); loadList();
  });
  $("#expert").value = localStorage.getItem("simsearch-expert") || "expert";
  $("#expert").addEventListener("change", (e) => localStorage.setItem("simsearch-expert", e.target.value.trim()));
  $("#open-form").addEventListener("submit", openRecord);
  $("#upload-form").addEventListener("submit", uploadRecord);
  $("#ws-list").addEventListener("change", (e) => e.target.value && openWorkspace(e.target.value));
  $("#pan-left").addEventListener("click", () => pan(-0.5));
  $("#pan-right").addEventListener("click", () => pan(0.5));
  $("#zoom-in").addEventListener("click", () => zoom(-1));
  $("#zoom-out").addEventListener("click", () => zoom(1));
  $("#zoom-reset").addEventListener("click", () => zoom(0));
  $("#more-btn").addEventListener("click", () => loadQueue(true));
  $("#propagate-btn").addEventListener("click", propagate);
  $("#export-btn").addEventListener("click", exportFiles);
  $("#add-btn").addEventListener("click", addToIndex);
  document.addEventListener("keydown", onKey);
  let resizeTimer;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (app.ws && document.body.dataset.state === "ready") openWorkspace(app.ws.id); }, 300);
  });
  document.body.dataset.state = "idle";
  loadInfo();
  loadList();
  const ws = params.get("ws");
  if (ws) openWorkspace(ws);
}
start();
