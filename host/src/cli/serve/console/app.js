// Paddock's console: pages drawn from the same HTTP API a script uses, with
// the session cookie `POST /console/session` set. Every change carries the
// session's CSRF token. Text from the API is only ever set as text (no
// innerHTML), so nothing an agent or tenant wrote can run here.
"use strict";

const state = { who: null, live: null, at: location.hash };

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

/** `GET path` of a paged list: its rows, and the path of the next page (the `Link` header) if there is one. */
async function page(path) {
  const res = await fetch(path, { credentials: "same-origin" });
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error((data && data.error && data.error.message) || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  const link = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get("link") || "");
  return { rows: data, next: link ? link[1] : null };
}

const main = () => document.getElementById("main");
/** Draws the page, unless the reader has gone to another since it began (a slow draw must not cover the next page). */
function show(...nodes) {
  if (state.at !== location.hash) return;
  main().replaceChildren(...nodes.flat().filter((n) => n !== null && n !== undefined));
}
/** Draws a page begun at `at`, unless the reader has gone elsewhere since: a
 * slow page (the overview's eight reads) must not cover the one drawn after it. */
function showAt(at, ...nodes) {
  if (location.hash !== at) return;
  show(...nodes);
}
/** Makes a change asked for on the page drawn at `at`, then draws that page
 * again (`redraw`) with the change's error, if any, above it; unless the
 * reader has gone elsewhere meanwhile: the answer to a click must not cover
 * the page they went to. */
async function change(at, make, redraw) {
  let error = null;
  try { await make(); } catch (e) { error = e; }
  if (location.hash !== at) return;
  try { await redraw(); } catch (e) { error = error || e; }
  if (error && location.hash === at) main().prepend(failure(error));
}
function time(ms) { return ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : ""; }
function short(value, n = 120) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text && text.length > n ? text.slice(0, n) + "…" : (text || "");
}
/** An SVG element: `svg("rect", {x: 1}, child)`. */
function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
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
    state.at = location.hash;
    return show(failure(e));
  }
  signedIn();
}

