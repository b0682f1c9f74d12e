//! The flow API of `paddock serve`. Every route acts for the caller's tenant
//! (its API key's) and shows only that tenant's runs, dead letters and
//! questions: another tenant's are answered as if they did not exist. A `run`
//! key starts, reads and cancels runs and reads questions and dead letters;
//! answering questions and retrying or dropping dead letters needs `operate`.
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/flows` | the specs in `serve.flows`, each checked |
//! | `POST /v1/flows/{name}/runs` | start `<serve.flows>/<name>.toml`; body = the input; `?wait=true` answers when it ends |
//! | `POST /v1/flows/run` | start the spec in the body: `{"spec": TOML, "origin": "...", "input": ..., "run": "..."}` (what `paddock flow run` sends) |
//! | `GET /v1/runs` | runs, newest first (`?flow=`, `?status=`, `?limit=`) |
//! | `GET /v1/runs/{id}` | a run and each step's checkpoint |
//! | `POST /v1/runs/{id}/resume` | continue an interrupted run here at its first unfinished step (`?repin=true`); 409 when it cannot be |
//! | `POST /v1/runs/{id}/cancel` | stop it (`{"by": "..."}`); answers once it stopped, or 202 after 10 s |
//! | `GET /v1/runs/{id}/events` | its events as server-sent events, from the first (or after `Last-Event-ID`) |
//! | `GET /v1/dlq`, `GET /v1/dlq/{id}` | dead letters; one whole, with its journal |
//! | `POST /v1/dlq/{id}/retry`, `DELETE /v1/dlq/{id}` | run it again; drop it |
//! | `GET /v1/approvals`, `POST /v1/approvals/{id}` | questions waiting; answer one: `{"option": "...", "by": "..."}` |

// Handlers answer early with a ready response: the `Err` of their helpers.
#![allow(clippy::result_large_err)]

use super::auth::require;
use super::dead;
use super::error;
use crate::flow::hub::Next;
use crate::flow::store::{RunQuery, RunSummary};
use crate::flow::{Event, Flow, Flows, RunRecord, RunStatus, StartError};
use crate::keys::{Caller, Role};
use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::convert::Infallible;
use tracing::Instrument;

/// Runs listed at most per request.
const MAX_LIST: usize = 1000;
/// The longest idempotency key.
const MAX_KEY: usize = 128;

pub(super) fn routes(flows: Flows, body_limit: usize) -> Router {
    Router::new()
        .route("/v1/flows", get(list_flows))
        .route("/v1/flows/{name}/runs", post(start))
        .route("/v1/flows/run", post(start_inline))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(show_run))
        .route("/v1/runs/{id}/events", get(events))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/resume", post(resume))
        .route("/v1/runs/{id}/journal", get(super::steps::journal))
        .route("/v1/runs/{id}/replay", post(super::steps::replay))
        .route("/v1/dlq", get(dead::list_dead))
        .route("/v1/dlq/{id}", get(dead::show_dead).delete(dead::drop_dead))
        .route("/v1/dlq/{id}/retry", post(dead::retry_dead))
        .route("/v1/approvals", get(dead::approvals))
        .route("/v1/approvals/{id}", post(dead::answer))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(flows)
}

pub(super) fn unavailable(e: impl std::fmt::Display) -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "unavailable", e)
}

fn no_run(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not-found", format!("no run with id {id:?}"))
}

/// Run `id`, if the tenant may see it.
pub(super) fn run_of(flows: &Flows, tenant: &str, id: &str) -> Result<RunRecord, Response> {
    match flows.store().run(id) {
        Ok(Some(r)) if r.tenant == tenant => Ok(r),
        Ok(_) => Err(no_run(id)),
        Err(e) => Err(unavailable(e)),
    }
}

/// A run as the API shows it in lists and answers.
fn summary(r: &RunRecord) -> Value {
    json!({
        "run": r.id,
        "flow": r.flow,
        "tenant": r.tenant,
        "status": r.status.word(),
        "output": r.output.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()),
        "error": r.error,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
        "links": { "self": format!("/v1/runs/{}", r.id), "events": format!("/v1/runs/{}/events", r.id) },
    })
}

/// Why a flow spec cannot be started.
pub(super) enum SpecError {
    Missing(String),
    Unreadable(String),
    Invalid(String),
}

impl SpecError {
    pub(super) fn message(self) -> String {
        match self {
            SpecError::Missing(m) | SpecError::Unreadable(m) | SpecError::Invalid(m) => m,
        }
    }

    fn response(self) -> Response {
        match self {
            SpecError::Missing(m) => error(StatusCode::NOT_FOUND, "not-found", m),
            SpecError::Unreadable(m) => unavailable(m),
            SpecError::Invalid(m) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", m),
        }
    }
}

/// The spec `<serve.flows>/<name>.toml`, parsed.
pub(super) fn spec(flows: &Flows, name: &str) -> Result<(Flow, String), SpecError> {
    let dir = &flows.runtime().settings().serve.flows;
    // Names only: a path would let a caller run any file as a flow.
    let named = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let missing = || SpecError::Missing(format!("no flow named {name:?} in {}", dir.display()));
    if !named {
        return Err(missing());
    }
    let file = dir.join(format!("{name}.toml"));
    let origin = file.display().to_string();
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(SpecError::Unreadable(format!("cannot read {origin}: {e}"))),
    };
    Flow::parse(&text, &origin).map(|flow| (flow, origin)).map_err(|e| SpecError::Invalid(e.to_string()))
}

async fn list_flows(State(flows): State<Flows>) -> Response {
    let dir = flows.runtime().settings().serve.flows.clone();
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".toml").map(String::from))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return unavailable(format!("cannot read {}: {e}", dir.display())),
    };
    names.sort();
    let rows: Vec<Value> = names
        .into_iter()
        .map(|name| match spec(&flows, &name) {
            Ok((f, _)) => json!({
                "name": name, "flow": f.name, "steps": f.steps.len(),
                "agents": f.agents().keys().collect::<Vec<_>>(), "error": null,
            }),
            Err(e) => json!({ "name": name, "error": e.message() }),
        })
        .collect();
    axum::Json(rows).into_response()
}

#[derive(serde::Deserialize)]
pub(super) struct StartQuery {
    #[serde(default)]
    wait: bool,
}

/// The run id an idempotency key stands for: the same key, tenant and flow
/// always name the same run.
fn keyed_run(tenant: &str, flow: &str, headers: &HeaderMap) -> Result<Option<String>, Response> {
    let Some(key) = headers.get("idempotency-key") else { return Ok(None) };
    let key = key.to_str().ok().filter(|k| !k.is_empty() && k.len() <= MAX_KEY && !k.contains(char::is_whitespace));
    let Some(key) = key else {
        let why = format!("idempotency-key must be 1 to {MAX_KEY} visible ASCII characters");
        return Err(error(StatusCode::BAD_REQUEST, "bad-request", why));
    };
    let hash = blake3::hash(format!("{tenant}\0{flow}\0{key}").as_bytes());
    Ok(Some(hash.to_hex()[..20].to_string()))
}

/// A start repeated under the same idempotency key answers with the run it
/// started, or refuses when the input differs.
fn repeated(existing: &RunRecord, input: &Value) -> Response {
    if existing.input != *input.to_string() {
        let why = format!("this idempotency key started run {} with another input", existing.id);
        return error(StatusCode::CONFLICT, "conflict", why);
    }
    (StatusCode::OK, [(header::LOCATION, format!("/v1/runs/{}", existing.id))], axum::Json(summary(existing)))
        .into_response()
}

async fn start(
    State(flows): State<Flows>,
    Path(name): Path<String>,
    Query(query): Query<StartQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let tenant = caller.tenant.to_string();
    let input = match body.trim() {
        "" => json!({}),
        text => match serde_json::from_str::<Value>(text) {
            Ok(v) => v,
            Err(e) => {
                return error(StatusCode::BAD_REQUEST, "bad-request", format!("the input is not valid JSON: {e}"));
            }
        },
    };
    let (flow, origin) = match spec(&flows, &name) {
        Ok(s) => s,
        Err(e) => return e.response(),
    };
    let run = match keyed_run(&tenant, &name, &headers) {
        Ok(r) => r,
        Err(r) => return r,
    };
    begin(&flows, (flow, origin), input, tenant, run, query.wait).await
}

/// A spec given whole, as `paddock flow run FILE` sends it to the host
/// serving its data folder.
#[derive(serde::Deserialize)]
pub(super) struct Inline {
    /// The spec's TOML text.
    spec: String,
    /// Where it came from, for messages.
    origin: String,
    #[serde(default)]
    input: Value,
    /// The run's id (`paddock flow run --run-id`).
    run: Option<String>,
    /// Another tenant to run for: an admin key only.
    tenant: Option<String>,
}

/// `POST /v1/flows/run`: a run of the spec in the body. It may name only
/// agents the caller's tenant may run, as a spec in `serve.flows` may.
async fn start_inline(
    State(flows): State<Flows>,
    Query(query): Query<StartQuery>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Response {
    // Read whatever the content type says: the body is JSON or nothing runs.
    let inline = match serde_json::from_str::<Inline>(&body) {
        Ok(i) => i,
        Err(e) => return error(StatusCode::BAD_REQUEST, "bad-request", format!("the body is not a flow to run: {e}")),
    };
    let flow = match Flow::parse(&inline.spec, &inline.origin) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e),
    };
    let input = if inline.input.is_null() { json!({}) } else { inline.input };
    if let Some(id) = &inline.run
        && (!(1..=MAX_KEY).contains(&id.len())
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        let why = format!("a run id is 1 to {MAX_KEY} of a-z, A-Z, 0-9, - and _, not {id:?}");
        return error(StatusCode::BAD_REQUEST, "bad-request", why);
    }
    let tenant = match inline.tenant {
        Some(t) if t != *caller.tenant => {
            if let Err(r) = require(&caller, Role::Admin, "run a flow for another tenant") {
                return r;
            }
            t
        }
        _ => caller.tenant.to_string(),
    };
    begin(&flows, (flow, inline.origin), input, tenant, inline.run, query.wait).await
}

/// Starts `flow` for `tenant`: 202 with the run as begun, or (`wait`) its
/// end; a repeated run id answers with the run it named.
async fn begin(
    flows: &Flows,
    (flow, origin): (Flow, String),
    input: Value,
    tenant: String,
    run: Option<String>,
    wait: bool,
) -> Response {
    if let Some(id) = &run {
        match flows.store().run(id) {
            // Another tenant's run is not shown, only refused.
            Ok(Some(existing)) if existing.tenant != tenant => {
                return error(StatusCode::CONFLICT, "conflict", format!("run id {id:?} is taken"));
            }
            Ok(Some(existing)) => return repeated(&existing, &input),
            Ok(None) => {}
            Err(e) => return unavailable(e),
        }
    }
    let options = crate::flow::Start { tenant: Some(tenant.clone()), run: run.clone(), events: None };
    let started = match flows.begin_off_thread(flow, &origin, input.clone(), options).await {
        Ok(s) => s,
        Err(StartError::Load(m)) => return error(StatusCode::SERVICE_UNAVAILABLE, "not-serving", m),
        Err(StartError::Denied(m)) => return error(StatusCode::FORBIDDEN, "denied", m),
        // The same key arriving twice at once: one started it.
        Err(StartError::Exists(m)) => match run.as_deref().map(|id| flows.store().run(id)) {
            Some(Ok(Some(existing))) if existing.tenant == tenant => return repeated(&existing, &input),
            _ => return error(StatusCode::CONFLICT, "conflict", m),
        },
        Err(StartError::Full(m)) => return error(StatusCode::INSUFFICIENT_STORAGE, "quota-exceeded", m),
        Err(StartError::Store(m)) => return unavailable(m),
    };
    let id = started.run().to_string();
    let location = [(header::LOCATION, format!("/v1/runs/{id}"))];
    // The run goes on when the caller hangs up.
    let begun = summary(started.record());
    // Its spans are children of this request's, though it may outlive it.
    let running = super::fronts::spawn_shared(started.finish().in_current_span());
    if !wait {
        // As begun, however soon it ends.
        return (StatusCode::ACCEPTED, location, axum::Json(begun)).into_response();
    }
    if let Err(e) = running.await {
        return unavailable(format!("run {id} stopped: {e}"));
    }
    match flows.store().run(&id) {
        Ok(Some(r)) => {
            let status = match r.status {
                RunStatus::Running => StatusCode::ACCEPTED,
                RunStatus::Succeeded => StatusCode::OK,
                RunStatus::Failed | RunStatus::Cancelled => StatusCode::UNPROCESSABLE_ENTITY,
            };
            (status, location, axum::Json(summary(&r))).into_response()
        }
        Ok(None) => no_run(&id),
        Err(e) => unavailable(e),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ListQuery {
    flow: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    after: Option<String>,
}

/// A run as listed: its output is read with `GET /v1/runs/{id}`.
fn listed(r: &RunSummary) -> Value {
    json!({
        "run": r.id,
        "flow": r.flow,
        "tenant": r.tenant,
        "status": r.status.word(),
        "error": r.error,
        "bytes": r.bytes,
        "created_ms": r.created_ms,
        "updated_ms": r.updated_ms,
        "links": { "self": format!("/v1/runs/{}", r.id), "events": format!("/v1/runs/{}/events", r.id) },
    })
}

/// Reads a page of `limit` items with `read` (off the async threads) and
/// answers it as a JSON array of `row`s; a full page links the next one
/// (`Link: <next(LAST)>; rel="next"`, `LAST` being the last item's `id`).
pub(super) async fn paged<T: Send + 'static>(
    limit: usize,
    read: impl FnOnce() -> Result<Vec<T>, String> + Send + 'static,
    id: impl Fn(&T) -> &str,
    row: impl Fn(&T) -> Value,
    next: impl FnOnce(&str) -> String,
) -> Response {
    let items = match tokio::task::spawn_blocking(read).await {
        Ok(Ok(items)) => items,
        Ok(Err(e)) => return unavailable(e),
        Err(e) => return unavailable(e),
    };
    let mut response = axum::Json(items.iter().map(row).collect::<Vec<_>>()).into_response();
    if let (true, Some(last)) = (items.len() == limit, items.last())
        && let Ok(link) = header::HeaderValue::from_str(&format!("<{}>; rel=\"next\"", next(id(last))))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

/// The `limit` of a list: 100 unless asked, at most [`MAX_LIST`].
pub(super) fn list_limit(asked: Option<usize>) -> usize {
    asked.unwrap_or(100).clamp(1, MAX_LIST)
}

/// `value` as a query parameter: unreserved characters as they are, every
/// other byte percent-encoded.
pub(super) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A page of the caller's tenant's runs, newest first (`flow`, `status`,
/// `limit`, `after`), read from the store a page at a time.
async fn list_runs(
    State(flows): State<Flows>,
    Query(q): Query<ListQuery>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let status = match q.status.as_deref().map(|s| (s, RunStatus::parse(s))) {
        Some((s, None)) => {
            let why = format!("status {s:?} is not running, succeeded, failed or cancelled");
            return error(StatusCode::BAD_REQUEST, "bad-request", why);
        }
        Some((_, status)) => status,
        None => None,
    };
    let limit = list_limit(q.limit);
    let query = RunQuery {
        tenant: Some(caller.tenant.to_string()),
        flow: q.flow.clone(),
        status,
        after: q.after.clone(),
        limit,
    };
    let store = flows.store().clone();
    let next = |after: &str| {
        let mut path = format!("/v1/runs?limit={limit}&after={}", encode(after));
        for (key, value) in [("flow", &q.flow), ("status", &q.status)] {
            if let Some(v) = value {
                path.push_str(&format!("&{key}={}", encode(v)));
            }
        }
        path
    };
    paged(limit, move || store.runs(&query), |r| &r.id, listed, next).await
}

async fn show_run(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let run = match run_of(&flows, &caller.tenant, &id) {
        Ok(r) => r,
        Err(r) => return r,
    };
    match flows.store().steps(&id) {
        Ok(steps) => {
            let mut body = summary(&run);
            body["pins"] = json!(run.pins);
            body["steps"] = json!(steps);
            axum::Json(body).into_response()
        }
        Err(e) => unavailable(e),
    }
}

/// Cancels a run: body `{"by": "ada"}` (optional). Answers with the run once
/// it stopped (200), or as it stands after 10 s (202).
async fn cancel(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    body: String,
) -> Response {
    if let Err(r) = run_of(&flows, &caller.tenant, &id) {
        return r;
    }
    let by = serde_json::from_str::<Value>(&body).ok().and_then(|v| v["by"].as_str().map(String::from));
    if let Err(e) = flows.cancel(&id, by.as_deref().unwrap_or("http")) {
        return error(StatusCode::CONFLICT, "conflict", e);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match flows.store().run(&id) {
            Ok(Some(r)) if r.status != RunStatus::Running => return axum::Json(summary(&r)).into_response(),
            Ok(Some(r)) if std::time::Instant::now() >= deadline => {
                return (StatusCode::ACCEPTED, axum::Json(summary(&r))).into_response();
            }
            Ok(Some(_)) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Ok(None) => return no_run(&id),
            Err(e) => return unavailable(e),
        }
    }
}

#[derive(serde::Deserialize)]
pub(super) struct ResumeQuery {
    #[serde(default)]
    repin: bool,
}

async fn resume(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Query(query): Query<ResumeQuery>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if let Err(r) = run_of(&flows, &caller.tenant, &id) {
        return r;
    }
    let started = match flows.resume_off_thread(&id, None, query.repin).await {
        Ok(s) => s,
        Err(m) => return error(StatusCode::CONFLICT, "conflict", m),
    };
    let begun = summary(started.record());
    super::fronts::spawn_shared(started.finish());
    (StatusCode::ACCEPTED, [(header::LOCATION, format!("/v1/runs/{id}"))], axum::Json(begun)).into_response()
}

fn sse(n: usize, event: &Event) -> SseEvent {
    let value = serde_json::to_value(event).unwrap_or(Value::Null);
    let kind = value["event"].as_str().unwrap_or("event").to_string();
    SseEvent::default().id(n.to_string()).event(kind).data(value.to_string())
}

async fn events(
    State(flows): State<Flows>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    let run = match run_of(&flows, &caller.tenant, &id) {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A reconnecting client goes on after the last event it saw.
    let after = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    // On a store shared by hosts, every host streams every run's events from it.
    if let Some(follow) = flows.follow(&id, after.map_or(0, |n| n as u64 + 1)) {
        let stream = futures_util::stream::unfold(follow, |mut follow| async move {
            let (n, text) = follow.next().await?;
            let kind = crate::flow::shared::kind(&text).unwrap_or("event").to_string();
            let event = SseEvent::default().id(n.to_string()).event(kind).data(text);
            Some((Ok::<_, Infallible>(event), follow))
        });
        return Sse::new(stream).keep_alive(KeepAlive::default()).into_response();
    }
    let hub = match flows.hub() {
        Some(hub) if hub.has(&id) => hub.clone(),
        _ if run.status == RunStatus::Running => {
            let why =
                format!("run {id} is not running on this host (host {} holds it); poll GET /v1/runs/{id}", run.owner);
            return error(StatusCode::CONFLICT, "elsewhere", why);
        }
        // A run that ended before this host kept its events: how it ended.
        _ => {
            let once = futures_util::stream::iter([Ok::<_, Infallible>(sse(0, &crate::flow::shared::finished(&run)))]);
            return Sse::new(once).into_response();
        }
    };
    let cursor = after.map_or(0, |n| n + 1);
    let stream = futures_util::stream::unfold((hub, id, cursor), |(hub, id, mut cursor)| async move {
        match hub.next(&id, &mut cursor).await? {
            Next::Event(event) => Some((Ok::<_, Infallible>(sse(cursor - 1, &event)), (hub, id, cursor))),
            Next::End => None,
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
