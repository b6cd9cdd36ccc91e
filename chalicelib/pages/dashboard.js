// The admin dashboard: polls /dashboard/data every second with If-None-Match (304 when nothing changed),
// renders the summary (with an SVG pie of the gender ratio) and a sortable, pageable table of responses.
"use strict";
(() => {
  // URLs are relative to the service's root, wherever it is mounted (a stage, a base path): this script is in <root>/assets/.
  const ROOT = new URL("..", document.currentScript.src);
  const POLL_MS = 1000;
  const TOKEN_KEY = "livestats.admin-token"; // sessionStorage: gone when the tab closes
  const COLUMNS_KEY = "livestats.dashboard.columns";
  const COLUMNS = [
    // The default sort column comes right after the name, so it is on screen without scrolling the table sideways.
    { key: "name", label: "Name" },
    { key: "updated_at", label: "Last change" },
    { key: "email", label: "Email", unique: true },
    { key: "age", label: "Age" },
    { key: "about", label: "About me", long: true },
    { key: "address", label: "Address", long: true },
    { key: "gender", label: "Gender" },
    { key: "book", label: "Favourite book" },
    { key: "colours", label: "Favourite colours" },
    { key: "completed", label: "Completed" },
    { key: "step", label: "Step", hidden: true },
    { key: "created_at", label: "Started", hidden: true },
  ];
  const GENDER_COLOURS = { "female": "#d6457a", "male": "#3451b2", "non-binary": "#e0a526", "prefer not to say": "#8a94a8" };
  // One label per value, used alike by the table, the legend, the tooltip and the top 3.
  const GENDER_LABELS = { "female": "Female", "male": "Male", "non-binary": "Non-binary", "prefer not to say": "Prefer not to say" };
  const colourLabel = (colour) => colour[0].toUpperCase() + colour.slice(1);

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY);
  let sort = "updated_at", order = "desc", page = 1, size = 25;
  let visible = readColumns();
  let etag = null, data = null, paused = false;
  let timer = null, busy = false, again = false;
  let selectedGender = null;
  let seen = new Map(); // id -> updated_at at the last render: changed rows flash
  const opened = new Set(); // "id column" of the cells shown in full, kept across renders

  function readColumns() {
    try {
      const stored = JSON.parse(localStorage.getItem(COLUMNS_KEY) || "null");
      if (Array.isArray(stored)) return new Set(stored.filter((k) => COLUMNS.some((c) => c.key === k)));
    } catch (e) { /* default below */ }
    return new Set(COLUMNS.filter((c) => !c.hidden).map((c) => c.key));
  }

  // --- signing in ---------------------------------------------------------------
  function showLogin(message) {
    $("board").hidden = true; $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").focus();
    $("token").select(); // a refused token stays in the field, ready to be corrected
  }
  function signOut(message) {
    token = null; sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer); etag = null; data = null;
    showLogin(message);
  }
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token = $("token").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("login").hidden = true; $("board").hidden = false;
    kick();
  });
  $("sign-out").addEventListener("click", () => signOut(""));

  // --- polling ------------------------------------------------------------------
  function liveStatus(text, on) { const s = $("live-status"); s.textContent = text; s.classList.toggle("on", !!on); }

  function kick() { if (busy) { again = true; return; } clearTimeout(timer); tick(); }

  async function tick() {
    busy = true;
    try { await load(); } catch (e) { liveStatus("Connection lost — retrying…", false); }
    busy = false;
    if (again) { again = false; tick(); return; }
    if (!paused && token) timer = setTimeout(tick, POLL_MS);
  }

  async function load() {
    if (!token) return;
    const query = new URLSearchParams({ sort, order, size: String(size), page: String(page) });
    const headers = { Authorization: `Bearer ${token}` };
    if (etag) headers["If-None-Match"] = etag; // the ETag names the query too: another query gets a 200
    const response = await fetch(new URL(`dashboard/data?${query}`, ROOT), { headers, cache: "no-store" });
    if (response.status === 304) { liveStatus(paused ? "Paused" : "Live", !paused); return; }
    if (response.status === 401) { signOut("The admin token is not valid."); return; }
    const body = await response.json();
    if (!response.ok) {
      $("board-error").textContent = body.error ? body.error.message : response.statusText;
      return;
    }
    $("board-error").textContent = "";
    $("token").value = ""; // accepted: nothing to correct, and no secret left in the form
    if (body.page > body.pages) { page = body.pages; again = true; return; } // e.g. after deletes
    etag = response.headers.get("ETag");
    data = body;
    render();
    liveStatus(paused ? "Paused" : "Live", !paused);
  }

  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").textContent = paused ? "Resume live updates" : "Pause live updates";
    liveStatus(paused ? "Paused" : "Live", !paused);
    if (paused) clearTimeout(timer); else kick();
  });

  // --- rendering ----------------------------------------------------------------
  function render() {
    renderSummary(data.summary);
    renderTable(data.responses);
    $("page-info").textContent = `Page ${data.page} of ${data.pages} · ${data.total.toLocaleString()} responses`;
    $("prev-page").disabled = data.page <= 1;
    $("next-page").disabled = data.page >= data.pages;
    $("window-note").textContent = data.truncated
      ? `The table covers the newest ${data.window.toLocaleString()} responses; the summary covers all of them.` : "";
  }

  function renderSummary(s) {
    const responses = $("sum-responses");
    responses.textContent = s.responses_display;
    responses.title = `Exactly ${s.responses.toLocaleString()} response${s.responses === 1 ? "" : "s"}`;
    responses.dataset.exact = String(s.responses);
    $("sum-completed").textContent = s.completed.toLocaleString();
    $("sum-age").textContent = s.average_age === null ? "—" : s.average_age.toFixed(1);
    renderTopColours(s.top_colours);
    const updated = $("sum-updated");
    updated.textContent = s.updated_at ? localTime(s.updated_at) : "—";
    updated.title = s.updated_at || "";
    renderPie(s.genders);
  }

  // Competition ranking: equal counts share a place (1, 1, 3). The service lists equal counts by name and stops
  // at 3, so a full list says that a colour tied with the last one may be left out.
  function renderTopColours(top) {
    let place = 0;
    $("sum-colours").replaceChildren(...top.map(({ colour, count }, i) => {
      if (i === 0 || count !== top[i - 1].count) place = i + 1;
      const li = document.createElement("li");
      li.value = place;
      li.dataset.colour = colour;
      const swatch = document.createElement("span"); swatch.className = "swatch"; swatch.style.background = colour;
      const label = document.createElement("span"); label.className = "label"; label.textContent = colourLabel(colour);
      li.append(swatch, label, ` (${count})`);
      return li;
    }));
    $("sum-colours").hidden = top.length === 0;
    $("sum-colours-empty").hidden = top.length > 0;
    $("sum-colours-note").hidden = top.length < 3;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) { const el = document.createElementNS(SVG, tag); for (const k in attrs) el.setAttribute(k, attrs[k]); return el; }

  function renderPie(genders) {
    const pie = $("pie"), legend = $("pie-legend");
    const total = Object.values(genders).reduce((a, b) => a + b, 0);
    const entries = Object.entries(genders);
    pie.replaceChildren(); legend.replaceChildren();
    if (total === 0) {
      pie.append(svg("circle", { r: 100, fill: "#e3e7ef" }));
      $("pie-detail").textContent = "No gender answers yet.";
      return;
    }
    let angle = -Math.PI / 2;
    for (const [gender, count] of entries) {
      if (count > 0) {
        const sweep = (count / total) * 2 * Math.PI;
        let slice;
        if (count === total) slice = svg("circle", { r: 100 });
        else {
          const [x1, y1] = [100 * Math.cos(angle), 100 * Math.sin(angle)];
          const [x2, y2] = [100 * Math.cos(angle + sweep), 100 * Math.sin(angle + sweep)];
          slice = svg("path", { d: `M0 0L${x1.toFixed(3)} ${y1.toFixed(3)}A100 100 0 ${sweep > Math.PI ? 1 : 0} 1 ${x2.toFixed(3)} ${y2.toFixed(3)}Z` });
        }
        slice.setAttribute("fill", GENDER_COLOURS[gender]);
        slice.setAttribute("class", "slice");
        slice.dataset.gender = gender;
        slice.setAttribute("tabindex", "0");
        const title = svg("title", {}); title.textContent = `${GENDER_LABELS[gender]}: ${pct(count, total)}`;
        slice.append(title);
        slice.addEventListener("mouseenter", (e) => hover(gender, e));
        slice.addEventListener("mousemove", (e) => moveTip(e));
        slice.addEventListener("mouseleave", () => hover(null));
        slice.addEventListener("click", () => select(gender));
        slice.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") select(gender); });
        pie.append(slice);
        angle += sweep;
      }
      const li = document.createElement("li");
      li.dataset.gender = gender;
      const swatch = document.createElement("span"); swatch.className = "swatch"; swatch.style.background = GENDER_COLOURS[gender];
      const label = document.createElement("span"); label.className = "label"; label.textContent = GENDER_LABELS[gender];
      li.append(swatch, label, ` — ${pct(count, total)}`);
      li.addEventListener("mouseenter", () => hover(gender));
      li.addEventListener("mouseleave", () => hover(null));
      li.addEventListener("click", () => select(gender));
      legend.append(li);
    }
    showDetail(genders, total);
  }
  function pct(count, total) { return `${((100 * count) / total).toFixed(1)}%`; }

  function hover(gender, event) {
    document.querySelectorAll("#pie .slice").forEach((s) => {
      s.classList.toggle("hot", s.dataset.gender === gender);
      s.classList.toggle("dim", gender !== null && s.dataset.gender !== gender);
    });
    const tip = $("pie-tooltip");
    if (gender === null || !data) { tip.hidden = true; return; }
    const g = data.summary.genders, total = Object.values(g).reduce((a, b) => a + b, 0);
    tip.textContent = `${GENDER_LABELS[gender]}: ${pct(g[gender], total)}`;
    tip.hidden = false;
    if (event) moveTip(event);
  }
  function moveTip(event) {
    const tip = $("pie-tooltip"), box = tip.parentElement.parentElement.getBoundingClientRect();
    tip.style.left = `${event.clientX - box.left + 12}px`;
    tip.style.top = `${event.clientY - box.top + 12}px`;
  }
  function select(gender) {
    selectedGender = selectedGender === gender ? null : gender;
    if (data) showDetail(data.summary.genders, Object.values(data.summary.genders).reduce((a, b) => a + b, 0));
  }
  function showDetail(genders, total) {
    document.querySelectorAll("#pie .slice, #pie-legend li").forEach((el) => el.classList.toggle("selected", el.dataset.gender === selectedGender));
    $("pie-detail").textContent = selectedGender
      ? `${GENDER_LABELS[selectedGender]}: ${genders[selectedGender]} of ${total} answers (${pct(genders[selectedGender], total)})`
      : `${total} answers. Click a slice or a legend entry for its count.`;
  }

  function renderHead() {
    const cells = COLUMNS.filter((c) => visible.has(c.key)).map((c) => {
      const th = document.createElement("th");
      th.dataset.column = c.key;
      th.setAttribute("aria-sort", c.key === sort ? (order === "asc" ? "ascending" : "descending") : "none");
      const button = document.createElement("button");
      button.type = "button"; button.textContent = c.label;
      button.title = `Sort by ${c.label.toLowerCase()}`;
      button.addEventListener("click", () => {
        if (sort === c.key) order = order === "asc" ? "desc" : "asc";
        else { sort = c.key; order = c.key === "updated_at" || c.key === "created_at" ? "desc" : "asc"; }
        page = 1; renderHead(); kick();
      });
      th.append(button);
      if (c.unique) {
        const mark = document.createElement("span");
        mark.className = "unique"; mark.textContent = "unique";
        mark.title = "Each address answers once (compared without case or surrounding spaces)";
        th.append(mark);
      }
      return th;
    });
    const actions = document.createElement("th"); actions.textContent = "";
    $("head").replaceChildren(...cells, actions);
  }

  // The reader's own time, its zone named ("14:05:09 GMT+2"): a bare time says nothing of which zone it is in.
  function localTime(iso) { return new Date(iso).toLocaleString(undefined, { timeZoneName: "short" }); }

  function cellText(column, value) {
    if (value === null || value === undefined) return "—";
    if (column === "completed") return value ? "✓ yes" : "no";
    if (column === "gender") return GENDER_LABELS[value] || String(value);
    if (column === "colours") return value.length ? value.map(colourLabel).join(", ") : "—";
    if (column === "created_at" || column === "updated_at") return localTime(value);
    return String(value);
  }

  function renderTable(rows) {
    const fresh = new Map();
    $("rows").replaceChildren(...rows.map((row) => {
      const tr = document.createElement("tr");
      tr.dataset.id = row.id;
      if (seen.size && seen.get(row.id) !== row.updated_at) tr.className = "fresh";
      fresh.set(row.id, row.updated_at);
      for (const c of COLUMNS.filter((col) => visible.has(col.key))) {
        const td = document.createElement("td");
        td.dataset.column = c.key;
        if (c.long) td.className = "long";
        const cell = document.createElement("div");
        cell.className = opened.has(`${row.id} ${c.key}`) ? "cell open" : "cell";
        if (c.key === "email" && row.email) {
          const a = document.createElement("a"); a.href = `mailto:${row.email}`; a.textContent = row.email; cell.append(a);
        } else cell.textContent = cellText(c.key, row[c.key]);
        td.append(cell);
        tr.append(td);
      }
      const td = document.createElement("td");
      const del = document.createElement("button");
      del.type = "button"; del.className = "danger delete"; del.textContent = "Delete";
      del.addEventListener("click", () => remove(row));
      td.append(del); tr.append(td);
      return tr;
    }));
    seen = fresh;
    addToggles();
    if (!rows.length) {
      const tr = document.createElement("tr"), td = document.createElement("td");
      td.colSpan = visible.size + 1; td.textContent = "No responses yet."; tr.append(td);
      $("rows").append(tr);
    }
  }

  // A cell taller than its cap gets "Show all"; an opened one keeps "Show less" (measured after layout).
  function addToggles() {
    for (const cell of $("rows").querySelectorAll(".cell")) {
      const open = cell.classList.contains("open");
      if (!open && cell.scrollHeight <= cell.clientHeight + 1) continue;
      const td = cell.parentElement, key = `${td.parentElement.dataset.id} ${td.dataset.column}`;
      const toggle = document.createElement("button");
      toggle.type = "button"; toggle.className = "link toggle";
      toggle.textContent = open ? "Show less" : "Show all";
      toggle.setAttribute("aria-expanded", String(open));
      toggle.addEventListener("click", () => {
        const now = cell.classList.toggle("open");
        if (now) opened.add(key); else opened.delete(key);
        toggle.textContent = now ? "Show less" : "Show all";
        toggle.setAttribute("aria-expanded", String(now));
      });
      td.append(toggle);
    }
  }

  async function remove(row) {
    const who = row.name ? `from ${row.name}` : "without a name";
    if (!window.confirm(`Delete the response ${who}? This cannot be undone.`)) return;
    const response = await fetch(new URL(`dashboard/responses/${encodeURIComponent(row.id)}`, ROOT), {
      method: "DELETE", headers: { Authorization: `Bearer ${token}` }, cache: "no-store",
    });
    if (response.status === 401) { signOut("The admin token is not valid."); return; }
    if (!response.ok && response.status !== 404) {
      const body = await response.json().catch(() => ({}));
      $("board-error").textContent = body.error ? body.error.message : "Could not delete the response.";
    }
    kick();
  }

  function renderColumnChoices() {
    $("column-choices").replaceChildren(...COLUMNS.map((c) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox"; box.value = c.key; box.checked = visible.has(c.key);
      box.addEventListener("change", () => {
        if (box.checked) visible.add(c.key); else visible.delete(c.key);
        localStorage.setItem(COLUMNS_KEY, JSON.stringify([...visible]));
        renderHead();
        if (data) renderTable(data.responses);
      });
      label.append(box, ` ${c.label}`);
      return label;
    }));
  }

  $("prev-page").addEventListener("click", () => { if (page > 1) { page -= 1; kick(); } });
  $("next-page").addEventListener("click", () => { if (data && page < data.pages) { page += 1; kick(); } });
  $("page-size").addEventListener("change", () => { size = Number($("page-size").value); page = 1; kick(); });

  renderColumnChoices();
  renderHead();
  if (token) { $("board").hidden = false; kick(); } else showLogin("");
})();