function signInPage(message) {
  state.at = location.hash;
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
  state.at = location.hash;
  const hash = location.hash || "#/overview";
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("current", hash.startsWith(a.getAttribute("href")));
  const [, page, id] = hash.split("/");
  const pages = { overview, runs, approvals, dlq, plugins, board, usage, providers };
  const name = page && page.split("?")[0];
  const draw = name === "runs" && id ? () => run(decodeURIComponent(id))
    : name === "board" && id ? () => boardKey(decodeURIComponent(id.split("?")[0]))
    : (pages[name] || overview);
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
  const at = location.hash;
  // Counted a page of 100 at most, so the page weighs the same with any number of runs.
  const [running, failed, questions, dead, plugs, usage, providers, activity] = await Promise.all([
    page("/v1/runs?status=running&limit=100"), page("/v1/runs?status=failed&limit=100"), page("/v1/approvals?limit=100"),
    page("/v1/dlq?limit=100"), api("GET", "/v1/plugins"), optional("/v1/usage"), optional("/v1/providers"), optional("/v1/activity")]);
  const count = (list) => `${list.rows.length}${list.next ? "+" : ""}`;
  const card = (label, value, href) => h("a", { class: "card", href }, h("div", { class: "big" }, value), h("div", { class: "label" }, label));
  const held = plugs.filter((p) => p.held).length;
  const nodes = [h("h1", {}, "Overview"), h("div", { class: "cards" },
    card("runs running", count(running), "#/runs?status=running"),
    card("runs failed", count(failed), "#/runs?status=failed"),
    card("questions waiting", count(questions), "#/approvals"),
    card("dead letters", count(dead), "#/dlq"),
    card(`plugins serving${held ? `, ${held} held` : ""}`, plugs.filter((p) => p.serving).length, "#/plugins"),
    activity.instances ? card("instances in use", `${activity.instances.in_use} of ${activity.instances.max}`, "#/overview") : null)];
  nodes.push(h("h2", {}, "Invocations, the last hour in this host"));
  if (activity.refused) nodes.push(h("p", { class: "note" }, activity.refused));
  else nodes.push(table(["tenant", "running now", "a minute a bar (failed darker)", "invocations", "failed", "stopped at a limit"], activity.tenants, (t) => {
    const sum = (k) => t.minutes.reduce((n, m) => n + m[k], 0);
    return h("tr", { "data-activity": t.tenant }, h("td", {}, t.tenant), h("td", {}, t.in_flight),
      h("td", {}, minutes(t.minutes, (m) => m.invocations, (m) => m.errors,
        (m) => `${time(m.minute * 60000).slice(11, 16)}: ${m.invocations} invocations, ${m.errors} failed`, "invocations a minute, the last hour")),
      h("td", { "data-invocations": sum("invocations") }, sum("invocations")), h("td", {}, sum("errors")), h("td", {}, sum("limits")));
  }, "No invocations in the last hour."));
  nodes.push(h("h2", {}, "Spend"));
  if (usage.refused) nodes.push(h("p", { class: "note", id: "spend-refused" }, usage.refused));
  else {
    const today = new Date().toISOString().slice(0, 10);
    const rows = (usage.rows || []).filter((r) => r.window === today && !r.agent);
    nodes.push(usageTable(rows, "No spend recorded today."), h("p", {}, h("a", { href: "#/usage" }, "Every day and month, per agent, against the budgets")));
  }
  nodes.push(h("h2", {}, "Routes and their targets"));
  if (providers.refused) nodes.push(h("p", { class: "note" }, providers.refused));
  else nodes.push(table(["route", "target", "breaker", "cooling (ms)", "rate-limit headroom", "latency (ms)", "recent success"], providers.targets || [], (t) =>
    h("tr", {}, h("td", {}, t.route), h("td", {}, `${t.provider}/${t.model}`), statusCell(t.breaker || ""),
      h("td", {}, t.cooling_ms ?? ""), h("td", { class: t.throttled ? "status-failed" : "" }, t.headroom === null || t.headroom === undefined ? "" : `${Math.round(t.headroom * 100)}%${t.throttled ? " (throttled)" : ""}`),
      h("td", {}, t.latency_ms === null || t.latency_ms === undefined ? "" : t.latency_ms.toFixed(1)),
      h("td", {}, t.recent_success === null || t.recent_success === undefined ? "" : `${Math.round(t.recent_success * 100)}%`)), "No routes."));
  showAt(at, ...nodes);
}

