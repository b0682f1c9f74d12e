//! The blackboard API of `paddock serve`: a tenant's board read and written
//! by its operators. Every route needs the `operate` role, reads too (a board
//! holds what agents share, which a `run` key has no business reading), and
//! acts on the caller's tenant; an admin may name another with `?tenant=`.
//! A key is one path segment, so a key holding `/` is sent percent-encoded
//! (`tasks%2F1`); keys and values meet the checks and limits the guest API
//! meets (a bad key, ttl or size is 400 naming the limit).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/board?prefix=P&after=K&limit=N` | `{"keys": [...]}`: keys under `P` after `K`, at most `N` (≤ 1000) |
//! | `GET /v1/board/keys/{key}` | `{"key", "value", "revision", "writer", "run", "written_at_ms", "expires_at_ms"}`; 404 when absent |
//! | `PUT /v1/board/keys/{key}?ttl=30s&expect=REV` | body = the value; `expect` (or `If-Match: "REV"`, 0 = absent) makes it a compare-and-swap, 409 on another revision; answers `{"key", "revision"}` |
//! | `DELETE /v1/board/keys/{key}` | `{"key", "deleted": true/false}` |
//! | `GET /v1/board/keys/{key}/history` | the kept changes of that key, oldest first |
//! | `GET /v1/board/history?prefix=P&after=REV` | the kept changes under `P` after `REV` |
//! | `GET /v1/board/watch?prefix=P&after=REV` | server-sent events: a `change` event per change, its revision the event id; resumes after `Last-Event-ID` (else `after`, else now); a `lagged` event ends it when the watcher fell behind the kept history |
//!
//! A change is `{"revision", "key", "value" (null for a delete), "writer", "run"}`.
//! Writes made here are recorded as by agent `paddock-api`, in the run named
//! by the API key's id.

// Handlers answer early with a ready response: the `Err` of their helpers.
#![allow(clippy::result_large_err)]

use super::auth::{acting_for, require};
use super::error;
use crate::blackboard::{Blackboard, BoardError, Change, Entry, LIST_MAX, Namespace, Writer, unix_millis};
use crate::config::Span;
use crate::keys::{Caller, Role};
use crate::runtime::Runtime;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// The agent recorded for writes made through the API.
pub const API_AGENT: &str = "paddock-api";

/// How long one wait of a watch lasts before it looks again (the stream's
/// keep-alive comments cover the quiet).
const WATCH_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct BoardState {
    board: Arc<Blackboard>,
    /// Its settings are read per request: a reload may change the tenants.
    runtime: Runtime,
}

pub(super) fn routes(runtime: Runtime) -> Router {
    let board = runtime.blackboard().clone();
    Router::new()
        .route("/v1/board", get(list))
        .route("/v1/board/keys/{key}", get(read).put(write).delete(remove))
        .route("/v1/board/keys/{key}/history", get(key_history))
        .route("/v1/board/history", get(history))
        .route("/v1/board/watch", get(watch))
        // The value's limit is the board's, checked while reading the body.
        .layer(DefaultBodyLimit::disable())
        .with_state(BoardState { board, runtime })
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Params {
    tenant: Option<String>,
    prefix: Option<String>,
    after: Option<String>,
    limit: Option<usize>,
    ttl: Option<String>,
    expect: Option<u64>,
}

/// The caller's board (or the one an admin names), once its role may use it.
fn namespace(state: &BoardState, caller: &Caller, params: &Params) -> Result<Arc<Namespace>, Response> {
    require(caller, Role::Operate, "read or write the blackboard")?;
    let tenant = acting_for(caller, params.tenant.as_deref(), &state.runtime.settings().tenants)?;
    Ok(state.board.namespace(&tenant))
}

/// A refusal of the board, as an answer.
fn refused(e: BoardError) -> Response {
    let (status, kind) = match &e {
        BoardError::InvalidKey(_) | BoardError::InvalidTtl { .. } | BoardError::TooLarge { .. } => {
            (StatusCode::BAD_REQUEST, "bad-request")
        }
        BoardError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        BoardError::QuotaExceeded(_) => (StatusCode::INSUFFICIENT_STORAGE, "quota-exceeded"),
        BoardError::Lagged { .. } => (StatusCode::GONE, "lagged"),
        BoardError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, "unavailable"),
    };
    let mut response = error(status, kind, &e);
    if let BoardError::Conflict { current } = e {
        response.headers_mut().insert("x-paddock-revision", current.into());
    }
    response
}

