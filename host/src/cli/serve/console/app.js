// Paddock's console: pages drawn from the same HTTP API a script uses, with
// the session cookie `POST /console/session` set. Every change carries the
// session's CSRF token. Text from the API is only ever set as text (no
// innerHTML), so nothing an agent or tenant wrote can run here.
"use strict";

const state = { who: null, live: null };

/** An element: `h("td", {class: "x"}, "text", child)`. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** The API: JSON in and out; a change carries the CSRF token; an error throws its message. */
async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") headers["x-paddock-csrf"] = state.who ? state.who.csrf : "";
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

const main = () => document.getElementById("main");
function show(...nodes) { main().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined)); }
function time(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : ""; }
function short(value, n = 120) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > n ? text.slice(0, n) + "…" : (text || "");
}
function statusCell(status) { return h("td", { class: `status-${status}`, "data-status": status }, status); }
function failure(e) { return h("p", { class: "error", role: "alert" }, e.message); }

async function start() {
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  try {
    state.who = await api("GET", "/console/whoami");
  } catch (e) {
    if (e.status === 401) return signInPage();
    return show(failure(e));
  }
  signedIn();
}

function signInPage(message) {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  const key = h("input", { id: "signin-key", type: "password", autocomplete: "off", required: true, placeholder: "pdk_…" });
  const form = h("form", { class: "signin", id: "signin" },
    h("h1", {}, "Sign in"),
    h("label", { for: "signin-key" }, "API key (from paddock keys create)"), key,
    h("p", {}, h("button", { id: "signin-submit", class: "primary", type: "submit" }, "Sign in")),
    message ? h("p", { class: "error", role: "alert", id: "signin-error" }, message) : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      state.who = await api("POST", "/console/session", { key: key.value });
      signedIn();
    } catch (e) {
      signInPage(e.message);
    }
  });
  show(form);
  key.focus();
}

async function signOut() {
  try { await api("DELETE", "/console/session"); } catch (_) { /* the cookie is gone either way */ }
  state.who = null;
  signInPage();
}

function signedIn() {
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = !state.who.csrf;
  document.getElementById("who").textContent = `tenant ${state.who.tenant} · ${state.who.role}`;
  if (!location.hash) location.hash = "#/overview";
  route();
}

function route() {
  if (!state.who) return;
  if (state.live) { state.live.close(); state.live = null; }
  const hash = location.hash || "#/overview";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", hash.startsWith(a.getAttribute("href")));
  const [, page, id] = hash.split("/");
  const pages = { overview, runs, approvals, dlq, plugins };
  const draw = page === "runs" && id ? () => run(decodeURIComponent(id)) : (pages[page] || overview);
  draw().catch((e) => show(failure(e)));
}

/** A table of `rows`, each drawn by `cells`. */
function table(headings, rows, cells, empty) {
  if (!rows.length) return h("p", { class: "note" }, empty);
  return h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map(cells)));
}

async function optional(path) {
  try { return await api("GET", path); } catch (e) { return { refused: e.message }; }
}