async function runs() {
  const at = location.hash;
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
  for (const k of ["flow", "status", "after"]) if (params.get(k)) query.set(k, params.get(k));
  const { rows: list, next } = await page(`/v1/runs?${query}`);
  const more = next ? new URLSearchParams(next.split("?")[1]) : null;
  if (more) more.delete("limit");
  showAt(at, h("h1", {}, "Runs"), filter, table(["run", "flow", "status", "started", "changed", "error"], list, (r) =>
    h("tr", { "data-run": r.run }, h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(r.run)}` }, r.run)),
      h("td", {}, r.flow), statusCell(r.status), h("td", {}, time(r.created_ms)), h("td", {}, time(r.updated_ms)),
      h("td", { class: "clip" }, r.error || "")), "No runs."),
    more ? h("p", {}, h("a", { id: "runs-next", href: `#/runs?${more}` }, "Older runs")) : null);
}

/** A step's journal: its input, output and cost, and each host call with its answer. */
async function stepDetails(id, step) {
  const j = await api("GET", `/v1/runs/${encodeURIComponent(id)}/journal?${new URLSearchParams({ step: step.path })}`);
  const llm = j.entries.filter((e) => e.call.startsWith("llm.") && e.reply && e.reply.Ok && e.reply.Ok.usage);
  const cost = llm.reduce((sum, e) => sum + (e.reply.Ok.usage.cost_micros || 0), 0);
  const tokens = llm.reduce((sum, e) => sum + e.reply.Ok.usage.input_tokens + e.reply.Ok.usage.output_tokens, 0);
  return h("section", { id: "step-details", "data-details": step.path },
    h("h2", {}, `Step ${step.path}, attempt ${j.attempt}`),
    h("p", {}, `${j.entries.length} host calls · ${llm.length} LLM calls · ${tokens} tokens · ${dollars(cost)}`),
    h("h3", {}, "Input"), h("pre", { class: "mono" }, step.input || ""),
    step.error ? [h("h3", {}, "Error"), h("pre", { class: "mono error" }, step.error)] : [h("h3", {}, "Output"), h("pre", { class: "mono" }, short(step.raw || step.output || "", 4000))],
    h("h3", {}, "Journal"), table(["#", "call", "request", "reply"], j.entries, (e, i) =>
      h("tr", { "data-call": e.call }, h("td", {}, i + 1), h("td", { class: "mono" }, e.call), h("td", { class: "clip mono" }, short(e.request)),
        h("td", { class: "clip mono" }, short(e.reply))), "No host calls."));
}

/**
 * A run's steps as a tree: each under the step its path names as parent
 * (`a/b[2]/c` under item `a/b[2]` under `a/b` under `a`), siblings in the
 * order they began; a parent with no step of its own (a fan-out item) is a group.
 * Depth-first rows `{path, name, depth, step, steps}`.
 */
function stepTree(list) {
  const root = { children: new Map() };
  for (const s of list) {
    let node = root;
    let at = "";
    // A fan-out item's `name[i]` is item `[i]` under `name`.
    const parts = s.path.split("/").flatMap((segment) => {
      const item = /^(.+)(\[\d+\])$/.exec(segment);
      return item ? [item[1], item[2]] : [segment];
    });
    for (const part of parts) {
      at = !at ? part : part.startsWith("[") ? `${at}${part}` : `${at}/${part}`;
      if (!node.children.has(part)) node.children.set(part, { path: at, name: part, step: null, steps: 0, children: new Map() });
      node = node.children.get(part);
      node.steps += 1;
    }
    node.step = s;
  }
  const rows = [];
  const walk = (node, depth) => {
    for (const child of node.children.values()) {
      rows.push({ path: child.path, name: child.name, depth, step: child.step, steps: child.steps });
      walk(child, depth + 1);
    }
  };
  walk(root, 0);
  return rows;
}

async function run(id) {
  const here = `#/runs/${encodeURIComponent(id)}`;
  let selected = null;
  let report = null;
  let drawing = 0;
  const draw = async () => {
    // Only the latest draw shows: one begun before a change (a live event's)
    // may end after the draw that change made.
    const mine = ++drawing;
    const r = await api("GET", `/v1/runs/${encodeURIComponent(id)}`);
    // A finished run has nothing more to follow.
    if (r.status !== "running" && state.live) { state.live.close(); state.live = null; }
    const step = selected && (r.steps || []).find((s) => s.path === selected);
    const details = step ? await stepDetails(id, step).catch(failure) : null;
    // A redraw that lands after the reader went to another page draws nothing.
    if (location.hash !== here || mine !== drawing) return r.status;
    const act = (label, path) => h("button", { type: "button", "data-action": label.toLowerCase(),
      onclick: () => change(here, () => api("POST", path, {}), draw) }, label);
    const open = (s) => h("button", { type: "button", "data-journal": s.path, onclick: () => change(here, () => { selected = s.path; }, draw) }, "journal");
    const replay = h("button", { type: "button", "data-action": "replay", onclick: async () => {
      try { report = await api("POST", `/v1/runs/${encodeURIComponent(id)}/replay`, {}); } catch (e) { report = { error: e.message }; }
      await draw();
    } }, "Replay its agent steps");
    const replayed = report && (report.error ? h("p", { class: "error", id: "replay-report" }, report.error)
      : h("ul", { id: "replay-report" }, report.steps.map((x) => h("li", { "data-replayed": x.step, class: x.same ? "status-done" : "status-failed" },
        x.same ? `same  ${x.step} (${x.agent} ${x.version}, ${x.calls} host calls)` : `DIVERGED  ${x.step} (${x.agent} ${x.version}, recorded on ${x.recorded_version}): ${x.divergence}`))));
    // Through the CSSOM: the page's policy refuses inline style attributes.
    const indented = (n, ...children) => {
      const td = h("td", { class: "mono" }, ...children);
      td.style.paddingLeft = `${0.6 + 1.2 * n.depth}em`;
      return td;
    };
    const steps = table(["step", "kind", "agent", "status", "attempt", "ms", "output", "error"], stepTree(r.steps || []), (n) => {
      const s = n.step;
      if (!s) return h("tr", { "data-group": n.path, class: "group" }, indented(n, `${n.name}/`), h("td", { colspan: 7, class: "note" }, `${n.steps} steps`));
      return h("tr", { "data-step": s.path, title: s.path }, indented(n, n.name, s.kind === "agent" ? [" ", open(s)] : null), h("td", {}, s.kind), h("td", {}, s.agent || ""),
        statusCell(s.status), h("td", {}, s.attempt), h("td", {}, s.ended_ms ? s.ended_ms - s.started_ms : ""),
        h("td", { class: "clip mono" }, short(s.output)), h("td", { class: "clip" }, s.error || ""));
    }, "No steps yet.");
    show(h("h1", {}, `Run ${r.run}`),
      h("p", {}, "flow ", h("strong", {}, r.flow), " · status ", h("span", { id: "run-status", class: `status-${r.status}` }, r.status),
        ` · started ${time(r.created_ms)}`),
      r.status === "running" ? h("p", {}, act("Cancel", `/v1/runs/${encodeURIComponent(id)}/cancel`)) : null,
      r.error ? h("p", { class: "error" }, r.error) : null,
      r.output !== null && r.output !== undefined ? h("pre", { class: "mono", id: "run-output" }, JSON.stringify(r.output, null, 2)) : null,
      h("h2", {}, "Steps"), steps,
      r.status !== "running" && state.who.role !== "run" ? h("p", {}, replay) : null, replayed, details);
    return r.status;
  };
  if ((await draw()) !== "running") return;
  // Live: every event of the run draws it again (at most every 200 ms).
  const events = new EventSource(`/v1/runs/${encodeURIComponent(id)}/events`);
  let pending = null;
  const redraw = () => { if (!pending) pending = setTimeout(() => { pending = null; draw().catch(() => {}); }, 200); };
  events.onmessage = redraw;
  for (const kind of ["run-started", "step-started", "step-finished", "step-reused", "step-retrying", "step-failed", "step-skipped", "branch-taken",
    "transition", "vote-counted", "approval-waiting", "approval-answered", "compensated", "compensation-failed", "run-finished"]) {
    events.addEventListener(kind, redraw);
  }
  state.live = events;
}

async function approvals() {
  const at = location.hash;
  const list = await api("GET", "/v1/approvals?limit=200");
  const answer = (q, option) => h("button", { type: "button", "data-approval": q.id, "data-option": option,
    onclick: () => change(at, () => api("POST", `/v1/approvals/${encodeURIComponent(q.id)}`, { option, by: "console" }), approvals) }, option);
  showAt(at, h("h1", {}, "Approvals"), list.length ? list.map((q) => h("div", { class: "question", "data-question": q.id },
    h("div", {}, h("strong", {}, q.question)),
    h("div", { class: "note" }, `asked by ${q.asker} in run `, h("a", { href: `#/runs/${encodeURIComponent(q.run)}` }, q.run),
      ` · times out ${time(q.deadline_ms)}`),
    h("div", { class: "options" }, q.options.map((o) => answer(q, o))))) : h("p", { class: "note" }, "No questions waiting."));
}

async function dlq() {
  const at = location.hash;
  const list = await api("GET", "/v1/dlq?limit=200");
  const act = (label, method, path, id) => h("button", { type: "button", [`data-${label.toLowerCase()}`]: id, onclick: (event) => {
    event.target.disabled = true;
    return change(at, () => api(method, path), dlq);
  } }, label);
  showAt(at, h("h1", {}, "Dead letters"), table(["id", "run", "step", "agent", "attempts", "error", ""], list, (d) =>
    h("tr", { "data-dead": d.id }, h("td", { class: "mono" }, d.id), h("td", { class: "mono" }, h("a", { href: `#/runs/${encodeURIComponent(d.run)}` }, d.run)),
      h("td", { class: "mono" }, d.step), h("td", {}, d.agent), h("td", {}, d.attempts), h("td", { class: "clip" }, d.error),
      h("td", {}, act("Retry", "POST", `/v1/dlq/${encodeURIComponent(d.id)}/retry`, d.id), " ",
        act("Drop", "DELETE", `/v1/dlq/${encodeURIComponent(d.id)}`, d.id))), "No dead letters."));
}

async function plugins() {
  const at = location.hash;
  const list = await api("GET", "/v1/plugins");
  const approve = (p) => h("button", { type: "button", "data-approve": p.name,
    onclick: () => change(at, () => api("POST", `/v1/plugins/${encodeURIComponent(p.name)}/approve`, { version: p.held.version.version }), plugins) },
    `Approve ${p.held.version.version}`);
  showAt(at, h("h1", {}, "Plugins"), table(["plugin", "serving", "hash", "code", "invocations", "held (asks for)", "last error"], list, (p) =>
    h("tr", { "data-plugin": p.name }, h("td", {}, p.name), h("td", { class: "mono" }, p.serving ? p.serving.version : "none"),
      h("td", { class: "mono" }, p.serving ? p.serving.hash.slice(0, 12) : ""), h("td", {}, p.serving ? p.serving.compiled : ""),
      h("td", {}, p.serving ? p.serving.invocations : ""),
      h("td", { class: p.held ? "status-held" : "" }, p.held ? [`${p.held.version.version} (${p.held.asks.join(", ")}) `,
        state.who.role === "admin" ? approve(p) : ""] : ""),
      h("td", { class: "clip error" }, p.last_error ? p.last_error.message : "")), "No plugins."));
}

/** Micro-dollars as dollars. */
function dollars(micros) { return `$${(micros / 1e6).toFixed(micros % 10000 ? 6 : 2)}`; }

/** Usage rows, each with a meter against its budget where it has one. */
function usageTable(rows, empty) {
  const meter = (used, budget) => (budget ? h("meter", { min: 0, max: budget, value: Math.min(used, budget), high: budget * 0.8, title: `${used} of ${budget}` }) : "");
  return table(["tenant", "agent", "window", "requests", "tokens", "of budget", "cost", "of budget", "refusals"], rows, (r) => {
    const tokens = r.input_tokens + r.output_tokens;
    const budget = r.budget || {};
    return h("tr", { "data-usage": `${r.tenant}/${r.agent || ""}/${r.window}` }, h("td", {}, r.tenant), h("td", {}, r.agent || "all agents"),
      h("td", {}, r.window), h("td", {}, r.requests), h("td", {}, tokens), h("td", {}, meter(tokens, budget.tokens)),
      h("td", {}, dollars(r.cost_micros)), h("td", {}, meter(r.cost_micros, budget.cost_micros)), h("td", {}, r.refusals));
  }, empty);
}

/** Bars of each day's refusals by a budget. */
function refusals(days) {
  const top = Math.max(1, ...days.map((d) => d.refusals));
  const bars = days.map((d, i) => {
    const height = Math.round((d.refusals / top) * 36);
    return svg("rect", { x: i * 22 + 3, y: 40 - height, width: 16, height, class: "bad" }, svg("title", {}, `${d.window}: ${d.refusals} refused by a budget`));
  });
  return svg("svg", { width: Math.max(300, days.length * 22), height: 40, role: "img", "aria-label": "refusals per day", "data-chart": "refusals" }, ...bars);
}

/** Bars of each day's cost (or tokens when nothing cost), with the daily budget as a line. */
function chart(days) {
  const byCost = days.some((d) => d.cost_micros > 0);
  const value = (d) => (byCost ? d.cost_micros : d.input_tokens + d.output_tokens);
  const budget = days.map((d) => (d.budget || {})[byCost ? "cost_micros" : "tokens"]).find((b) => b);
  const top = Math.max(1, budget || 0, ...days.map(value));
  const [w, hgt, bar] = [Math.max(300, days.length * 22), 120, 16];
  const bars = days.map((d, i) => {
    const height = Math.round((value(d) / top) * (hgt - 20));
    return svg("rect", { x: i * 22 + 3, y: hgt - height, width: bar, height, class: "bar" },
      svg("title", {}, `${d.window}: ${byCost ? dollars(d.cost_micros) : `${value(d)} tokens`}`));
  });
  const line = budget ? [svg("line", { x1: 0, x2: w, y1: hgt - Math.round((budget / top) * (hgt - 20)), y2: hgt - Math.round((budget / top) * (hgt - 20)), class: "budget" },
    svg("title", {}, `daily budget: ${byCost ? dollars(budget) : `${budget} tokens`}`))] : [];
  return svg("svg", { width: w, height: hgt, role: "img", "aria-label": `${byCost ? "cost" : "tokens"} per day` }, ...bars, ...line);
}

async function usage() {
  const at = location.hash;
  const answer = await api("GET", "/v1/usage");
  const rows = answer.rows || [];
  const tenants = [...new Set(rows.map((r) => r.tenant))].sort();
  const nodes = [h("h1", {}, "Usage and budgets")];
  for (const tenant of tenants) {
    const days = rows.filter((r) => r.tenant === tenant && !r.agent && r.window.length === 10).sort((a, b) => a.window.localeCompare(b.window));
    nodes.push(h("h2", {}, `Tenant ${tenant}`), days.length ? chart(days) : null,
      days.some((d) => d.refusals) ? [h("h3", {}, "Refused by a budget, a day a bar"), refusals(days)] : null,
      usageTable(rows.filter((r) => r.tenant === tenant), "Nothing spent."));
  }
  if (!tenants.length) nodes.push(h("p", { class: "note" }, "No spend recorded yet."));
  showAt(at, ...nodes);
}

async function board() {
  const at = location.hash;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const prefix = params.get("prefix") || "";
  const field = h("input", { type: "text", id: "board-prefix", value: prefix, placeholder: "e.g. notes/" });
  const form = h("form", { class: "filters" }, h("label", {}, "prefix", field), h("button", { type: "submit" }, "List"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/board?${new URLSearchParams({ prefix: field.value })}`;
  });
  const list = await api("GET", `/v1/board?${new URLSearchParams({ prefix, limit: "1000" })}`);
  const keys = h("tbody", {}, list.keys.map((k) => h("tr", { "data-key": k }, h("td", { class: "mono" }, h("a", { href: `#/board/${encodeURIComponent(k)}` }, k)))));
  const live = h("ul", { id: "board-live", class: "mono" });
  showAt(at, h("h1", {}, "Blackboard"), form, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, `keys under "${prefix}"`))), keys),
    h("h2", {}, "Changes as they happen"), live);
  // A live watch of the prefix: each change on top, new keys added to the list.
  const events = new EventSource(`/v1/board/watch?${new URLSearchParams({ prefix })}`);
  events.addEventListener("change", (event) => {
    const c = JSON.parse(event.data);
    live.prepend(h("li", { "data-change": c.revision }, `#${c.revision} ${c.key} ${c.value === null ? "deleted" : `= ${short(c.value, 80)}`} by ${c.writer} (run ${c.run})`));
    if (c.value !== null && !keys.querySelector(`tr[data-key="${CSS.escape(c.key)}"]`)) {
      keys.append(h("tr", { "data-key": c.key }, h("td", { class: "mono" }, h("a", { href: `#/board/${encodeURIComponent(c.key)}` }, c.key))));
    }
  });
  state.live = events;
}

