//! Who a request comes from. With `serve.auth = "keys"` (the default) every
//! route but `/v1/health` needs `Authorization: Bearer pdk_...` (or
//! `x-api-key: pdk_...`, as Anthropic's SDKs send a key), and the
//! caller's tenant and role come from that key and nothing else: an
//! `x-paddock-tenant` header is ignored. `serve.auth = "none"` is a
//! development mode, refused on any address but loopback, in which the header
//! picks the tenant and every caller is an admin.
//!
//! Failed authentications are limited per source address
//! ([`FAILURES_PER_SECOND`], in bursts of [`FAILURE_BURST`]); past that a
//! source gets 429 until it slows down, while its callers with good keys are
//! still served. Each key may make `serve.requests-per-key` requests a
//! second (in bursts of as many), and each tenant `serve.requests-per-tenant`
//! with all its keys; each key may have `serve.concurrent-per-key` requests
//! being answered at once, and each tenant `serve.concurrent-per-tenant`
//! ([`super::in_flight`]). Past any of them the request gets 429, and other
//! keys and tenants are served as before.

use super::console::{CSRF_HEADER, Console, Found, Sessions, csrf_holds};
use super::in_flight::{Held, InFlight};
use crate::config::RequestLimits;
use crate::keys::{AuthError, Caller, Keyring, Role};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Failed authentications one source address may make per second.
pub const FAILURES_PER_SECOND: u32 = 10;
/// How many failures a source may make at once before the rate applies.
pub const FAILURE_BURST: u32 = 20;
/// How often a serving host re-reads the key store for added and revoked keys.
pub const REFRESH: Duration = Duration::from_millis(250);

/// How a serving host decides who a request comes from.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    failures: DefaultKeyedRateLimiter<IpAddr>,
    /// Requests per key, and the rate (per second) it allows.
    per_key: Option<(DefaultKeyedRateLimiter<Arc<str>>, u32)>,
    /// Requests per tenant, and the rate (per second) it allows.
    per_tenant: Option<(DefaultKeyedRateLimiter<Arc<str>>, u32)>,
    in_flight: Arc<InFlight>,
    /// The console's sessions, each standing for the key it was made with.
    sessions: Arc<Sessions>,
    /// Whether a tenant is named in the config (its requests are counted
    /// under its own name) or not (counted with every unnamed one).
    named: OnceLock<Named>,
}

/// Whether a tenant is named in the config.
type Named = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// A keyed rate of `per_second` requests a second, in bursts of as many; none for 0.
fn rate(per_second: u32) -> Option<(DefaultKeyedRateLimiter<Arc<str>>, u32)> {
    NonZeroU32::new(per_second).map(|r| (DefaultKeyedRateLimiter::keyed(Quota::per_second(r)), per_second))
}

enum Mode {
    /// Bearer API keys.
    Keys(Arc<Keyring>),
    /// No authentication (loopback only): the header names the tenant.
    Open { default_tenant: Arc<str> },
}

impl Auth {
    /// Every request needs a key from `ring`, within `limits`.
    pub fn keys(ring: Arc<Keyring>, limits: RequestLimits) -> Self {
        Auth::with(Mode::Keys(ring), limits)
    }

    /// No keys: every caller is an admin of the tenant `x-paddock-tenant`
    /// names, else of `default_tenant`, each tenant within `limits`.
    pub fn open(default_tenant: &str, limits: RequestLimits) -> Self {
        Auth::with(Mode::Open { default_tenant: default_tenant.into() }, limits)
    }

    fn with(mode: Mode, limits: RequestLimits) -> Self {
        let rate_of_failures = NonZeroU32::new(FAILURES_PER_SECOND).expect("a positive rate");
        let burst = NonZeroU32::new(FAILURE_BURST).expect("a positive burst");
        let failures = DefaultKeyedRateLimiter::keyed(Quota::per_second(rate_of_failures).allow_burst(burst));
        let in_flight = InFlight::new(limits.per_tenant_concurrent, limits.per_key_concurrent);
        let (per_key, per_tenant) = (rate(limits.per_key_rate), rate(limits.per_tenant_rate));
        let named = OnceLock::new();
        let sessions = Arc::default();
        Auth { inner: Arc::new(Inner { mode, failures, per_key, per_tenant, in_flight, sessions, named }) }
    }

    /// The console signing in with this host's keys, its cookie `Secure` when `tls`.
    pub fn console(&self, tls: bool) -> Console {
        Console::new(self.inner.sessions.clone(), self.clone(), tls)
    }

