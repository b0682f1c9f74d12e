//! The operator API of `paddock serve`: usage and budgets, the providers'
//! live state, tenants' policies, and approving a held plugin version. A
//! route acts for the caller's tenant; an admin may name another with
//! `?tenant=` (and sees every tenant where a route lists them).
//!
//! | method and path | role | what |
//! |---|---|---|
//! | `GET /v1/usage` | operate | `{"rows": [...]}`: the tenant's usage per agent and window (as `paddock usage --json`), each with its `budget` and what is `left`; an admin sees every tenant unless it names one |
//! | `GET /v1/activity` | run | `{"tenants": [...]}`: each tenant's invocations running now and its last hour in this host, a minute a row (`invocations`, `errors`, `limits`); an admin sees every tenant unless it names one, and `instances` (in use, and `engine.max-instances`) |
//! | `GET /v1/providers` | admin | each route target with this host's breaker (`closed`, `open`, `half-open`, and `breaker_open_ms` left), 429 cool-down left (`cooling_ms`), headroom, throttling and latency |
//! | `POST /v1/providers/check` | admin | a tiny request to every target, from this host (as `paddock providers check --json`): it sees the live breakers, and the headroom it reads stays |
//! | `GET /v1/tenants` | run | the policy of each tenant the caller may see: its own, or every one for an admin |
//! | `POST /v1/plugins/{name}/approve` | admin | body `{"version": "..."}`: approve a version held, serving, in the folder or kept for a pinned run (kept in `plugin-approvals.json` unless `host.plugin-state` is memory); a held one serves at once |

// Handlers answer early with a ready response: the `Err` of their helpers.
#![allow(clippy::result_large_err)]

use super::auth::{acting_for, require};
use super::error;
use crate::keys::{Caller, Role};
use crate::quota::{Budget, LedgerStore, UsageRow};
use crate::runtime::{Reload, Runtime};
use crate::tenants::TenantPolicy;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

pub(super) fn routes(runtime: Runtime) -> Router {
    Router::new()
        .route("/v1/usage", get(usage))
        .route("/v1/activity", get(activity))
        .route("/v1/providers", get(providers))
        .route("/v1/providers/check", post(check))
        .route("/v1/providers/hour", get(hour))
        .route("/v1/tenants", get(tenants))
        .route("/v1/plugins/{name}/approve", post(approve))
        .with_state(runtime)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Scope {
    tenant: Option<String>,
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", e)
}

/// The usage rows of `tenant` (every tenant's when `None`): from the ledger
/// file once this host's last commits are in it, so earlier windows show too;
/// from memory when the ledger keeps no file.
fn usage_rows(runtime: &Runtime, tenant: Option<&str>) -> Result<Vec<UsageRow>, String> {
    let Some(ledger) = runtime.ledger() else { return Ok(Vec::new()) };
    match &runtime.settings().ledger {
        LedgerStore::Sqlite(path) => {
            ledger.flush().map_err(|e| format!("host.ledger: {e}"))?;
            if !path.exists() {
                return Ok(Vec::new());
            }
            crate::quota::read_usage(path, tenant).map_err(|e| format!("host.ledger: {e}"))
        }
        LedgerStore::Memory => Ok(ledger.usage(tenant)),
        LedgerStore::Postgres(_) => ledger
            .shared_usage(tenant)
            .unwrap_or_else(|| Ok(ledger.usage(tenant)))
            .map_err(|e| format!("host.ledger: {e}")),
    }
}

async fn usage(
    State(runtime): State<Runtime>,
    Extension(caller): Extension<Caller>,
    Query(scope): Query<Scope>,
) -> Response {
    if let Err(r) = require(&caller, Role::Operate, "read usage") {
        return r;
    }
    // An admin sees every tenant unless it names one; others their own.
    let tenant = match scoped(&caller, &scope, &runtime) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let rows = match usage_rows(&runtime, tenant.as_deref()) {
        Ok(rows) => rows,
        Err(e) => return unavailable(e),
    };
    let settings = runtime.settings();
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            let budget = super::super::usage::budget_of(&settings, r);
            if let Some(mut budget) = budget.and_then(|b| super::super::usage::budget_json(&b, &r.window)) {
                let used_tokens = r.input_tokens + r.output_tokens;
                budget["left"] = json!({
                    "tokens": budget["tokens"].as_u64().map(|t| t.saturating_sub(used_tokens)),
                    "cost_micros": budget["cost_micros"].as_u64().map(|c| c.saturating_sub(r.cost_micros)),
                });
                v["budget"] = budget;
            }
            v
        })
        .collect();
    Json(json!({ "rows": rows })).into_response()
}

/// The tenant a read of `scope` is for: `None` (every tenant) for an admin
/// naming none; the caller's own, or one an admin names, otherwise.
fn scoped(caller: &Caller, scope: &Scope, runtime: &Runtime) -> Result<Option<std::sync::Arc<str>>, Response> {
    match (&scope.tenant, caller.role.allows(Role::Admin)) {
        (None, true) => Ok(None),
        (named, _) => acting_for(caller, named.as_deref(), &runtime.settings().tenants).map(Some),
    }
}

async fn activity(
    State(runtime): State<Runtime>,
    Extension(caller): Extension<Caller>,
    Query(scope): Query<Scope>,
) -> Response {
    let tenant = match scoped(&caller, &scope, &runtime) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let metrics = runtime.metrics();
    let mut answer = json!({ "tenants": metrics.activity(tenant.as_deref()) });
    if caller.role.allows(Role::Admin) {
        answer["instances"] =
            json!({ "in_use": metrics.in_flight_total(), "max": runtime.settings().engine.max_instances });
    }
    Json(answer).into_response()
}