async function boardKey(key) {
  const at = location.hash;
  const path = `/v1/board/keys/${encodeURIComponent(key)}`;
  let entry = null;
  try { entry = await api("GET", path); } catch (e) { if (e.status !== 404) throw e; }
  const history = await api("GET", `${path}/history`);
  showAt(at, h("h1", {}, `Key ${key}`),
    entry ? h("p", {}, `revision ${entry.revision} · written by ${entry.writer} in run `, h("span", { class: "mono" }, entry.run),
      ` at ${time(entry.written_at_ms)}`, entry.expires_at_ms ? ` · expires ${time(entry.expires_at_ms)}` : "") : h("p", { class: "note" }, "Not on the board now."),
    entry ? h("pre", { class: "mono", id: "board-value" }, entry.value) : null,
    h("h2", {}, "History"), table(["revision", "value", "writer", "run"], history.slice().reverse(), (c) =>
      h("tr", { "data-revision": c.revision }, h("td", {}, c.revision), h("td", { class: "clip mono" }, c.value === null ? "(deleted)" : c.value),
        h("td", {}, c.writer), h("td", { class: "mono" }, c.run)), "No history kept."));
}

/** Per-minute bars of `all(m)` (the `bad(m)` of them darker) over the last hour, each titled `say(m)`. */
function minutes(list, all, bad, say, label) {
  const now = Math.floor(Date.now() / 60000);
  const top = Math.max(1, ...list.map(all));
  const bars = list.flatMap((m) => {
    const x = (59 - (now - m.minute)) * 6;
    const whole = Math.round((all(m) / top) * 36);
    const part = Math.round((bad(m) / top) * 36);
    return [svg("rect", { x, y: 40 - whole, width: 5, height: whole, class: "bar" }, svg("title", {}, say(m))),
      svg("rect", { x, y: 40 - part, width: 5, height: part, class: "bad" })];
  });
  return svg("svg", { width: 360, height: 40, role: "img", "aria-label": label }, ...bars);
}