    /// The caller a console sign-in with `token` from `source` is, or the
    /// answer refusing it, counted as a failed authentication of `source`.
    #[allow(clippy::result_large_err)]
    pub fn sign_in(&self, token: &str, source: IpAddr) -> Result<Caller, Response> {
        match &self.inner.mode {
            Mode::Keys(ring) => ring.authenticate(token).map_err(|e| self.refused(source, e.to_string(), Some(e))),
            Mode::Open { .. } => {
                let why = "this host has serve.auth = \"none\": the console needs no sign-in";
                Err(error(StatusCode::CONFLICT, "invalid", why))
            }
        }
    }

    /// Counts the requests of tenants `named` says are not named in the
    /// config under one key, so they share `serve.requests-per-tenant` and
    /// `serve.concurrent-per-tenant` (until this is called, every tenant is
    /// counted by its own name).
    pub fn count_tenants_by(&self, named: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let _ = self.inner.named.set(Box::new(named));
    }

    /// The key `tenant`'s requests are counted under.
    fn counted(&self, tenant: &Arc<str>) -> Arc<str> {
        match self.inner.named.get() {
            Some(named) if !named(tenant) => crate::core::names::UNNAMED.into(),
            _ => tenant.clone(),
        }
    }

    /// Re-reads the key store every [`REFRESH`] (so a key revoked by another
    /// process stops working within a second) and forgets sources that
    /// stopped failing; runs until the host stops.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let auth = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Mode::Keys(ring) = &auth.inner.mode
                    && let Err(e) = ring.refresh()
                {
                    tracing::error!(error = %e, "cannot re-read the API keys; the last ones read stay in force");
                }
                auth.inner.failures.retain_recent();
                for (limiter, _) in [&auth.inner.per_key, &auth.inner.per_tenant].into_iter().flatten() {
                    limiter.retain_recent();
                }
            }
        })
    }

    /// The caller `headers` identify, coming from `source`: a key, else a
    /// console session (whose changes, any `method` but GET and HEAD, carry
    /// its CSRF token).
    #[allow(clippy::result_large_err)]
    pub fn caller(&self, method: &Method, headers: &HeaderMap, source: IpAddr) -> Result<Caller, Response> {
        match &self.inner.mode {
            Mode::Open { default_tenant } => match headers.get("x-paddock-tenant").map(|v| v.to_str()) {
                Some(Ok(t)) => match crate::core::names::validate_tenant(t) {
                    Ok(()) => self.within_rate(Caller { tenant: t.into(), role: Role::Admin, key: "".into() }),
                    Err(e) => Err(error(StatusCode::BAD_REQUEST, "bad-request", format!("x-paddock-tenant: {e}"))),
                },
                Some(Err(_)) => Err(error(StatusCode::BAD_REQUEST, "bad-request", "x-paddock-tenant is not text")),
                None => Ok(Caller { tenant: default_tenant.clone(), role: Role::Admin, key: "".into() }),
            },
            Mode::Keys(ring) => {
                let (token, csrf) = match bearer(headers) {
                    Some(token) => (Some(token), None),
                    None => match self.inner.sessions.find(headers) {
                        Found::Live { token, csrf } => (Some(token), Some(csrf)),
                        Found::Unknown => {
                            return Err(self.refused(
                                source,
                                "the console session has ended; sign in again".into(),
                                None,
                            ));
                        }
                        Found::None => (None, None),
                    },
                };
                if let Some(csrf) = csrf
                    && !matches!(*method, Method::GET | Method::HEAD)
                    && !csrf_holds(headers, &csrf)
                {
                    let why = format!("a change made through the console carries the session's {CSRF_HEADER} header");
                    return Err(error(StatusCode::FORBIDDEN, "csrf", why));
                }
                match token.as_deref().map(|t| ring.authenticate(t)) {
                    Some(Ok(caller)) => self.within_rate(caller),
                    Some(Err(e)) => Err(self.refused(source, e.to_string(), Some(e))),
                    None => Err(self.refused(source, "missing Authorization: Bearer <API key>".into(), None)),
                }
            }
        }
    }

    /// `caller`, unless its key or its tenant is over its rate.
    #[allow(clippy::result_large_err)]
    fn within_rate(&self, caller: Caller) -> Result<Caller, Response> {
        let now = || DefaultClock::default().now();
        if let Some((limiter, rate)) = &self.inner.per_key
            && !caller.key.is_empty()
            && let Err(not_until) = limiter.check_key(&caller.key)
        {
            let message = format!("API key {} is over serve.requests-per-key ({rate} a second)", caller.key);
            return Err(too_many(message, not_until.wait_time_from(now())));
        }
        if let Some((limiter, rate)) = &self.inner.per_tenant
            && let counted = self.counted(&caller.tenant)
            && let Err(not_until) = limiter.check_key(&counted)
        {
            let message = match *counted == *caller.tenant {
                true => format!("tenant {} is over serve.requests-per-tenant ({rate} a second)", caller.tenant),
                false => format!(
                    "tenant {} is over serve.requests-per-tenant ({rate} a second), which {} share",
                    caller.tenant,
                    crate::core::names::UNNAMED_WHO
                ),
            };
            return Err(too_many(message, not_until.wait_time_from(now())));
        }
        Ok(caller)
    }

    /// Counts a request of `caller` as in flight until the returned guard
    /// drops, or answers 429 naming the cap it would pass.
    #[allow(clippy::result_large_err)]
    fn hold(&self, caller: &Caller) -> Result<Held, Response> {
        self.inner
            .in_flight
            .hold(caller, &self.counted(&caller.tenant))
            .map_err(|message| too_many(message, Duration::from_secs(1)))
    }

    fn refused(&self, source: IpAddr, message: String, why: Option<AuthError>) -> Response {
        if let Err(not_until) = self.inner.failures.check_key(&source) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let message = format!("too many failed authentications from {source}; retry in {} ms", wait.as_millis());
            return too_many(message, wait);
        }
        if let Some(why) = why {
            tracing::warn!(source = %source, error = %why, "authentication failed");
        }
        let mut response = error(StatusCode::UNAUTHORIZED, "unauthenticated", message);
        response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
        response
    }
}