async function overview() {
  const [runList, questions, dead, plugs, usage, providers] = await Promise.all([
    api("GET", "/v1/runs?limit=200"), api("GET", "/v1/approvals?limit=200"), api("GET", "/v1/dlq?limit=200"),
    api("GET", "/v1/plugins"), optional("/v1/usage"), optional("/v1/providers")]);
  const count = (status) => runList.filter((r) => r.status === status).length;
  const card = (label, value, href) => h("a", { class: "card", href }, h("div", { class: "big" }, value), h("div", { class: "label" }, label));
  const held = plugs.filter((p) => p.held).length;
  const nodes = [h("h1", {}, "Overview"), h("div", { class: "cards" },
    card("runs running", count("running"), "#/runs"),
    card("runs failed (latest 200)", count("failed"), "#/runs"),
    card("questions waiting", questions.length, "#/approvals"),
    card("dead letters", dead.length, "#/dlq"),
    card(`plugins serving${held ? `, ${held} held` : ""}`, plugs.filter((p) => p.serving).length, "#/plugins"))];
  nodes.push(h("h2", {}, "Spend"));
  if (usage.refused) nodes.push(h("p", { class: "note" }, usage.refused));
  else nodes.push(table(["tenant", "agent", "window", "requests", "tokens", "cost (USD)", "refusals"], usage.rows || [], (r) =>
    h("tr", {}, h("td", {}, r.tenant), h("td", {}, r.agent || "all"), h("td", {}, r.window || r.period || ""),
      h("td", {}, r.requests ?? ""), h("td", {}, (r.input_tokens ?? 0) + (r.output_tokens ?? 0)),
      h("td", {}, r.cost_usd ?? r.cost ?? ""), h("td", {}, r.refusals ?? r.refused ?? "")), "No spend recorded yet."));
  nodes.push(h("h2", {}, "Routes and their targets"));
  if (providers.refused) nodes.push(h("p", { class: "note" }, providers.refused));
  else nodes.push(table(["route", "target", "breaker", "cooling (ms)", "latency (ms)", "recent success"], providers.targets || [], (t) =>
    h("tr", {}, h("td", {}, t.route), h("td", {}, `${t.provider}/${t.model}`), statusCell(t.breaker || ""),
      h("td", {}, t.cooling_ms ?? ""), h("td", {}, t.latency_ms ?? ""), h("td", {}, t.recent_success ?? "")), "No routes."));
  show(...nodes);
}