async function providers() {
  const at = location.hash;
  const answer = await optional("/v1/providers/hour");
  if (answer.refused) return showAt(at, h("h1", {}, "Providers and routes"), h("p", { class: "note" }, answer.refused));
  const sum = (t, k) => t.minutes.reduce((n, m) => n + m[k], 0);
  showAt(at, h("h1", {}, "Providers and routes"), h("p", { class: "note" }, "The last hour in this host, a minute a bar."),
    table(["route", "target", "breaker", "attempts", "error rate", "failovers", "mean latency", "last hour", "breaker changes"], answer.targets, (t) => {
      const attempts = sum(t, "attempts");
      const errors = sum(t, "errors");
      return h("tr", { "data-target": `${t.route}/${t.provider}/${t.model}` }, h("td", {}, t.route), h("td", {}, `${t.provider}/${t.model}`),
        statusCell(t.breaker), h("td", { "data-attempts": attempts }, attempts), h("td", {}, attempts ? `${((100 * errors) / attempts).toFixed(1)}%` : ""),
        h("td", {}, sum(t, "failovers")), h("td", {}, attempts ? `${(sum(t, "latency_ms") / attempts).toFixed(1)} ms` : ""),
        h("td", {}, minutes(t.minutes, (m) => m.attempts, (m) => m.errors,
          (m) => `${m.attempts} attempts, ${m.errors} failed, ${m.failovers} failovers`, "attempts a minute, the last hour")),
        h("td", {}, h("ul", { class: "changes" }, t.transitions.map((c) => h("li", { class: `status-${c.to}` }, `${time(c.at_ms)} ${c.to}: ${c.why}`)))));
    }, "No routes."));
}

start();
