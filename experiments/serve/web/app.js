// The expt dashboard (docs/dashboard.md): one page over the JSON API of `expt serve`. The overview
// refreshes every few seconds; curves and the analysis load when their tab is opened.
"use strict";

const REFRESH_MS = 3000;
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                "#7f7f7f", "#bcbd22"];
const COLUMNS = [  // [field, heading, numeric, format]
  ["id", "trial", false], ["state", "status", false], ["cell", "cell", false], ["point", "point", false],
  ["role", "role", false],
  ["seed", "seed", true], ["step", "step", true], ["steps", "steps", true],
  ["final_eval_loss", "final eval loss", true, 4], ["best_eval_loss", "best eval loss", true, 4],
  ["live_loss", "train loss (running)", true, 4], ["cpu_s", "CPU-s", true, 1], ["attempts", "attempts", true],
];

const state = {
  dir: 0, tab: "overview", overview: null, sortKey: "id", sortAsc: true, selected: new Set(),
  trialId: null, metricsCache: new Map(), curvesChart: null, deffChart: null, timer: null, best: null, bestKey: "",
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const fmt = (v, digits) => v === null || v === undefined ? "-" : (typeof v === "number" && digits !== undefined ? v.toFixed(digits) : String(v));

async function getJson(url) {
  const r = await fetch(url, {cache: "no-store"});
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

// ---- overview ----

// Every loader below remembers the directory it asked about and drops an answer that arrives after
// the user switched to another one: answers can come back out of order (a slow overview of the
// previous directory landing after the new one's), and a late one would show the old directory's
// trials under the new one's name, and ask the new directory for their metrics.
async function loadOverview() {
  const dir = state.dir;
  try {
    const overview = await getJson(`/api/overview?dir=${dir}`);
    if (dir !== state.dir) return;
    state.overview = overview;
    // status.json's loss is the live training loss of a running trial (a finished one's is its final eval loss).
    for (const t of state.overview.trials) t.live_loss = t.state === "running" ? t.loss : null;
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    renderOverview();
  } catch (e) {
    $("updated").textContent = "update failed: " + e.message;
  }
}

function parseFilter(text) {
  return text.trim().split(/\s+/).filter(Boolean).map((term) => {
    const eq = term.indexOf("=");
    return eq > 0 ? {key: term.slice(0, eq), value: term.slice(eq + 1).toLowerCase()} : {text: term.toLowerCase()};
  });
}

function matches(t, terms, stateFilter) {
  if (stateFilter && t.state !== stateFilter) return false;
  return terms.every((term) => {
    if (term.key) return String(t[term.key] ?? "").toLowerCase().includes(term.value) ||
                         String(t.point).toLowerCase().includes(`${term.key}=${term.value}`.toLowerCase());
    return COLUMNS.some(([f]) => String(t[f] ?? "").toLowerCase().includes(term.text)) ||
           String(t.optimizer).toLowerCase().includes(term.text);
  });
}

// The sweep's processes as their heartbeats say (the same judgement as `expt status`).
function livenessText(l) {
  if (!l || l.state === "unknown") return "";
  if (l.state === "running") return ` — running (${l.alive} process${l.alive === 1 ? "" : "es"} alive)`;
  return ` — ${l.state}` + (l.command ? `; resume with: ${l.command}` : "");
}

function renderOverview() {
  const o = state.overview;
  $("study-line").textContent = `${o.kind} ${o.study || ""} ${o.strategy ? "(" + o.strategy + ")" : ""} — ${o.path}` +
      (o.elapsed_s !== null ? `, ${o.elapsed_s.toFixed(0)} s` : "") + livenessText(o.liveness);
  $("counts").innerHTML = Object.entries(o.counts).map(([s, n]) =>
      `<span class="state-${esc(s)}" data-state="${esc(s)}">${esc(s)} ${n}</span>`).join("");
  $("notes").innerHTML = o.notes.map((n) => `<div class="note">${esc(n)}</div>`).join("");

  const stateSel = $("state-filter");
  const states = Object.keys(o.counts);
  if (stateSel.options.length !== states.length + 1) {
    const keep = stateSel.value;
    stateSel.innerHTML = `<option value="">every state</option>` + states.map((s) => `<option>${esc(s)}</option>`).join("");
    stateSel.value = keep;
  }

  // Cells: counts and the best finished point from the trial table; the CD round from status.json.
  const body = $("cells-table").tBodies[0];
  body.innerHTML = o.cells.map((c) => {
    const ts = o.trials.filter((t) => t.cell === c.cell);
    const done = ts.filter((t) => t.finished);  // any outcome, whatever its name (the server decides)
    const best = bestPoint(ts);
    return `<tr data-cell="${esc(c.cell)}"><td>${esc(c.cell)}</td><td>${esc(c.optimizer)}</td><td class="num">${ts.length}</td>` +
        `<td class="num">${done.length}</td><td class="num">${best ? best.loss.toFixed(4) : "-"}</td>` +
        `<td class="num">${c.round ?? "-"}${c.converged ? " (converged)" : ""}</td><td>${esc(c.centre ?? "")}</td>` +
        `<td class="flag">${esc((c.edge_alarms || []).join("; "))}</td>` +
        `<td class="confirm">${esc(c.confirmation ? c.confirmation.text : "")}</td></tr>`;
  }).join("");

  const head = $("trials-table").tHead.rows[0];
  if (!head.cells.length) {
    head.innerHTML = `<th title="select for the curves">plot</th>` + COLUMNS.map(([f, h]) => `<th data-key="${f}">${h}</th>`).join("");
    head.addEventListener("click", (ev) => {
      const key = ev.target.dataset.key;
      if (!key) return;
      state.sortAsc = state.sortKey === key ? !state.sortAsc : true;
      state.sortKey = key;
      renderOverview();
    });
  }
  const terms = parseFilter($("filter").value);
  const rows = o.trials.filter((t) => matches(t, terms, stateSel.value));
  const numeric = COLUMNS.find(([f]) => f === state.sortKey)?.[2];
  rows.sort((a, b) => {
    let x = a[state.sortKey], y = b[state.sortKey];
    if (numeric) { x = x ?? Infinity; y = y ?? Infinity; return state.sortAsc ? x - y : y - x; }
    return state.sortAsc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
  });
  $("shown-count").textContent = `${rows.length} of ${o.trials.length} trials`;
  $("trials-table").tBodies[0].innerHTML = rows.map((t) =>
      `<tr class="trial-row" data-id="${esc(t.id)}"><td><input type="checkbox" ${state.selected.has(t.id) ? "checked" : ""}></td>` +
      COLUMNS.map(([f, , num, digits]) => f === "state"
          ? `<td class="state-${esc(t.state)}">${esc(t.state)}</td>`
          : `<td${num ? ' class="num"' : ""}>${esc(fmt(t[f], digits))}</td>`).join("") + "</tr>").join("");
}

// The finished point of lowest mean final eval loss among `trials` (one cell): {point, loss, ids}.
function bestPoint(trials) {
  const byPoint = new Map();
  for (const t of trials) {
    if (t.state !== "COMPLETED" || t.final_eval_loss === null) continue;
    if (!byPoint.has(t.point)) byPoint.set(t.point, []);
    byPoint.get(t.point).push(t);
  }
  let best = null;
  for (const [point, ts] of byPoint) {
    const loss = ts.reduce((s, t) => s + t.final_eval_loss, 0) / ts.length;
    if (!best || loss < best.loss) best = {point, loss, ids: ts.map((t) => t.id)};
  }
  return best;
}

// ---- curves ----

async function metricsOf(id, dir, overview) {
  const hit = state.metricsCache.get(id);
  const t = overview.trials.find((x) => x.id === id);
  const finished = t && t.finished;
  if (hit && finished) return hit;  // a finished trial's series does not change
  const m = await getJson(`/api/metrics?dir=${dir}&id=${encodeURIComponent(id)}`);
  if (dir === state.dir) state.metricsCache.set(id, m);
  return m;
}

// `best_trials` of the analysis, fetched again only when the counts by state change; null while
// the sweep cannot be analysed (no sweep.h5 yet).
async function bestTrials(dir, overview) {
  const key = `${dir} ${JSON.stringify(overview.counts)}`;
  if (state.bestKey !== key) {
    let best = null;
    try {
      best = (await getJson(`/api/analysis?dir=${dir}`)).best_trials || null;
    } catch (e) {
      best = null;
    }
    if (dir !== state.dir) return best;
    state.best = best;
    state.bestKey = key;
  }
  return state.best;
}

function seriesOf(m, metric, xKey, smoothing) {
  const [stream, column] = [metric.slice(0, metric.indexOf("/")), metric.slice(metric.indexOf("/") + 1)];
  const cols = m[stream] || {};
  const xs = cols[xKey] || [], ys = cols[column] || [];
  const out = [];
  let ema = null;
  for (let i = 0; i < xs.length; ++i) {
    if (ys[i] === null || ys[i] === undefined) continue;
    ema = ema === null ? ys[i] : smoothing * ema + (1 - smoothing) * ys[i];
    out.push({x: xs[i], y: ema});
  }
  return out;
}

function metricNames(m) {
  const names = [];
  for (const stream of ["eval", "train"])
    for (const c of Object.keys(m[stream] || {}))
      if (!["step", "tokens", "wall_s"].includes(c)) names.push(`${stream}/${c}`);
  return names;
}

async function renderCurves() {
  const o = state.overview, dir = state.dir;
  if (!o) return;
  const mode = $("curve-mode").value;
  const xKey = $("x-select").value, smoothing = Number($("smoothing").value);
  $("smoothing-value").textContent = smoothing.toFixed(2);
  // Groups of trials, one line each: a cell's best point (its seeds averaged), or one selected trial.
  let groups = [];
  if (mode === "best") {
    // Each cell's best point as `expt analyze` chooses it (with confirmation seeds the lowest mean
    // over each point's own seeds can be a lucky single seed); the lowest mean only while the sweep
    // cannot be analysed yet.
    const analysed = await bestTrials(dir, o);
    const seeds = (n) => `${n} seed${n > 1 ? "s" : ""}`;
    for (const c of o.cells) {
      const a = analysed && analysed[c.cell];
      const best = a ? null : bestPoint(o.trials.filter((t) => t.cell === c.cell));
      if (a && a.trials.length) groups.push({label: `${c.cell}: ${a.point} (${seeds(a.trials.length)}, best as expt analyze)`, ids: a.trials});
      else if (best) groups.push({label: `${c.cell}: ${best.point} (${seeds(best.ids.length)}, lowest mean)`, ids: best.ids});
    }
  } else {
    groups = [...state.selected].map((id) => {
      const t = o.trials.find((x) => x.id === id);
      return {label: t ? `${t.id} ${t.cell} ${t.point} seed ${t.seed}` : id, ids: [id]};
    });
  }
  const loaded = await Promise.all(
      groups.map(async (g) => ({...g, metrics: await Promise.all(g.ids.map((id) => metricsOf(id, dir, o)))})));
  if (dir !== state.dir) return;  // a render of the new directory draws instead

  const metricSel = $("metric-select");
  const names = [...new Set(loaded.flatMap((g) => g.metrics.flatMap(metricNames)))];
  if (names.join() !== [...metricSel.options].map((x) => x.value).join()) {
    const keep = metricSel.value;
    metricSel.innerHTML = names.map((n) => `<option>${esc(n)}</option>`).join("");
    metricSel.value = names.includes(keep) ? keep : (names.find((n) => n.startsWith("eval/loss")) || names[0] || "");
  }
  const metric = metricSel.value;

  const datasets = [];
  let lines = 0;
  loaded.forEach((g, k) => {
    const color = COLORS[k % COLORS.length];
    const runs = g.metrics.map((m) => seriesOf(m, metric, xKey, smoothing)).filter((s) => s.length);
    if (!runs.length) return;
    const n = Math.min(...runs.map((s) => s.length));
    const mean = [], lo = [], hi = [];
    for (let i = 0; i < n; ++i) {
      const ys = runs.map((s) => s[i].y);
      mean.push({x: runs[0][i].x, y: ys.reduce((a, b) => a + b, 0) / ys.length});
      lo.push({x: runs[0][i].x, y: Math.min(...ys)});
      hi.push({x: runs[0][i].x, y: Math.max(...ys)});
    }
    if (runs.length > 1) {  // the spread over seeds: a band between min and max
      datasets.push({label: `${g.label} min`, data: lo, borderWidth: 0, pointRadius: 0, band: true, fill: false});
      datasets.push({label: `${g.label} max`, data: hi, borderWidth: 0, pointRadius: 0, band: true,
                     backgroundColor: color + "33", fill: "-1"});
    }
    datasets.push({label: g.label, data: mean, borderColor: color, backgroundColor: color, borderWidth: 1.5,
                   pointRadius: 0, fill: false});
    lines += 1;
  });
  $("curves-note").textContent = groups.length ? "" :
      (mode === "best" ? "No finished trial yet: select running trials in the overview (plot column)." : "No trial selected: tick trials in the overview.");
  const canvas = $("curves-chart");
  canvas.dataset.seriesCount = String(lines);
  canvas.dataset.rendered = "1";
  const scales = {
    x: {type: $("log-x").checked ? "logarithmic" : "linear", title: {display: true, text: xKey}},
    y: {type: $("log-y").checked ? "logarithmic" : "linear", title: {display: true, text: metric}},
  };
  if (state.curvesChart) state.curvesChart.destroy();
  state.curvesChart = new Chart(canvas, {
    type: "line", data: {datasets},
    options: {animation: false, parsing: false, normalized: true, maintainAspectRatio: false, scales,
              plugins: {legend: {labels: {filter: (item, data) => !data.datasets[item.datasetIndex].band}}}},
  });
}

// ---- analysis ----

// search.confirm per cell, the lines `expt status` prints ("confirm <cell>: ...").
function confirmationHtml() {
  const cells = (state.overview?.cells || []).filter((c) => c.confirmation);
  if (!cells.length) return "";
  return `<h2>Confirmation (search.confirm)</h2><ul id="confirmation-list">` +
      cells.map((c) => `<li data-cell="${esc(c.cell)}">confirm ${esc(c.cell)}: ${esc(c.confirmation.text)}</li>`).join("") + "</ul>";
}

async function renderAnalysis() {
  const dir = state.dir;
  let a;
  try {
    a = await getJson(`/api/analysis?dir=${dir}`);
    if (dir !== state.dir) return;
  } catch (e) {
    if (dir !== state.dir) return;
    $("analysis-head").textContent = e.message;
    $("analysis-tables").innerHTML = "";
    return;
  }
  // What `expt analyze` prints before its tables: the study line, provenance, notes, the summary.
  $("analysis-head").innerHTML = `<p id="analysis-study">study ${esc(a.study)} (${esc(a.strategy)}), ${esc(a.dir)}: ` +
      `${a.trials_finished} of ${a.trials_total} trials finished, tolerance ${a.tolerance}, baseline ${esc(a.baseline)}` +
      `${a.partial ? (a.running ? " — partial, the sweep is still running" : " — partial, the sweep stopped before all its trials finished") : ""}</p>` +
      `<p class="provenance">expt ${esc(a.expt_commit)}, trial ids of config schema ${esc(a.config_schema)}</p>` +
      a.notes.map((n) => `<div class="note">note: ${esc(n)}</div>`).join("") +
      `<p id="analysis-summary"><b>Summary:</b> <span>${esc(a.summary ?? "")}</span></p>` + confirmationHtml();
  // The tables in the order and with the headings `expt analyze` prints (its JSON's `titles`).
  const titled = a.titles || Object.keys(a.tables).map((name) => ({name, title: name}));
  $("analysis-tables").innerHTML = titled.map(({name, title, columns}) => {
    const rows = a.tables[name] || [];
    if (!rows.length) return `<h2>${esc(title)}</h2><p>(none)</p>`;
    const cols = columns || Object.keys(rows[0]);
    return `<h2>${esc(title)}</h2><table class="analysis-table" data-table="${esc(name)}"><thead><tr>` +
        cols.map((c) => `<th>${esc(c)}</th>`).join("") + "</tr></thead><tbody>" +
        rows.map((r) => "<tr>" + cols.map((c) => `<td${typeof r[c] === "number" ? ' class="num"' : ""}>` +
            esc(typeof r[c] === "number" ? Number(r[c].toPrecision(5)) : fmt(r[c])) + "</td>").join("") + "</tr>").join("") +
        "</tbody></table>";
  }).join("");

  // D_eff against D: one series per optimizer from the speedup table, and the line D_eff = D.
  const byOpt = new Map();
  for (const r of a.tables.speedup || [])
    if (typeof r.D === "number" && typeof r.D_eff === "number") {
      if (!byOpt.has(r.optimizer)) byOpt.set(r.optimizer, []);
      byOpt.get(r.optimizer).push({x: r.D, y: r.D_eff});
    }
  const datasets = [...byOpt].map(([opt, pts], k) => ({label: opt, data: pts.sort((p, q) => p.x - q.x),
      borderColor: COLORS[k % COLORS.length], backgroundColor: COLORS[k % COLORS.length], showLine: true}));
  const all = datasets.flatMap((d) => d.data.flatMap((p) => [p.x, p.y]));
  if (all.length) datasets.push({label: "D_eff = D", data: [{x: Math.min(...all), y: Math.min(...all)}, {x: Math.max(...all), y: Math.max(...all)}],
                                 borderColor: "#999", borderDash: [4, 4], pointRadius: 0, showLine: true});
  $("deff-chart").dataset.seriesCount = String(byOpt.size);
  $("deff-note").textContent = byOpt.size ? "" : "Nothing to plot: the speedup table has no finite D_eff (see the fit table).";
  if (state.deffChart) state.deffChart.destroy();
  state.deffChart = new Chart($("deff-chart"), {type: "scatter", data: {datasets},
      options: {animation: false, maintainAspectRatio: false, scales: {
        x: {type: "logarithmic", title: {display: true, text: "D (tokens)"}},
        y: {type: "logarithmic", title: {display: true, text: "D_eff (tokens)"}}}}});
}

// ---- trial page ----

// A trial's role: confirmation seed, WSD trunk (with its committed fork points) or branch (linked to its trunk).
function roleHtml(t) {
  const b = t.branch;
  let html = esc(t.role);
  if (b && b.role === "branch")
    html = html.replace(esc(b.trunk), `<a href="#trial=${esc(b.trunk)}">${esc(b.trunk)}</a>`) +
        (b.forked ? " (forked, attempts.jsonl)" : b.fork_skipped ? "" : " (planned: not forked yet)");
  if (t.fork_points.length) html += `${html ? "; " : ""}fork points committed at step ${t.fork_points.join(", ")}`;
  return html ? `<p id="trial-role">role: ${html}</p>` : "";
}

async function renderTrial() {
  const box = $("trial-body");
  if (!state.trialId) return;
  const dir = state.dir;
  let t;
  try {
    t = await getJson(`/api/trial?dir=${dir}&id=${encodeURIComponent(state.trialId)}`);
    if (dir !== state.dir) return;
  } catch (e) {
    if (dir !== state.dir) return;
    box.textContent = e.message;
    return;
  }
  const s = t.summary;
  const table = (cols, rows) => `<table><thead><tr>${cols.map((c) => `<th>${esc(c)}</th>`).join("")}</tr></thead><tbody>` +
      rows.map((r) => `<tr>${cols.map((c) => `<td>${esc(typeof r[c] === "object" && r[c] !== null ? JSON.stringify(r[c]) : fmt(r[c]))}</td>`).join("")}</tr>`).join("") +
      "</tbody></table>";
  const attemptCols = [...new Set(t.attempts.flatMap((a) => Object.keys(a)))];
  box.innerHTML = `<h2 id="trial-id">trial ${esc(t.id)}</h2><p>${esc(t.dir)} — <a href="/files/${state.dir}/${state.overview && state.overview.kind === "sweep" ? "trials/" + esc(t.id) + "/" : ""}log.txt">log.txt</a>` +
      `, latest committed checkpoint: ${fmt(t.latest_checkpoint)}</p>` + roleHtml(t) +
      (s ? `<p>status <b class="state-${esc(s.status)}">${esc(s.status)}</b>, final eval loss ${fmt(s.final_eval_loss, 4)}, best ${fmt(s.best_eval_loss, 4)},` +
           ` steps ${s.steps_done}, tokens ${s.tokens_seen}, wall ${s.wall_s.toFixed(1)} s, attempts ${s.n_attempts}` +
           `${s.diverged_step >= 0 ? ", diverged at step " + s.diverged_step : ""}${s.message ? " — " + esc(s.message) : ""}</p>` : "<p>No result yet.</p>") +
      t.notes.map((n) => `<div class="note">${esc(n)}</div>`).join("") +
      (t.quarantined.length ? `<h2>Quarantined</h2><ul>${t.quarantined.map((q) => `<li>${esc(q)}</li>`).join("")}</ul>` : "") +
      `<h2>Events</h2>${table(["step", "kind", "detail", "wall_s"], t.events.filter((e) => e.kind !== "checkpoint"))}` +
      `<p>${t.events.filter((e) => e.kind === "checkpoint").length} checkpoints</p>` +
      `<h2>Attempts</h2>${table(attemptCols, t.attempts)}` +
      `<h2>Resolved config</h2><pre>${esc(t.config)}</pre><h2>Log (end)</h2><pre>${esc(t.log_tail)}</pre>`;
}

// ---- wiring ----

function showTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("nav button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== `tab-${tab}`;
  refresh();
}

async function refresh() {
  if (state.tab === "overview" || !state.overview) await loadOverview();
  if (state.tab === "curves") await renderCurves();
  if (state.tab === "analysis") await renderAnalysis();
  if (state.tab === "trial") await renderTrial();
}

async function start() {
  const dirs = await getJson("/api/dirs");
  $("dir-select").innerHTML = dirs.map((d) => `<option value="${d.dir}">${esc(d.path)} (${d.kind})</option>`).join("");
  $("dir-select").addEventListener("change", (e) => {
    state.dir = Number(e.target.value);
    state.selected.clear();
    state.metricsCache.clear();
    state.overview = null;
    state.bestKey = "";
    state.trialId = null;
    // Nothing of the previous directory stays on the other tabs while the new one loads.
    $("analysis-head").innerHTML = "";
    $("analysis-tables").innerHTML = "";
    $("trial-body").innerHTML = "<p>Click a trial in the overview.</p>";
    refresh();
  });
  for (const b of document.querySelectorAll("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("filter").addEventListener("input", renderOverview);
  $("state-filter").addEventListener("change", renderOverview);
  $("trials-table").tBodies[0].addEventListener("click", (ev) => {
    const row = ev.target.closest("tr.trial-row");
    if (!row) return;
    if (ev.target.type === "checkbox") {
      if (ev.target.checked) state.selected.add(row.dataset.id); else state.selected.delete(row.dataset.id);
      return;
    }
    state.trialId = row.dataset.id;
    history.replaceState(null, "", "#trial=" + encodeURIComponent(row.dataset.id));  // so a link to another trial changes the hash
    showTab("trial");
  });
  $("plot-selected").addEventListener("click", () => { $("curve-mode").value = "selected"; showTab("curves"); });
  for (const id of ["curve-mode", "metric-select", "x-select", "log-x", "log-y", "smoothing"])
    $(id).addEventListener(id === "smoothing" ? "input" : "change", renderCurves);
  window.addEventListener("hashchange", () => {  // links between trial pages (a branch's trunk)
    const h = location.hash.slice(1);
    if (h.startsWith("trial=")) { state.trialId = decodeURIComponent(h.slice(6)); showTab("trial"); }
  });
  // Deep links for scripts and tests: #curves, #analysis, #trial=<id>.
  const hash = location.hash.slice(1);
  if (hash.startsWith("trial=")) { state.trialId = hash.slice(6); await loadOverview(); showTab("trial"); }
  else if (["curves", "analysis"].includes(hash)) { await loadOverview(); showTab(hash); }
  else await loadOverview();
  document.body.dataset.readyMs = String(Math.round(performance.now()));  // navigation start to the table shown
  document.body.dataset.ready = "1";
  // Only the overview and the curves of running trials change; they refresh while their tab is shown.
  state.timer = setInterval(() => { if (state.tab === "overview" || state.tab === "curves") refresh(); }, REFRESH_MS);
}

start();
