//! The console: a web page at `/` through which operators and tenants see and
//! steer what the host does. Its pages are one HTML file, one script and one
//! stylesheet, embedded in the binary (no CDN, works offline), that read and
//! change everything through the same HTTP API a script uses.
//!
//! Signing in trades an API key for a session: `POST /console/session` with
//! `{"key": "pdk_..."}` sets an HttpOnly, SameSite=Strict cookie naming a
//! random session id; the key stays in this process's memory, and every
//! request of the session authenticates it again (a revoked key ends its
//! sessions within the key store's refresh). A request authenticated by the
//! cookie that changes anything (any method but GET and HEAD) must carry
//! the session's CSRF token in `x-paddock-csrf`, which only the page, reading
//! `GET /console/session`, knows.

use super::auth::Auth;
use super::error;
use crate::keys::Caller;
use axum::Router;
use axum::extract::State;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "paddock_session";
/// The header a change through a session carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-paddock-csrf";
/// How long a session lasts after it is made.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept at once; past it the oldest goes.
const MAX_SESSIONS: usize = 10_000;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/style.css");

/// The sessions of one serving host.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<blake3::Hash, Session>>,
}

struct Session {
    /// The API key it was made with, authenticated again on every request.
    token: String,
    csrf: String,
    made: Instant,
}

/// What a request's session cookie comes to.
pub enum Found {
    /// No session cookie: the request authenticates otherwise.
    None,
    /// A cookie naming no live session.
    Unknown,
    /// A live session: its key, and its CSRF token.
    Live { token: String, csrf: String },
}

impl Sessions {
    /// A new session for the key `token`: its id (for the cookie) and CSRF token.
    fn open(&self, token: &str) -> Result<(String, String), String> {
        let (id, csrf) = (random_token()?, random_token()?);
        let mut by_id = self.by_id.lock();
        by_id.retain(|_, s| s.made.elapsed() < LIFETIME);
        if by_id.len() >= MAX_SESSIONS
            && let Some(oldest) = by_id.iter().min_by_key(|(_, s)| s.made).map(|(k, _)| *k)
        {
            by_id.remove(&oldest);
        }
        by_id.insert(
            blake3::hash(id.as_bytes()),
            Session { token: token.into(), csrf: csrf.clone(), made: Instant::now() },
        );
        Ok((id, csrf))
    }

    /// The session `headers`' cookie names.
    pub fn find(&self, headers: &HeaderMap) -> Found {
        let Some(id) = cookie(headers, COOKIE) else { return Found::None };
        let by_id = self.by_id.lock();
        match by_id.get(&blake3::hash(id.as_bytes())) {
            Some(s) if s.made.elapsed() < LIFETIME => Found::Live { token: s.token.clone(), csrf: s.csrf.clone() },
            _ => Found::Unknown,
        }
    }

    fn close(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.by_id.lock().remove(&blake3::hash(id.as_bytes()));
        }
    }
}

/// 32 random bytes from the OS, as hex.
fn random_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a session: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The value of cookie `name` in `headers`.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find_map(|(k, v)| (k == name).then_some(v))
}

/// Whether a change through a session carries its CSRF token.
pub fn csrf_holds(headers: &HeaderMap, csrf: &str) -> bool {
    let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    // Compared in constant time, as a key's hash is.
    blake3::hash(given.as_bytes()) == blake3::hash(csrf.as_bytes())
}

/// The console's state: the sessions, and the host's authentication, which
/// checks the keys they are made from.
#[derive(Clone)]
pub struct Console {
    pub sessions: Arc<Sessions>,
    auth: Auth,
    secure: bool,
}

impl Console {
    /// A console whose sessions `auth` checks the keys of, its cookie marked
    /// `Secure` when the host serves TLS.
    pub fn new(sessions: Arc<Sessions>, auth: Auth, secure: bool) -> Console {
        Console { sessions, auth, secure }
    }

    fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
    }
}

/// The page, its assets, and signing in and out; none behind the key check
/// (`GET /console/session` is answered for the caller the auth layer found).
pub fn routes(console: Console) -> Router {
    Router::new()
        .route("/", get(|| async { asset("text/html; charset=utf-8", PAGE) }))
        .route("/console/app.js", get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }))
        .route("/console/style.css", get(|| async { asset("text/css; charset=utf-8", STYLE) }))
        .route("/console/session", axum::routing::post(sign_in).delete(sign_out))
        .with_state(console)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, kind),
        (header::CACHE_CONTROL, "no-cache"),
        // Only this origin's script and style; no framing, no inline script.
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, body).into_response()
}

/// The most bytes of a sign-in's body: a key, with room to spare.
const MAX_SIGN_IN: usize = 4096;

/// `POST /console/session` with `{"key": "pdk_..."}`: a session for that
/// key. A refused key counts as a failed authentication of its source.
async fn sign_in(State(console): State<Console>, request: Request) -> Response {
    let source =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let body = axum::body::to_bytes(request.into_body(), MAX_SIGN_IN).await.unwrap_or_default();
    let key =
        serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| v["key"].as_str().map(str::to_string));
    let Some(key) = key else {
        return error(StatusCode::BAD_REQUEST, "invalid", "the body must be JSON: {\"key\": \"pdk_...\"}");
    };
    let caller = match console.auth.sign_in(key.trim(), source) {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let (id, csrf) = match console.sessions.open(key.trim()) {
        Ok(made) => made,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e),
    };
    tracing::info!(tenant = &*caller.tenant, key = &*caller.key, "console session opened");
    let cookie = console.cookie(&id, LIFETIME.as_secs());
    ([(header::SET_COOKIE, cookie)], axum::Json(described(&caller, &csrf))).into_response()
}

/// `DELETE /console/session`: the session ends, and its cookie with it.
async fn sign_out(State(console): State<Console>, headers: HeaderMap) -> Response {
    console.sessions.close(&headers);
    ([(header::SET_COOKIE, console.cookie("", 0))], StatusCode::NO_CONTENT).into_response()
}

/// `GET /console/session`, behind the key check: who the page acts for,
/// and the token its changes carry.
pub async fn whoami(
    axum::Extension(caller): axum::Extension<Caller>,
    State(console): State<Console>,
    headers: HeaderMap,
) -> Response {
    let csrf = match console.sessions.find(&headers) {
        Found::Live { csrf, .. } => csrf,
        Found::None | Found::Unknown => String::new(),
    };
    axum::Json(described(&caller, &csrf)).into_response()
}

fn described(caller: &Caller, csrf: &str) -> serde_json::Value {
    json!({"tenant": &*caller.tenant, "role": caller.role.to_string(), "key": &*caller.key, "csrf": csrf})
}
