"use strict";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const key = () => encodeURIComponent($("key").value.trim());
// A link can name the key: /ui/metrics?key=cpu
const linked = new URLSearchParams(location.search).get("key");
if (linked) $("key").value = linked;

const call = livestats.call;

function el(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Each label's width in px (5 characters of an 11 px font, plus a gap): minute labels are spaced at least this far.
const LABEL_PX = 44;
let drawn = null;

// Drawn in the chart's own pixels (its viewBox is its size on screen), so text keeps its 11 px on a phone instead
// of shrinking with a 900-unit drawing scaled to fit.
function draw(minutes) {
  drawn = minutes;
  const W = Math.round($("chart").getBoundingClientRect().width) || 900, H = 240, left = 50, bottom = 20, top = 10;
  $("chart").setAttribute("viewBox", `0 0 ${W} ${H}`);
  const values = minutes.map((m) => m.value);
  const max = Math.max(1, ...values), min = Math.min(0, ...values);
  const y = (v) => top + (H - top - bottom) * (max - v) / (max - min);
  const step = (W - left) / Math.max(1, minutes.length);
  const labelEvery = 5 * Math.max(1, Math.ceil(LABEL_PX / (5 * step)));  // every 5, 10, 15... minutes
  const nodes = [el("line", {x1: left, x2: W, y1: y(0), y2: y(0)}),
    el("text", {x: 2, y: y(max) + 4}, String(max)), el("text", {x: 2, y: y(min) + 4}, String(min))];
  minutes.forEach((m, i) => {
    const top_ = Math.min(y(m.value), y(0)), height = Math.max(1, Math.abs(y(m.value) - y(0)));
    const cls = "bar" + (m.value < 0 ? " neg" : "") + (i === minutes.length - 1 ? " now" : "");
    const bar = el("rect", {x: left + i * step + 1, y: top_, width: Math.max(1, step - 2), height, class: cls});
    bar.appendChild(el("title", {}, `${m.minute.slice(11, 16)} UTC: ${m.value}`));
    nodes.push(bar);
    if (i % labelEvery === 0) nodes.push(el("text", {x: left + i * step, y: H - 4}, m.minute.slice(11, 16)));
  });
  $("chart").replaceChildren(...nodes);
}

async function refresh() {
  if (!$("key").checkValidity()) return;
  try {
    const [sum, series, quantiles] = await Promise.all([call("GET", `metric/${key()}/sum`),
      call("GET", `metric/${key()}/minutes?window=3600`), call("GET", `metric/${key()}/quantiles?window=3600&q=0.5,0.9,0.95,0.99`)]);
    $("sum").textContent = sum.value.toLocaleString();
    for (const [id, q] of [["p50", "0.5"], ["p90", "0.9"], ["p95", "0.95"], ["p99", "0.99"]]) {
      const v = quantiles.quantiles[q];
      $(id).textContent = v === null ? "—" : Number(v.toPrecision(4)).toLocaleString();
    }
    $("count").textContent = quantiles.count.toLocaleString();
    draw(series.minutes);
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    $("error").textContent = "";
  } catch (e) { $("error").textContent = e.message; }
}

// --- history: GET /metric/{key}/series over the chosen range ---------------------------------------------------
let historyShown = null;

// Lines through the points that have a value (a null breaks the line).
function pathOf(points, x, y) {
  let d = "", open = false;
  points.forEach((v, i) => {
    if (v === null || v === undefined) { open = false; return; }
    d += `${open ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    open = true;
  });
  return d;
}

// The p50-p99 band: one closed shape per run of points that have both.
function bandOf(points, x, y) {
  const runs = [[]];
  points.forEach((p, i) => {
    if (p.quantiles && p.quantiles["0.5"] !== null && p.quantiles["0.99"] !== null) runs[runs.length - 1].push(i);
    else if (runs[runs.length - 1].length) runs.push([]);
  });
  return runs.filter((r) => r.length).map((r) => {
    const upper = r.map((i) => `${x(i).toFixed(1)},${y(points[i].quantiles["0.99"]).toFixed(1)}`);
    const lower = r.slice().reverse().map((i) => `${x(i).toFixed(1)},${y(points[i].quantiles["0.5"]).toFixed(1)}`);
    return `M${upper.join("L")}L${lower.join("L")}Z`;
  }).join("");
}

function drawHistory(answer) {
  historyShown = answer;
  const points = answer.points, withBand = points.some((p) => p.quantiles);
  const W = Math.round($("history").getBoundingClientRect().width) || 900, H = 240, left = 50, bottom = 20, top = 10;
  $("history").setAttribute("viewBox", `0 0 ${W} ${H}`);
  const shown = points.flatMap((p) => [p.mean, ...(withBand ? [p.quantiles["0.5"], p.quantiles["0.99"]] : [])])
    .filter((v) => v !== null);
  const max = Math.max(1, ...shown), min = Math.min(0, ...shown);
  const y = (v) => top + (H - top - bottom) * (max - v) / (max - min);
  const x = (i) => left + (W - left) * (i + 0.5) / Math.max(1, points.length);
  const nodes = [el("line", {x1: left, x2: W, y1: y(0), y2: y(0)}),
    el("text", {x: 2, y: y(max) + 4}, Number(max.toPrecision(4)).toLocaleString()),
    el("text", {x: 2, y: y(min) + 4}, Number(min.toPrecision(4)).toLocaleString())];
  if (withBand) {
    nodes.push(el("path", {d: bandOf(points, x, y), class: "band"}));
    nodes.push(el("path", {d: pathOf(points.map((p) => p.quantiles["0.5"]), x, y), class: "p50"}));
  }
  nodes.push(el("path", {d: pathOf(points.map((p) => p.mean), x, y), class: "mean"}));
  // A label at the first point and then every LABEL_PX * 2 pixels or more: hours and minutes, or the day.
  const daily = answer.step >= 86400, every = Math.max(1, Math.ceil((LABEL_PX * 2) / ((W - left) / points.length)));
  points.forEach((p, i) => {
    if (i % every === 0) nodes.push(el("text", {x: x(i) - 14, y: H - 4}, daily ? p.at.slice(5, 10) : p.at.slice(11, 16)));
  });
  $("history").replaceChildren(...nodes);
  $("band-key").hidden = !withBand;
  $("history-count").textContent = points.reduce((n, p) => n + p.count, 0).toLocaleString();
}

async function refreshHistory() {
  if (!$("key").checkValidity()) return;
  const [span, step] = $("range").value.split(",").map(Number);
  const to = Math.ceil(Date.now() / (step * 1000)) * step * 1000;  // through the current bucket
  const from = to - span * 1000;
  const q = $("band").checked ? "&q=0.5,0.99" : "";
  const iso = (ms) => new Date(ms).toISOString();
  try {
    drawHistory(await call("GET", `metric/${key()}/series?from=${iso(from)}&to=${iso(to)}&step=${step}${q}`));
    $("error").textContent = "";
  } catch (e) { $("error").textContent = e.message; }
}

$("range").addEventListener("change", refreshHistory);
$("band").addEventListener("change", refreshHistory);

$("post").addEventListener("submit", async (event) => {
  event.preventDefault();
  const value = Number($("value").value);
  if ($("value").value.trim() === "" || !Number.isFinite(value)) { $("error").textContent = "Enter a number."; return; }
  // The field is free for the next value at once; a failed send puts its text back unless something new was typed.
  const sent = $("value").value; $("value").value = "";
  try { await call("POST", `metric/${key()}`, {value}); await Promise.all([refresh(), refreshHistory()]); }
  catch (e) { if ($("value").value === "") $("value").value = sent; $("error").textContent = e.message; }
});
$("choose").addEventListener("submit", (event) => { event.preventDefault(); refresh(); refreshHistory(); });
$("key").addEventListener("change", refresh);
$("key").addEventListener("change", refreshHistory);
window.addEventListener("resize", () => { if (drawn) draw(drawn); if (historyShown) drawHistory(historyShown); });
refresh();
refreshHistory();
setInterval(refresh, 5000);
setInterval(refreshHistory, 30000);
// The keys that hold values: each a link to this page for it.
livestats.names("metric", "metrics", "key",
  {prefix: "keys-prefix", list: "keys-list", more: "more-keys", form: "keys-filter"},
  (name) => `?key=${encodeURIComponent(name)}`);
