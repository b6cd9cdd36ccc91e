"use strict";
const $ = (id) => document.getElementById(id);
// A figure to read: whole numbers in full, others to 4 significant digits (quantiles are within 1% anyway), very
// large or small ones in exponent form; `exact` is the value as sent, for the hover title.
function fmt(x) {
  if (x === null || x === undefined) return "—";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return x.toLocaleString();
  const size = Math.abs(x);
  if (size >= 1e-3 && size < 1e9) return x.toLocaleString(undefined, { maximumSignificantDigits: 4 });
  return x.toPrecision(4);
}
const exact = (x) => typeof x === "number" ? String(x) : "";
// A time in the reader's zone, the zone named ("05/12/2026, 14:05:09 GMT+2"); the ISO time sent is the title.
const localTime = (iso) => iso ? new Date(iso).toLocaleString(undefined, { timeZoneName: "short" }) : "—";
// Cells are [text, title] pairs or plain text.
const cell = (content) => {
  const td = document.createElement("td");
  const [text, title] = Array.isArray(content) ? content : [content, ""];
  td.textContent = text; if (title) td.title = title; return td;
};
const num = (x) => [fmt(x), exact(x)];
const time = (iso) => [localTime(iso), iso || ""];
const row = (cells) => { const tr = document.createElement("tr"); cells.forEach((c) => tr.appendChild(cell(c))); return tr; };
let sessionsCursor = null;

function stream() { return encodeURIComponent($("stream").value.trim()); }
// A link can name the stream: /?stream=cpu
const linked = new URLSearchParams(location.search).get("stream");
if (linked) $("stream").value = linked;

const call = livestats.call;

function showFigures(s) {
  $("session").textContent = s.session ? `session ${s.session}` : "no values yet";
  const names = ["count", "mean", "stddev", "sample_stddev", "variance", "min", "max", "sum"];
  // Quantiles within 1% relative error (null until the session holds values).
  const figures = names.map((n) => [n.replace("_", " "), s[n]]).concat(
    ["p50", "p90", "p95", "p99"].map((p) => [p, s.quantiles ? s.quantiles[p] : null]));
  $("figures").replaceChildren(...figures.map(([label, value]) => {
    const div = document.createElement("div"); div.className = "figure"; div.dataset.figure = label;
    const b = document.createElement("b"); b.textContent = fmt(value); b.title = exact(value);
    div.append(label, b); return div;
  }));
  $("updated").textContent = s.updated_at ? `updated ${localTime(s.updated_at)}` + (s.started_by ? `, opened by ${s.started_by}` : "") : "";
  $("updated").title = s.updated_at || "";
}

const SVG = "http://www.w3.org/2000/svg";
const BARS = 30;
function svgEl(name, attrs, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

// Bars of equal width from the session's min to its max; each sketch bin (1% wide) counts in the bar holding its
// middle. Drawn in the SVG's own pixels so labels keep their size on a phone.
function drawHistogram(h) {
  const svg = $("histogram");
  if (!h.bins.length) { svg.replaceChildren(); $("histogram-note").textContent = "no values yet"; return; }
  const W = Math.round(svg.getBoundingClientRect().width) || 600, H = 160, bottom = 18, top = 4;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const low = h.bins[0].low, high = h.bins[h.bins.length - 1].high, span = high - low;
  const bars = span > 0 ? BARS : 1, counts = new Array(bars).fill(0);
  for (const b of h.bins) {
    const at = span > 0 ? Math.min(bars - 1, Math.floor(((b.low + b.high) / 2 - low) / span * bars)) : 0;
    counts[at] += b.count;
  }
  const most = Math.max(...counts), step = W / bars, nodes = [];
  counts.forEach((n, i) => {
    if (!n) return;
    const height = Math.max(1, (H - top - bottom) * n / most), from = low + span * i / bars, to = low + span * (i + 1) / bars;
    const bar = svgEl("rect", { x: i * step + 1, y: H - bottom - height, width: Math.max(1, step - 2), height, "data-count": n });
    bar.appendChild(svgEl("title", {}, `${fmt(from)} to ${fmt(to)}: ${n.toLocaleString()}`));
    nodes.push(bar);
  });
  nodes.push(svgEl("text", { x: 0, y: H - 4 }, fmt(low)), svgEl("text", { x: W, y: H - 4, "text-anchor": "end" }, fmt(high)));
  svg.replaceChildren(...nodes);
  $("histogram-note").textContent = `${h.count.toLocaleString()} values in ${bars} bars; each value placed within 1%`;
}

async function refresh() {
  if (!$("stream").checkValidity()) return;
  try {
    showFigures(await call("GET", `streams/${stream()}`));
    drawHistogram(await call("GET", `streams/${stream()}/histogram`));
    const audit = await call("GET", `streams/${stream()}/values?limit=20`);
    $("audit").replaceChildren(...audit.values.map((v) => row([num(v.value), v.user || "—", time(v.at), v.session])));
  } catch (e) { $("error").textContent = e.message; }
}

async function loadSessions(more) {
  const query = more && sessionsCursor ? `?cursor=${sessionsCursor}` : "";
  const page = await call("GET", `streams/${stream()}/sessions${query}`);
  const rows = page.sessions.map((s) => row([s.session, num(s.count), num(s.mean), num(s.stddev), num(s.quantiles && s.quantiles.p50), num(s.quantiles && s.quantiles.p99), time(s.started_at), time(s.closed_at), s.closed_by || "—"]));
  if (more) $("sessions").append(...rows); else $("sessions").replaceChildren(...rows);
  sessionsCursor = page.cursor; $("more-sessions").hidden = !page.cursor;
}

$("submit").addEventListener("submit", async (event) => {
  event.preventDefault(); $("error").textContent = "";
  const parts = $("numbers").value.split(/[\s,;]+/).filter(Boolean);
  const values = parts.map(Number);
  if (!values.length || values.some((v) => !Number.isFinite(v))) { $("error").textContent = "Enter numbers separated by commas or spaces."; return; }
  const body = {values}; const user = $("user").value.trim(); if (user) body.user = user;
  // The field is free for the next numbers at once; a failed send puts its text back unless something new was typed.
  const sent = $("numbers").value; $("numbers").value = "";
  try { showFigures(await call("POST", `streams/${stream()}/values`, body)); refresh(); loadStreams(false); }
  catch (e) { if ($("numbers").value === "") $("numbers").value = sent; $("error").textContent = e.message; }
});

$("reset").addEventListener("click", async () => {
  $("error").textContent = "";
  const user = $("user").value.trim();
  try { await call("POST", `streams/${stream()}/reset`, user ? {user} : {}); await refresh(); await loadSessions(false); }
  catch (e) { $("error").textContent = e.message; }
});

$("more-sessions").addEventListener("click", () => loadSessions(true));
$("stream").addEventListener("change", () => { refresh(); loadSessions(false); });
refresh(); loadSessions(false);
setInterval(refresh, 2000);
// The streams that exist: each a link to this page for it.
const loadStreams = livestats.names("streams", "streams", "stream",
  {prefix: "streams-prefix", list: "streams-list", more: "more-streams", form: "streams-filter"},
  (name) => `?stream=${encodeURIComponent(name)}`);
