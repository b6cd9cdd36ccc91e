// The survey: 4 steps, answers saved as the person types (debounced) and on every step change.
// The response's id and secret token stay in localStorage, so a closed tab resumes where it was.
"use strict";
(() => {
  // URLs are relative to the service's root, wherever it is mounted (a stage, a base path): this script is in <root>/assets/.
  const ROOT = new URL("..", document.currentScript.src);
  const STORAGE_KEY = "livestats.survey";
  const DEBOUNCE_MS = 400;
  const LAST = 4;
  const STEP_FIELDS = { 1: ["name", "email"], 2: ["age", "about"], 3: ["address", "gender"], 4: ["book", "colours"] };
  const FIELDS = Object.values(STEP_FIELDS).flat();
  const REQUIRED = ["name", "email", "age", "about"];
  const LABELS = { name: "Name", email: "Email", age: "Age", about: "About me" };
  const GENDERS = [["female", "Female"], ["male", "Male"], ["non-binary", "Non-binary"], ["prefer not to say", "Prefer not to say"]];
  const EMAIL_TAKEN = "This email address has already answered the survey. Each email answers once: please use another address.";
  // A 404 for the id and token this browser was given means the response is gone: an admin deleted it.
  const REMOVED = "Your earlier response was removed by the survey's administrator, so this is a fresh start.";
  const REMOVED_WHILE_OPEN = "Your earlier response was removed by the survey's administrator; "
    + "the answers on this page were saved again as a new response.";
  const PALETTE = ["red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white"];

  const $ = (id) => document.getElementById(id);
  let saved = readSaved(); // {id, token} of this browser's response, or null
  let step = 1;
  const dirty = new Set(); // fields changed since they were last sent
  const invalid = new Map(); // field -> the server's message, until the person edits the field
  let timer = null;
  let chain = Promise.resolve(); // saves run one after another, in order

  function readSaved() {
    try {
      const value = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
      return value && typeof value.id === "string" && typeof value.token === "string" ? value : null;
    } catch (e) { return null; }
  }
  function remember(id, token) { saved = { id, token }; localStorage.setItem(STORAGE_KEY, JSON.stringify(saved)); }
  function forget() { saved = null; localStorage.removeItem(STORAGE_KEY); }

  // --- the form ---------------------------------------------------------------
  function build() {
    const age = $("age");
    for (let n = 3; n <= 125; n++) age.add(new Option(String(n), String(n)));
    $("gender-choices").replaceChildren(...GENDERS.map(([value, label]) => choice("radio", "gender", value, label)));
    $("colour-choices").replaceChildren(...PALETTE.map((c) => {
      const item = choice("checkbox", "colours", c, c[0].toUpperCase() + c.slice(1));
      const swatch = document.createElement("span"); swatch.className = "swatch"; swatch.style.background = c;
      item.insertBefore(swatch, item.lastChild);
      return item;
    }));
  }
  function choice(type, name, value, text) {
    const label = document.createElement("label");
    const input = document.createElement("input");
    input.type = type; input.name = name; input.value = value;
    label.append(input, document.createTextNode(text));
    return label;
  }

  function value(field) {
    const form = $("form");
    if (field === "age") return $("age").value === "" ? null : Number($("age").value);
    if (field === "gender") { const c = form.querySelector('input[name="gender"]:checked'); return c ? c.value : null; }
    if (field === "colours") return [...form.querySelectorAll('input[name="colours"]:checked')].map((c) => c.value);
    return $(field).value;
  }
  function hasValue(field) {
    const v = value(field);
    return v !== null && v !== "" && !(Array.isArray(v) && v.length === 0) && !(typeof v === "string" && v.trim() === "");
  }
  function setValue(field, v) {
    const form = $("form");
    if (field === "gender") form.querySelectorAll('input[name="gender"]').forEach((r) => { r.checked = r.value === v; });
    else if (field === "colours") form.querySelectorAll('input[name="colours"]').forEach((c) => { c.checked = (v || []).includes(c.value); });
    else $(field).value = v === null || v === undefined ? "" : String(v);
  }
  function stepOf(field) { return Number(Object.keys(STEP_FIELDS).find((s) => STEP_FIELDS[s].includes(field))) || step; }

  function showError(field, message) {
    const box = $("error-" + field) || $("error-form");
    box.textContent = message;
    if (box.parentElement.classList.contains("field")) box.parentElement.classList.add("invalid");
  }
  function clearError(field) {
    const box = $("error-" + field);
    if (box) { box.textContent = ""; box.parentElement.classList.remove("invalid"); }
  }
  function status(text) { $("save-status").textContent = text; }
  function notice(text) { $("notice").textContent = text; $("notice").hidden = !text; }

  function show(section) {
    for (const id of ["loading", "survey", "thanks", "submitted"]) $(id).hidden = id !== section;
    if (section === "thanks" || section === "submitted") notice("");
  }
  function showStep(n) {
    step = n;
    document.querySelectorAll("fieldset[data-step]").forEach((f) => { f.hidden = Number(f.dataset.step) !== n; });
    document.querySelectorAll(".steps li").forEach((li) => li.classList.toggle("done", Number(li.dataset.dot) <= n));
    $("step-label").textContent = `Step ${n} of ${LAST}`;
    $("previous").disabled = n === 1;
    $("next").textContent = n === LAST ? "SUBMIT" : "NEXT";
    $("error-form").textContent = "";
    if (document.body.dataset.ready) notice(""); // a notice is about arriving; moving on dismisses it
    document.body.dataset.step = String(n);
  }
  function updateCounter() { $("about-count").textContent = `${$("about").value.length} / 2000`; }

  // --- talking to the API -------------------------------------------------------
  async function call(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (saved) headers["X-Response-Token"] = saved.token;
    const response = await fetch(new URL(path, ROOT), { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { status: response.status, data };
  }

  function schedule() { clearTimeout(timer); timer = setTimeout(() => save(), DEBOUNCE_MS); }

  // Save what changed (and the current step); `extra` may carry {complete: true}. Resolves to
  // {ok}, {ok: false, field, message}, or {ok: false, submitted: true}.
  function save(extra) {
    clearTimeout(timer); timer = null;
    const run = chain.then(() => sendChanges(extra || {}));
    chain = run.catch(() => {});
    return run;
  }

  async function sendChanges(extra) {
    let fields = [...dirty];
    dirty.clear();
    for (let attempt = 0; attempt < 12; attempt++) {
      const body = { step };
      for (const f of fields) body[f] = value(f);
      let response;
      try {
        if (!saved) {
          if (!fields.length && step === 1 && !extra.complete) { status(""); return { ok: true }; } // nothing to keep yet
          status("Saving…");
          response = await call("POST", "survey/responses", body);
          if (response.status === 201) {
            remember(response.data.id, response.data.token);
            fields.forEach(clearError); fields = [];
            if (!extra.complete) { status("Saved"); return { ok: true }; }
            continue; // now complete it
          }
        } else {
          status("Saving…");
          response = await call("PATCH", `survey/responses/${encodeURIComponent(saved.id)}`, { ...body, ...extra });
          if (response.status === 200) {
            fields.forEach(clearError);
            status(invalid.size ? "Saved, except the answer marked in red" : "Saved");
            return { ok: true, data: response.data };
          }
          if (response.status === 409 && !emailTaken(response)) { status(""); return { ok: false, submitted: true }; }
          if (response.status === 404 || response.status === 401) {
            // The response is gone (deleted by an admin): start a new one with everything shown, and say so.
            forget(); notice(REMOVED_WHILE_OPEN); fields = FIELDS.filter(hasValue); continue;
          }
        }
      } catch (e) {
        response = { status: 0, data: null };
      }
      const error = response.data && response.data.error;
      if ((response.status === 400 && error) || emailTaken(response)) {
        const field = error.field;
        const message = emailTaken(response) ? EMAIL_TAKEN : error.message;
        invalid.set(field, message);
        showError(field, message);
        if (fields.includes(field) && !extra.complete) { fields = fields.filter((f) => f !== field); continue; } // save the rest
        status("");
        return { ok: false, field, message };
      }
      // Network trouble or a server error: keep the changes and try again shortly.
      fields.forEach((f) => dirty.add(f));
      status("Not saved yet — retrying…");
      clearTimeout(timer); timer = setTimeout(() => save(), 2000);
      return { ok: false, message: error ? error.message : "The server could not be reached." };
    }
    status("");
    return { ok: false, message: "Could not save your answers." };
  }

  // One response per email: a start or change to an address already used is 409 email_taken on `email`.
  function emailTaken(response) {
    const error = response.data && response.data.error;
    return response.status === 409 && !!error && error.code === "email_taken" && error.field === "email";
  }

  // --- navigation ---------------------------------------------------------------
  function checkStep(n) {
    let good = true;
    for (const f of STEP_FIELDS[n]) {
      if (invalid.has(f)) { showError(f, invalid.get(f)); good = false; }
      else if (REQUIRED.includes(f) && !hasValue(f)) { showError(f, `${LABELS[f]} is required.`); good = false; }
    }
    return good;
  }

  async function next() {
    $("next").disabled = true;
    try {
      const first = await save(); // the answers of this step, at this step
      if (first.submitted) { show("submitted"); return; }
      if (!checkStep(step)) return;
      if (!first.ok) { $("error-form").textContent = first.message || ""; return; }
      if (step < LAST) {
        showStep(step + 1);
        const moved = await save(); // records the step change, so a reopened page comes back here
        if (moved.submitted) show("submitted");
        return;
      }
      const done = await save({ complete: true });
      if (done.ok) { show("thanks"); return; }
      if (done.submitted) { show("submitted"); return; }
      if (done.field && FIELDS.includes(done.field) && stepOf(done.field) !== step) {
        showStep(stepOf(done.field)); showError(done.field, done.message); save();
      } else if (!done.field) $("error-form").textContent = done.message || "";
    } finally {
      $("next").disabled = false;
    }
  }

  async function previous() {
    if (step === 1) return;
    showStep(step - 1);
    await save();
  }

  function edited(field) {
    invalid.delete(field); clearError(field);
    dirty.add(field);
    schedule();
  }

  // --- start ----------------------------------------------------------------------
  async function init() {
    build();
    for (const f of ["name", "email", "about", "address", "book"]) $(f).addEventListener("input", () => edited(f));
    $("about").addEventListener("input", updateCounter);
    $("age").addEventListener("change", () => edited("age"));
    $("form").addEventListener("change", (event) => {
      const name = event.target.name;
      if (name === "gender" || name === "colours") edited(name);
    });
    $("form").addEventListener("focusout", () => { if (dirty.size) save(); });
    $("form").addEventListener("submit", (event) => event.preventDefault());
    $("next").addEventListener("click", next);
    $("previous").addEventListener("click", previous);
    document.addEventListener("visibilitychange", () => { if (document.visibilityState === "hidden" && dirty.size) save(); });

    let resumeStep = 1;
    let problem = "";
    if (saved) {
      try {
        const response = await call("GET", `survey/responses/${encodeURIComponent(saved.id)}`);
        if (response.status === 200) {
          if (response.data.completed) { show("submitted"); return; }
          for (const f of FIELDS) setValue(f, response.data.answers[f]);
          resumeStep = response.data.step;
          notice(`Welcome back: your answers were restored, and you are on step ${resumeStep} of ${LAST}.`);
        } else if (response.status === 404 || response.status === 401) {
          forget();
          notice(REMOVED);
        } else {
          problem = "Could not load your saved answers; please try again later.";
        }
      } catch (e) {
        problem = "The server could not be reached.";
      }
    }
    updateCounter();
    showStep(resumeStep);
    $("error-form").textContent = problem;
    show("survey");
    document.body.dataset.ready = "true";
  }

  init();
})();
