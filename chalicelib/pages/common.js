"use strict";
// Shared by the streams, hits and metrics pages: the service's root wherever it is mounted (a stage, a base path:
// this script is in <root>/assets/), and calls to the API. Where the stage needs a write token (WRITE_ACCESS=token),
// a write answered 401 shows the page's token form; the token is kept for this tab only (sessionStorage) and sent
// with every write after it.
const livestats = (() => {
  const ROOT = new URL("..", document.currentScript.src);
  const TOKEN = "livestats.writeToken";

  function askForToken(message) {
    const form = document.getElementById("write-token");
    form.hidden = false;
    document.getElementById("write-token-reason").textContent = message;
    document.getElementById("write-token-value").focus();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("write-token");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = document.getElementById("write-token-value").value.trim();
      if (!value) return;
      sessionStorage.setItem(TOKEN, value);
      form.hidden = true;
      document.getElementById("write-token-value").value = "";
    });
  });

  async function call(method, path, body) {
    const headers = {"Content-Type": "application/json"};
    const token = sessionStorage.getItem(TOKEN);
    if (token && method !== "GET") headers.Authorization = `Bearer ${token}`;
    const response = await fetch(new URL(path, ROOT), {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) {
      const message = data.error ? data.error.message : response.statusText;
      if (response.status === 401 && method !== "GET") {
        sessionStorage.removeItem(TOKEN);
        askForToken(message);
        throw new Error("This stage needs a write token to change data: enter it above, then try again.");
      }
      throw new Error(message);
    }
    return data;
  }

  // A listing of names (GET /streams, /metric): `ids` names the page's prefix field, list, More button and form;
  // each name is a link made by `href`. A new prefix starts from the first page; More follows the cursor.
  function names(path, listKey, field, ids, href) {
    let cursor = null;
    async function load(more) {
      const prefix = document.getElementById(ids.prefix);
      if (!prefix.checkValidity()) return;
      const query = `?limit=20&prefix=${encodeURIComponent(prefix.value.trim())}` + (more && cursor ? `&cursor=${cursor}` : "");
      const page = await call("GET", path + query);
      const items = page[listKey].map((entry) => {
        const li = document.createElement("li"), a = document.createElement("a");
        a.href = href(entry[field]); a.textContent = entry[field];
        const when = document.createElement("small");
        when.textContent = entry.updated_at ? ` updated ${new Date(entry.updated_at).toLocaleString()}` : "";
        when.title = entry.updated_at || "";
        li.append(a, when); return li;
      });
      const list = document.getElementById(ids.list);
      if (more) list.append(...items); else list.replaceChildren(...items);
      if (!more && !items.length) { const li = document.createElement("li"); li.textContent = "none yet"; list.append(li); }
      cursor = page.cursor; document.getElementById(ids.more).hidden = !cursor;
    }
    document.getElementById(ids.form).addEventListener("submit", (event) => { event.preventDefault(); load(false); });
    document.getElementById(ids.more).addEventListener("click", () => load(true));
    load(false);
    return load;
  }

  return {ROOT, call, names};
})();