/// 429 with a `Retry-After` of at least a second.
fn too_many(message: String, wait: Duration) -> Response {
    retry_after(error(StatusCode::TOO_MANY_REQUESTS, "rate-limited", message), wait)
}

/// `response` with `Retry-After`: `wait` in whole seconds, at least one.
pub fn retry_after(mut response: Response, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    response.headers_mut().insert(header::RETRY_AFTER, seconds.into());
    response
}

/// The token of an `Authorization: Bearer ...` header, else of an
/// `x-api-key` header (how Anthropic's SDKs send their key).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return headers.get("x-api-key")?.to_str().ok().map(|key| key.trim().to_string());
    };
    let (scheme, token) = value.to_str().ok()?.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// The middleware: puts the [`Caller`] in the request's extensions, or
/// answers 401 (or 429) itself.
pub async fn authenticate(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let source =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let caller = match auth.caller(request.method(), request.headers(), source) {
        Ok(caller) => caller,
        Err(response) => return response,
    };
    let span = tracing::Span::current();
    span.record("tenant", &*caller.tenant);
    span.record("key", &*caller.key);
    // Counted in flight until the response is made (a stream's body is not waited for).
    match auth.hold(&caller) {
        Ok(_held) => {
            request.extensions_mut().insert(caller.clone());
            let mut response = next.run(request).await;
            // For the access layer outside, which counts requests by tenant.
            response.extensions_mut().insert(caller);
            response
        }
        Err(response) => response,
    }
}

/// 403 unless `caller`'s role may do what `role` may; `action` says what
/// ("answer approvals").
#[allow(clippy::result_large_err)]
pub fn require(caller: &Caller, role: Role, action: &str) -> Result<(), Response> {
    if caller.role.allows(role) {
        return Ok(());
    }
    let article = if matches!(caller.role, Role::Run) { "a" } else { "an" };
    let message = format!("{article} {} key may not {action}; that needs the {role} role", caller.role);
    Err(error(StatusCode::FORBIDDEN, "forbidden", message))
}

/// The error body every route answers with.
pub fn error(status: StatusCode, kind: &str, message: impl std::fmt::Display) -> Response {
    let body = serde_json::json!({ "error": { "kind": kind, "message": message.to_string() } });
    (status, axum::Json(body)).into_response()
}

/// The tenant a request acts for: the caller's own, unless it names another
/// with `?tenant=`, which only an admin may; a tenant that does not exist is
/// 404, as any resource of another tenant is.
#[allow(clippy::result_large_err)]
pub fn acting_for(
    caller: &Caller,
    named: Option<&str>,
    tenants: &crate::tenants::Tenants,
) -> Result<Arc<str>, Response> {
    let Some(named) = named.filter(|n| **n != *caller.tenant) else { return Ok(caller.tenant.clone()) };
    require(caller, Role::Admin, "act for another tenant (?tenant=)")?;
    crate::core::names::validate_tenant(named)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "bad-request", format!("tenant: {e}")))?;
    tenants.get(named).map_err(|e| error(StatusCode::NOT_FOUND, "not-found", e))?;
    Ok(named.into())
}
