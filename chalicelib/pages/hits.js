"use strict";
const $ = (id) => document.getElementById(id);
const CHUNK = 500;

const call = livestats.call;

function td(text, cls) { const cell = document.createElement("td"); cell.textContent = text; if (cls) cell.className = cls; return cell; }

// A path may wrap after each slash (a <wbr> there), so a narrow screen breaks it between segments, not inside a word.
function pathCell(path) {
  const cell = td("", "path");
  const pieces = path.split(/(?<=\/)/);
  pieces.forEach((piece, i) => {
    cell.append(document.createTextNode(piece));
    if (i < pieces.length - 1) cell.append(document.createElement("wbr"));
  });
  return cell;
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
$("limit").addEventListener("change", refresh);
refresh();
setInterval(refresh, 2000);