async function runs() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const flow = h("input", { type: "text", id: "filter-flow", value: params.get("flow") || "" });
  const status = h("select", { id: "filter-status" }, ["", "running", "succeeded", "failed", "cancelled"].map((s) =>
    h("option", { value: s, selected: s === (params.get("status") || "") }, s || "any")));
  const filter = h("form", { class: "filters" }, h("label", {}, "flow", flow), h("label", {}, "status", status),
    h("button", { type: "submit" }, "Filter"));
  filter.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = new URLSearchParams();
    if (flow.value) q.set("flow", flow.value);
    if (status.value) q.set("status", status.value);
    location.hash = `#/runs?${q}`;
  });
  const query = new URLSearchParams({ limit: "50" });
  for (const k of ["flow", "status"]) if (params.get(k)) query.set(k, params.get(k));
  const list = await api("GET", `/v1/runs?${query}`);
  show(h("h1", {}, "Runs"), filter, table(["run", "flow", "status", "started", "changed", "error"], list, (r) =>
    h("tr", { "data-run": r.run }, h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(r.run)}` }, r.run)),
      h("td", {}, r.flow), statusCell(r.status), h("td", {}, time(r.created_ms)), h("td", {}, time(r.updated_ms)),
      h("td", { class: "clip" }, r.error || "")), "No runs."));
}

async function run(id) {
  const here = `#/runs/${encodeURIComponent(id)}`;
  const draw = async () => {
    const r = await api("GET", `/v1/runs/${encodeURIComponent(id)}`);
    // A redraw that lands after the reader went to another page draws nothing.
    if (location.hash !== here) return;
    const act = (label, path) => h("button", { type: "button", "data-action": label.toLowerCase(), onclick: async () => {
      try { await api("POST", path, {}); await draw(); } catch (e) { main().prepend(failure(e)); }
    } }, label);
    const steps = table(["step", "kind", "agent", "status", "attempt", "ms", "output", "error"], r.steps || [], (s) =>
      h("tr", { "data-step": s.path }, h("td", { class: "mono" }, s.path), h("td", {}, s.kind), h("td", {}, s.agent || ""),
        statusCell(s.status), h("td", {}, s.attempt), h("td", {}, s.ended_ms ? s.ended_ms - s.started_ms : ""),
        h("td", { class: "clip mono" }, short(s.output)), h("td", { class: "clip" }, s.error || "")), "No steps yet.");
    show(h("h1", {}, `Run ${r.run}`),
      h("p", {}, "flow ", h("strong", {}, r.flow), " · status ", h("span", { id: "run-status", class: `status-${r.status}` }, r.status),
        ` · started ${time(r.created_ms)}`),
      r.status === "running" ? h("p", {}, act("Cancel", `/v1/runs/${encodeURIComponent(id)}/cancel`)) : null,
      r.error ? h("p", { class: "error" }, r.error) : null,
      r.output !== null && r.output !== undefined ? h("pre", { class: "mono", id: "run-output" }, JSON.stringify(r.output, null, 2)) : null,
      h("h2", {}, "Steps"), steps);
  };
  await draw();
  // Live: every event of the run draws it again (at most every 200 ms).
  const events = new EventSource(`/v1/runs/${encodeURIComponent(id)}/events`);
  let pending = null;
  const redraw = () => { if (!pending) pending = setTimeout(() => { pending = null; draw().catch(() => {}); }, 200); };
  events.onmessage = redraw;
  for (const kind of ["step-started", "step-finished", "step-failed", "run-finished", "run-failed", "approval-asked", "approval-answered"]) {
    events.addEventListener(kind, redraw);
  }
  state.live = events;
}

async function approvals() {
  const list = await api("GET", "/v1/approvals?limit=200");
  const answer = (q, option) => h("button", { type: "button", "data-approval": q.id, "data-option": option, onclick: async () => {
    try { await api("POST", `/v1/approvals/${encodeURIComponent(q.id)}`, { option, by: "console" }); await approvals(); }
    catch (e) { main().prepend(failure(e)); }
  } }, option);
  show(h("h1", {}, "Approvals"), list.length ? list.map((q) => h("div", { class: "question", "data-question": q.id },
    h("div", {}, h("strong", {}, q.question)),
    h("div", { class: "note" }, `asked by ${q.asker} in run `, h("a", { href: `#/runs/${encodeURIComponent(q.run)}` }, q.run),
      ` · times out ${time(q.deadline_ms)}`),
    h("div", { class: "options" }, q.options.map((o) => answer(q, o))))) : h("p", { class: "note" }, "No questions waiting."));
}

async function dlq() {
  const list = await api("GET", "/v1/dlq?limit=200");
  const act = (label, method, path, id) => h("button", { type: "button", [`data-${label.toLowerCase()}`]: id, onclick: async (event) => {
    event.target.disabled = true;
    try { await api(method, path); await dlq(); } catch (e) { await dlq(); main().prepend(failure(e)); }
  } }, label);
  show(h("h1", {}, "Dead letters"), table(["id", "run", "step", "agent", "attempts", "error", ""], list, (d) =>
    h("tr", { "data-dead": d.id }, h("td", { class: "mono" }, d.id), h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(d.run)}` }, d.run)),
      h("td", { class: "mono" }, d.step), h("td", {}, d.agent), h("td", {}, d.attempts), h("td", { class: "clip" }, d.error),
      h("td", {}, act("Retry", "POST", `/v1/dlq/${encodeURIComponent(d.id)}/retry`, d.id), " ",
        act("Drop", "DELETE", `/v1/dlq/${encodeURIComponent(d.id)}`, d.id))), "No dead letters."));
}

async function plugins() {
  const list = await api("GET", "/v1/plugins");
  const approve = (p) => h("button", { type: "button", "data-approve": p.name, onclick: async () => {
    try { await api("POST", `/v1/plugins/${encodeURIComponent(p.name)}/approve`, { version: p.held.version.version }); await plugins(); }
    catch (e) { main().prepend(failure(e)); }
  } }, `Approve ${p.held.version.version}`);
  show(h("h1", {}, "Plugins"), table(["plugin", "serving", "hash", "code", "invocations", "held (asks for)", "last error"], list, (p) =>
    h("tr", { "data-plugin": p.name }, h("td", {}, p.name), h("td", { class: "mono" }, p.serving ? p.serving.version : "none"),
      h("td", { class: "mono" }, p.serving ? p.serving.hash.slice(0, 12) : ""), h("td", {}, p.serving ? p.serving.compiled : ""),
      h("td", {}, p.serving ? p.serving.invocations : ""),
      h("td", { class: p.held ? "status-held" : "" }, p.held ? [`${p.held.version.version} (${p.held.asks.join(", ")}) `,
        state.who.role === "admin" ? approve(p) : ""] : ""),
      h("td", { class: "clip error" }, p.last_error ? p.last_error.message : "")), "No plugins."));
}

start();