/// Each route target's last hour in this host: attempts, errors, failovers
/// and latency a minute, and its breaker's transitions.
async fn hour(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = require(&caller, Role::Admin, "read the providers' state") {
        return r;
    }
    Json(json!({ "targets": runtime.gateway().hours() })).into_response()
}

async fn providers(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = require(&caller, Role::Admin, "read the providers' state") {
        return r;
    }
    let gateway = runtime.gateway();
    Json(json!({ "simulated_defaults": gateway.is_simulated_default(), "targets": gateway.snapshot() })).into_response()
}

async fn check(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    if let Err(r) = require(&caller, Role::Admin, "check the providers") {
        return r;
    }
    let gateway = runtime.gateway();
    let reports = gateway.check().await;
    Json(json!({ "simulated_defaults": gateway.is_simulated_default(), "targets": reports })).into_response()
}

fn budget_json(b: &Budget) -> Value {
    json!({
        "tokens_per_day": b.tokens_per_day, "tokens_per_month": b.tokens_per_month,
        "cost_micros_per_day": b.cost_micros_per_day, "cost_micros_per_month": b.cost_micros_per_month,
        "requests_per_minute": b.requests_per_minute, "tokens_per_minute": b.tokens_per_minute,
    })
}

/// A tenant's policy as the API shows it.
fn policy_json(p: &TenantPolicy) -> Value {
    let agents: serde_json::Map<String, Value> = p
        .agent_budgets
        .iter()
        .map(|(name, a)| {
            (name.clone(), json!({ "budget": budget_json(&a.budget), "max_concurrent": a.max_concurrent }))
        })
        .collect();
    json!({
        "name": p.name,
        "open": p.open,
        "agents": p.agents.describe(),
        "routes": p.routes.describe(),
        "board": { "read": p.read, "write": p.write, "max_keys": p.board_max_keys, "max_bytes": p.board_max_bytes },
        "approvals": p.approvals,
        "dirs": p.dirs.iter().map(|d| d.guest.as_str()).collect::<Vec<_>>(),
        "tools": p.tools.describe(),
        "tool_calls_per_minute": p.tool_calls_per_minute,
        "http": p.http.describe(),
        "http_private": p.http_private,
        "ceiling": {
            "fuel": p.ceiling.fuel, "memory": p.ceiling.memory,
            "timeout_ms": p.ceiling.timeout.map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        },
        "budget": budget_json(&p.budget),
        "max_concurrent": p.max_concurrent,
        "fuel_per_minute": p.fuel_per_minute,
        "agent_budgets": agents,
    })
}

async fn tenants(State(runtime): State<Runtime>, Extension(caller): Extension<Caller>) -> Response {
    let tenants = &runtime.settings().tenants;
    let policies: Vec<Value> = if caller.role.allows(Role::Admin) && tenants.configured() {
        tenants.iter().map(|p| policy_json(p)).collect()
    } else {
        match tenants.get(&caller.tenant) {
            Ok(p) => vec![policy_json(&p)],
            Err(e) => return error(StatusCode::NOT_FOUND, "not-found", e),
        }
    };
    Json(json!({ "configured": tenants.configured(), "tenants": policies })).into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Approval {
    version: String,
}

async fn approve(
    State(runtime): State<Runtime>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: String,
) -> Response {
    if let Err(r) = require(&caller, Role::Admin, "approve plugin versions") {
        return r;
    }
    let version = match serde_json::from_str::<Approval>(&body) {
        Ok(a) => a.version,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, "bad-request", format!("expected {{\"version\": \"...\"}}: {e}"));
        }
    };
    // Only a version this host has seen: held, serving, in the plugins
    // folder, or kept for a run pinned to it.
    let status = runtime.plugins().into_iter().find(|p| p.name == name);
    let held = status.as_ref().and_then(|s| s.held.as_ref()).map(|h| h.version.version.clone());
    let serving = status.as_ref().and_then(|s| s.serving.as_ref()).map(|v| v.version.clone());
    let known = [&held, &serving].iter().any(|v| v.as_deref() == Some(version.as_str()))
        || runtime.registry().find(&name).ok().and_then(|m| super::super::plugins::version_id(&m)).as_deref()
            == Some(version.as_str())
        || runtime.versions().find(&name, &version).is_ok_and(|kept| kept.is_some());
    if !known {
        let message = format!("plugin {name:?} has no version {version} (held: {})", held.as_deref().unwrap_or("none"));
        return error(StatusCode::NOT_FOUND, "not-found", message);
    }
    // Kept on disk first, so the approval outlives this host.
    let recorded = match crate::plugins::book::approve_at(&runtime.settings().plugins.book, &name, &version) {
        Ok(kept) => kept,
        Err(e) => return unavailable(e),
    };
    let released: Vec<Value> = runtime
        .approve(&name, &version)
        .into_iter()
        .filter_map(|(plugin, reload)| match reload {
            Reload::Swapped { from, to } => Some(json!({ "plugin": plugin, "from": from.as_deref(), "to": &*to })),
            _ => None,
        })
        .collect();
    let body = json!({
        "plugin": name, "version": version, "kept": recorded.is_some(),
        "already": recorded == Some(false), "serving": released,
    });
    Json(body).into_response()
}
