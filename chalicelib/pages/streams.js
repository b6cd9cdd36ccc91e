"use strict";
const $ = (id) => document.getElementById(id);
const fmt = (x) => x === null || x === undefined ? "—" : (typeof x === "number" ? Number(x.toPrecision(10)).toString() : x);
const cell = (text) => { const td = document.createElement("td"); td.textContent = text; return td; };
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
    const b = document.createElement("b"); b.textContent = fmt(value);
    div.append(label, b); return div;
  }));
  $("updated").textContent = s.updated_at ? `updated ${s.updated_at}` + (s.started_by ? `, opened by ${s.started_by}` : "") : "";
}

async function refresh() {
  if (!$("stream").checkValidity()) return;
  try {
    showFigures(await call("GET", `streams/${stream()}`));
    const audit = await call("GET", `streams/${stream()}/values?limit=20`);
    $("audit").replaceChildren(...audit.values.map((v) => row([fmt(v.value), v.user || "—", v.at, v.session])));
  } catch (e) { $("error").textContent = e.message; }
}

async function loadSessions(more) {
  const query = more && sessionsCursor ? `?cursor=${sessionsCursor}` : "";
  const page = await call("GET", `streams/${stream()}/sessions${query}`);
  const rows = page.sessions.map((s) => row([s.session, s.count, fmt(s.mean), fmt(s.stddev), fmt(s.quantiles && s.quantiles.p50), fmt(s.quantiles && s.quantiles.p99), s.started_at, s.closed_at, s.closed_by || "—"]));
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
  try { showFigures(await call("POST", `streams/${stream()}/values`, body)); refresh(); }
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