fn bad(message: impl std::fmt::Display) -> Response {
    error(StatusCode::BAD_REQUEST, "bad-request", message)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An entry as `GET` answers it (and `paddock bb get --json` prints it).
pub fn entry_json(key: &str, entry: &Entry) -> Value {
    json!({
        "key": key, "value": text(&entry.value), "revision": entry.revision,
        "writer": &*entry.writer.agent, "run": &*entry.writer.run,
        "written_at_ms": unix_millis(entry.written_at),
        "expires_at_ms": entry.expires_at.map(unix_millis),
    })
}

/// A change as history and watch answer it (and `paddock bb` prints it).
pub fn change_json(c: &Change) -> Value {
    json!({
        "revision": c.revision, "key": &*c.key, "value": c.value.as_ref().map(|v| text(v)),
        "writer": &*c.writer.agent, "run": &*c.writer.run,
    })
}

async fn list(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
) -> Response {
    let ns = match namespace(&state, &caller, &params) {
        Ok(ns) => ns,
        Err(r) => return r,
    };
    let limit = params.limit.unwrap_or(LIST_MAX);
    if limit == 0 || limit > LIST_MAX {
        return bad(format!("limit: {limit} is not between 1 and {LIST_MAX}"));
    }
    let prefix = params.prefix.unwrap_or_default();
    match ns.list_after(&prefix, params.after.as_deref(), limit) {
        Ok(keys) => {
            let keys: Vec<&str> = keys.iter().map(|k| &**k).collect();
            Json(json!({ "keys": keys })).into_response()
        }
        Err(e) => refused(e),
    }
}

async fn read(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let ns = match namespace(&state, &caller, &params) {
        Ok(ns) => ns,
        Err(r) => return r,
    };
    match ns.get(&key) {
        Ok(Some(entry)) => Json(entry_json(&key, &entry)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "not-found", format!("no key {key:?} in tenant {:?}", ns.tenant())),
        Err(e) => refused(e),
    }
}

/// The revision a write expects: `?expect=`, else `If-Match` (quotes and a
/// weak `W/` allowed).
fn expected(params: &Params, headers: &HeaderMap) -> Result<Option<u64>, Response> {
    if params.expect.is_some() {
        return Ok(params.expect);
    }
    let Some(value) = headers.get("if-match") else { return Ok(None) };
    let tag = value.to_str().unwrap_or("").trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    tag.parse::<u64>().map(Some).map_err(|_| bad(format!("If-Match: {tag:?} is not a revision (a whole number)")))
}

async fn write(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let ns = match namespace(&state, &caller, &params) {
        Ok(ns) => ns,
        Err(r) => return r,
    };
    let expect = match expected(&params, &headers) {
        Ok(e) => e,
        Err(r) => return r,
    };
    let ttl = match params.ttl.as_deref().map(Span::parse).transpose() {
        Ok(t) => t.map(|s| s.0),
        Err(e) => return bad(format!("ttl: {e}")),
    };
    // Read no more than the limit (and one byte to tell it was passed).
    let limit = state.board.limits_of(ns.tenant()).value_bytes;
    let read_limit = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let value = match axum::body::to_bytes(body, read_limit).await {
        Ok(v) => v,
        Err(_) => return bad(format!("the value is over the limit of {limit} bytes (limits.max-value-bytes)")),
    };
    let writer = Writer::new(API_AGENT, &*caller.key);
    let written = match (expect, ttl) {
        (Some(rev), Some(ttl)) => ns.compare_and_swap_expiring(&key, rev, &value, ttl, &writer),
        (Some(rev), None) => ns.compare_and_swap(&key, rev, &value, &writer),
        (None, Some(ttl)) => ns.put_expiring(&key, &value, ttl, &writer),
        (None, None) => ns.put(&key, &value, &writer),
    };
    match written {
        Ok(revision) => Json(json!({ "key": key, "revision": revision })).into_response(),
        Err(e) => refused(e),
    }
}

async fn remove(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let ns = match namespace(&state, &caller, &params) {
        Ok(ns) => ns,
        Err(r) => return r,
    };
    match ns.delete(&key, &Writer::new(API_AGENT, &*caller.key)) {
        Ok(deleted) => Json(json!({ "key": key, "deleted": deleted })).into_response(),
        Err(e) => refused(e),
    }
}

/// The revision `?after=` names, 0 when absent.
fn after_of(params: &Params) -> Result<u64, Response> {
    params.after.as_deref().map_or(Ok(0), |a| a.parse().map_err(|_| bad(format!("after: {a:?} is not a revision"))))
}

async fn history(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
) -> Response {
    let (ns, after) = match namespace(&state, &caller, &params).and_then(|ns| Ok((ns, after_of(&params)?))) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match ns.changes_after(params.prefix.as_deref().unwrap_or(""), after) {
        Ok(changes) => Json(changes.iter().map(change_json).collect::<Vec<_>>()).into_response(),
        Err(e) => refused(e),
    }
}

async fn key_history(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let (ns, after) = match namespace(&state, &caller, &params).and_then(|ns| Ok((ns, after_of(&params)?))) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match ns.changes_after(&key, after) {
        Ok(changes) => {
            Json(changes.iter().filter(|c| *c.key == *key).map(change_json).collect::<Vec<_>>()).into_response()
        }
        Err(e) => refused(e),
    }
}

/// What a watch stream carries between polls.
struct Watching {
    ns: Arc<Namespace>,
    prefix: String,
    cursor: u64,
    ready: VecDeque<Change>,
    done: bool,
}

async fn watch(
    State(state): State<BoardState>,
    Extension(caller): Extension<Caller>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let ns = match namespace(&state, &caller, &params) {
        Ok(ns) => ns,
        Err(r) => return r,
    };
    // A reconnecting client goes on after the last event it saw.
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let cursor = match (resume, params.after.is_some()) {
        (Some(rev), _) => rev,
        (None, true) => match after_of(&params) {
            Ok(rev) => rev,
            Err(r) => return r,
        },
        (None, false) => match ns.revision() {
            Ok(rev) => rev,
            Err(e) => return refused(e),
        },
    };
    let prefix = params.prefix.unwrap_or_default();
    // A bad prefix is refused before the stream starts.
    if let Err(e) = ns.list_after(&prefix, None, 1) {
        return refused(e);
    }
    let start = Watching { ns, prefix, cursor, ready: VecDeque::new(), done: false };
    let stream = futures_util::stream::unfold(start, |mut w| async move {
        loop {
            if let Some(c) = w.ready.pop_front() {
                let event =
                    SseEvent::default().id(c.revision.to_string()).event("change").data(change_json(&c).to_string());
                return Some((Ok::<_, Infallible>(event), w));
            }
            if w.done {
                return None;
            }
            match w.ns.watch(&w.prefix, w.cursor, WATCH_WAIT).await {
                Ok(changes) => {
                    if let Some(last) = changes.last() {
                        w.cursor = last.revision;
                    }
                    w.ready.extend(changes);
                }
                Err(e) => {
                    w.done = true;
                    let kind = if matches!(e, BoardError::Lagged { .. }) { "lagged" } else { "error" };
                    let data = json!({ "error": { "kind": kind, "message": e.to_string() } }).to_string();
                    return Some((Ok(SseEvent::default().event(kind).data(data)), w));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
