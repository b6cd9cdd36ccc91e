"use strict";
const $ = (id) => document.getElementById(id);
const CHUNK = 500;

const call = livestats.call;

function td(text, cls) { const cell = document.createElement("td"); cell.textContent = text; if (cls) cell.className = cls; return cell; }

let selected = null;  // the path whose hits per day are shown

// A path may wrap after each slash (a <wbr> there), so a narrow screen breaks it between segments, not inside a word.
// It is a button: picking it shows its hits per day.
function pathCell(path) {
  const cell = td("", "path");
  const button = document.createElement("button");
  button.type = "button";
  const pieces = path.split(/(?<=\/)/);
  pieces.forEach((piece, i) => {
    button.append(document.createTextNode(piece));
    if (i < pieces.length - 1) button.append(document.createElement("wbr"));
  });
  button.addEventListener("click", () => { selected = path; $("history").hidden = false; showHistory(); refresh(); });
  cell.append(button);
  return cell;
}

// Today (UTC) and the days before it, as YYYY-MM-DD: the days the service counts in.
function utcDay(daysBefore) { return new Date(Date.now() - daysBefore * 86400000).toISOString().slice(0, 10); }

async function showHistory() {
  if (!selected) return;
  const n = Number($("history-days").value);
  const query = new URLSearchParams({path: selected, from: utcDay(n - 1), to: utcDay(0)});
  try {
    const series = await call("GET", `stats/series?${query}`);
    $("history-path").textContent = series.path;
    const busiest = series.days.reduce((a, b) => (b.count > a.count ? b : a), series.days[0]);
    const top = Math.max(1, busiest.count);
    $("history-bars").replaceChildren(...series.days.map((d) => {
      const bar = document.createElement("div");
      bar.title = `${d.day}: ${d.count.toLocaleString()}`;
      bar.dataset.day = d.day;
      bar.dataset.count = String(d.count);
      if (d.count === 0) bar.className = "zero";
      bar.style.height = `${Math.max(d.count ? 2 : 0, 100 * d.count / top)}%`;
      return bar;
    }));
    $("history-total").textContent = series.days.reduce((sum, d) => sum + d.count, 0).toLocaleString();
    $("history-busiest").textContent = busiest.count ? `${busiest.day} (${busiest.count.toLocaleString()})` : "—";
    $("history-first").textContent = series.days[0].day;
    $("history-last").textContent = series.days[series.days.length - 1].day;
    $("history-error").textContent = "";
  } catch (err) {
    $("history-error").textContent = err.message;
  }
}

async function refresh() {
  const day = $("day").value;
  const query = `?limit=${$("limit").value}` + (day ? `&day=${day}` : "");
  try {
    const stats = await call("GET", `stats/${query}`);
    $("total").textContent = stats.total_hits.toLocaleString();
    $("distinct").textContent = stats.distinct_paths.toLocaleString();
    const top = stats.paths.length ? stats.paths[0].count : 1;
    const rows = stats.paths.map((p, i) => {
      const tr = document.createElement("tr");
      tr.append(td(String(i + 1)), pathCell(p.path), td(p.count.toLocaleString()));
      if (p.path === selected) tr.className = "selected";
      const bar = td("", "bar"); const fill = document.createElement("div");
      fill.style.width = `${Math.max(1, 100 * p.count / top)}%`; bar.appendChild(fill); tr.appendChild(bar);
      return tr;
    });
    $("ranking").replaceChildren(...rows);
    $("fresh").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    $("fresh").textContent = `refresh failed: ${err.message}`;
  }
}

$("test").addEventListener("submit", async (event) => {
  event.preventDefault();
  const total = Number($("n").value);
  $("error").textContent = "";
  if (!Number.isInteger(total) || total < 1 || total > 10000) { $("error").textContent = "n must be an integer from 1 to 10000"; return; }
  $("run").disabled = true;
  const bar = $("progress"); bar.hidden = false; bar.max = total; bar.value = 0;
  const started = performance.now();
  let pool = null, counted = 0, requests = 0;
  const show = (note) => {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    $("status").innerHTML = "";
    const line = document.createElement("div");
    line.textContent = `${counted.toLocaleString()} / ${total.toLocaleString()} counted · ${seconds} s` + (note ? ` · ${note}` : "");
    $("status").appendChild(line);
    if (pool) {
      const poolLine = document.createElement("div");
      poolLine.append("pool: ");
      pool.forEach((s) => { const c = document.createElement("code"); c.textContent = s; poolLine.append(c, " "); });
      $("status").appendChild(poolLine);
    }
  };
  const ticker = setInterval(() => show("running…"), 250);
  try {
    while (counted < total) {
      const n = Math.min(CHUNK, total - counted);
      const result = await call("POST", `test/${n}/`, pool ? {pool} : {});
      pool = result.pool;
      counted += result.counted;
      requests += 1;
      bar.value = counted;
      if (result.counted < n) throw new Error(`only ${result.counted} of ${n} hits were counted`);
      refresh();
    }
    clearInterval(ticker);
    show(`done in ${requests} request${requests === 1 ? "" : "s"}`);
  } catch (err) {
    clearInterval(ticker);
    show("stopped");
    $("error").textContent = err.message;
  } finally {
    $("run").disabled = false;
  }
});

$("day").addEventListener("change", refresh);
$("history-days").addEventListener("change", showHistory);
$("limit").addEventListener("change", refresh);
refresh();
setInterval(() => { refresh(); showHistory(); }, 2000);
