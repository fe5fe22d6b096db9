// The admin page (/admin, ivr/web/pages/admin.html): agents, queues, users and the audit log through the API
// (docs/api.md), with the session cookie and its CSRF token. Plain DOM code; every value goes in with
// textContent (never innerHTML). Every refusal shows its error_id, message and details.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let csrf = "";
  let editing = null;           // {kind: "agent" | "queue", id: string | null (a new one)}

  // ------------------------------------------------------------------------------------ helpers
  function el(tag, text, attrs) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  function row(cells) {
    const tr = el("tr");
    for (const c of cells) {
      const td = el("td");
      if (c instanceof Node) td.appendChild(c); else td.textContent = c === null || c === undefined ? "" : String(c);
      tr.appendChild(td);
    }
    return tr;
  }
  function button(text, onclick, attrs) {
    const b = el("button", text, {type: "button", ...(attrs || {})});
    b.addEventListener("click", onclick);
    return b;
  }
  function clearError() {
    $("error").hidden = true;
    $("error-id").textContent = ""; $("error-message").textContent = ""; $("error-details").textContent = "";
  }
  function showError(errorId, message, details) {
    $("notice").textContent = "";
    $("error-id").textContent = errorId || "error";
    $("error-message").textContent = message || "";
    $("error-details").textContent = details === undefined || details === null ? "" : JSON.stringify(details, null, 2);
    $("error").hidden = false;
  }
  function notice(text) { clearError(); $("notice").textContent = text; }

  class ApiFailure extends Error {
    constructor(status, body) {
      super((body && body.message) || ("HTTP " + status));
      this.status = status; this.body = body || {};
    }
  }

  // fetch with the cookie and the CSRF token; the answer's JSON, or an ApiFailure with the error body.
  // `raw`: a body sent as it is (the definition editor: the server judges the JSON).
  async function api(method, path, {json, raw} = {}) {
    const headers = {};
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    let body;
    if (raw !== undefined) { body = raw; headers["Content-Type"] = "application/json"; }
    else if (json !== undefined) { body = JSON.stringify(json); headers["Content-Type"] = "application/json"; }
    let r;
    try {
      r = await fetch(path, {method, headers, body, credentials: "same-origin", cache: "no-store"});
    } catch (e) {
      throw new ApiFailure(0, {error_id: "unreachable", message: "the server cannot be reached"});
    }
    if (r.status === 204) return null;
    const data = await r.json().catch(() => null);
    if (!r.ok) {
      throw new ApiFailure(r.status, data && data.error_id ? data
        : {error_id: "http-" + r.status, message: "the server answered " + r.status});
    }
    return data;
  }
  function failed(e) {
    if (e instanceof ApiFailure) {
      if (e.status === 401) { location.assign("/login?next=/admin"); return; }
      showError(e.body.error_id, e.body.message, e.body.details);
    } else {
      showError("page-error", String(e));
    }
  }
  // run an action: its errors shown, then the lists and the audit log reloaded
  async function act(fn, done) {
    clearError();
    try {
      await fn();
      if (done) notice(done);
    } catch (e) {
      failed(e);
    }
    await refresh();
  }

  // ------------------------------------------------------------------------------------- agents
  async function loadAgents() {
    const {agents} = await api("GET", "/api/agents");
    const defs = await Promise.all(agents.map((a) =>
      api("GET", "/api/agents/" + encodeURIComponent(a.agent_id) + "/definition").catch(() => null)));
    const body = $("agents-body");
    body.replaceChildren();
    agents.forEach((a, i) => {
      const d = defs[i] && defs[i].definition;
      const phone = d ? (d.has_sip_password ? "yes" : "no") + " (" + (d.phone || "sip") + ", "
        + (a.registered ? "registered" : "not registered") + ")" : (a.registered ? "registered" : "?");
      const state = a.state + (a.pause_reason ? " (" + a.pause_reason + ")" : "");
      const actions = el("span");
      actions.append(button("Edit", () => editAgent(a.agent_id), {"data-edit-agent": a.agent_id}), " ",
        button("Delete", () => deleteAgent(a.agent_id), {"data-delete-agent": a.agent_id}));
      const tr = row([a.agent_id, a.name, state, phone, actions]);
      tr.setAttribute("data-agent", a.agent_id);
      body.appendChild(tr);
    });
  }
  async function editAgent(id) {
    clearError();
    closeEditor();            // until the definition is here: never edit an older text
    try {
      const got = await api("GET", "/api/agents/" + encodeURIComponent(id) + "/definition");
      const d = {...got.definition};
      delete d.has_sip_password;      // read-only: the password itself is write-only ("sip_password")
      openEditor({kind: "agent", id}, "Edit agent " + id, d);
    } catch (e) { failed(e); }
  }
  function deleteAgent(id) {
    if (!confirm("Delete agent " + id + "?")) return;
    act(() => api("DELETE", "/api/agents/" + encodeURIComponent(id)), "agent " + id + " deleted");
  }

  // ------------------------------------------------------------------------------------- queues
  async function loadQueues() {
    const {queues} = await api("GET", "/api/queues");
    const body = $("queues-body");
    body.replaceChildren();
    for (const q of queues) {
      const t = q.service_level_target || [];
      const pct = q.stats && q.stats.service_level_pct;
      const actions = el("span");
      actions.append(button("Edit", () => editQueue(q.name), {"data-edit-queue": q.name}), " ",
        button("Delete", () => deleteQueue(q.name), {"data-delete-queue": q.name}));
      const tr = row([q.name, q.waiting, t.length === 2 ? t[0] + "% in " + t[1] + " s" : "",
        pct === null || pct === undefined ? "-" : pct + "%", actions]);
      tr.setAttribute("data-queue", q.name);
      body.appendChild(tr);
    }
  }
  async function editQueue(name) {
    clearError();
    closeEditor();            // until the definition is here: never edit an older text
    try {
      const got = await api("GET", "/api/queues/" + encodeURIComponent(name) + "/definition");
      openEditor({kind: "queue", id: name}, "Edit queue " + name, got.definition);
    } catch (e) { failed(e); }
  }
  function deleteQueue(name) {
    if (!confirm("Delete queue " + name + "?")) return;
    act(() => api("DELETE", "/api/queues/" + encodeURIComponent(name)), "queue " + name + " deleted");
  }

  // ------------------------------------------------------------------------------------- editor
  function openEditor(what, title, definition) {
    editing = what;
    $("editor-title").textContent = title;
    $("editor-text").value = JSON.stringify(definition, null, 2);
    $("editor").hidden = false;
    $("editor-text").focus();
  }
  function closeEditor() { editing = null; $("editor").hidden = true; }
  async function saveEditor() {
    if (!editing) return;
    const {kind, id} = editing;
    const base = kind === "agent" ? "/api/agents" : "/api/queues";
    const text = $("editor-text").value;     // sent as typed: the server judges it (invalid-json, ...)
    clearError();
    try {
      if (id === null) await api("POST", base, {raw: text});
      else await api("PUT", base + "/" + encodeURIComponent(id), {raw: text});
      closeEditor();
      notice(kind + " " + (id === null ? "created" : id + " saved"));
    } catch (e) {
      failed(e);              // the editor stays open with the text, to be corrected
    }
    await refresh();
  }

  // -------------------------------------------------------------------------------------- users
  async function loadUsers() {
    const {users} = await api("GET", "/api/users");
    const body = $("users-body");
    body.replaceChildren();
    for (const u of users) {
      const del = button("Delete", () => {
        if (!confirm("Delete user " + u.username + "?")) return;
        act(() => api("DELETE", "/api/users/" + encodeURIComponent(u.username)), "user " + u.username + " deleted");
      }, {"data-delete-user": u.username});
      const tr = row([u.username, u.role, u.agent_id, (u.queues || []).join(", "), u.disabled ? "yes" : "", del]);
      tr.setAttribute("data-user", u.username);
      body.appendChild(tr);
    }
  }
  function createUser(ev) {
    ev.preventDefault();
    const user = {username: $("user-name").value.trim(), role: $("user-role").value,
                  password: $("user-password").value};
    const agent = $("user-agent").value.trim();
    const queues = $("user-queues").value.split(",").map((s) => s.trim()).filter((s) => s);
    if (agent) user.agent_id = agent;
    if (queues.length) user.queues = queues;
    act(async () => {
      await api("POST", "/api/users", {json: user});
      $("user-form").reset();
    }, "user " + user.username + " created");
  }

  // -------------------------------------------------------------------------------------- audit
  async function loadAudit() {
    const {entries} = await api("GET", "/api/audit?limit=50");
    const body = $("audit-body");
    body.replaceChildren();
    for (const e of entries) {
      const at = typeof e.at === "number" ? new Date(e.at * 1000).toISOString().replace("T", " ").slice(0, 19)
        : e.at;
      const tr = row([at, e.actor, e.action, e.target, e.address]);
      tr.setAttribute("data-action", e.action);
      body.appendChild(tr);
    }
  }

  async function refresh() {
    const results = await Promise.allSettled([loadAgents(), loadQueues(), loadUsers(), loadAudit()]);
    const bad = results.find((r) => r.status === "rejected");
    if (bad && $("error").hidden) failed(bad.reason);
    document.body.setAttribute("data-loaded", String(Date.now()));
  }

  async function start() {
    let me;
    try {
      me = await api("GET", "/api/me");
    } catch (e) {
      failed(e);
      return;
    }
    if (me.role !== "admin") {
      showError("forbidden", "this page is for admins");
      return;
    }
    csrf = me.csrf_token || "";
    $("user").textContent = me.username;
    $("signout").hidden = !csrf;
    $("main").hidden = false;
    $("agent-add").addEventListener("click", () =>
      openEditor({kind: "agent", id: null}, "New agent", {id: "", name: "", skills: {}, queues: []}));
    $("queue-add").addEventListener("click", () =>
      openEditor({kind: "queue", id: null}, "New queue",
                 {name: "", required_skills: {}, service_level: {percent: 80, seconds: 20}}));
    $("editor-save").addEventListener("click", saveEditor);
    $("editor-cancel").addEventListener("click", closeEditor);
    $("user-form").addEventListener("submit", createUser);
    $("audit-refresh").addEventListener("click", () => { clearError(); refresh(); });
    $("signout").addEventListener("click", async () => {
      await api("POST", "/api/logout").catch(() => null);
      location.assign("/login");
    });
    await refresh();
  }
  start();
})();
