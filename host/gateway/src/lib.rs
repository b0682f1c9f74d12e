//! The LLM gateway: routes of provider targets, and the resilience policy
//! every request goes through (see ARCHITECTURE.md, "Resilience policy").
//!
//! For each request: validate it; reserve budget ([`Quota`]); try the route's
//! targets in order ([`Route::order`]): skip a target cooling down after a
//! 429 or whose breaker is open, retry a retryable error on the same target
//! after a full-jitter backoff (within `retries` and the route's
//! `max-attempts`), fail over at once on a 429, and end at once on an error
//! no retry can fix. Streams fall back only before their first piece.
//! Every attempt, skip, breaker change and refusal is a tracing event and a metric.

pub mod breaker;
mod chain;
mod client;

pub mod error;
pub mod headroom;
pub mod hour;
pub mod metrics;
pub mod providers;
pub mod quota;
mod record;
pub mod route;
pub mod settings;
mod snapshot;
mod stream;
mod table;
pub mod types;

pub use chain::full_jitter;
pub use client::install_crypto;
pub use error::{ErrorClass, ProviderError};
pub use providers::{TraceHeaders, set_trace_headers};
pub use quota::{CallRecord, Caller, Estimate, Quota, Reservation, Unmetered};
pub use settings::{GatewaySettings, SettingsError, read_secrets};
pub use snapshot::{TargetHour, TargetState};
pub use stream::ReplyStream;
pub use table::RoutesChanged;

use arc_swap::ArcSwap;
use client::http_client;
use metrics::{Metrics, RouteLabels};
use paddock_core::clock::{Clock, SystemClock};
use providers::Meta;
use record::Reserved;
use route::Route;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use table::Table;
use thread_local::ThreadLocal;
use tracing::Instrument;
use types::{ChatRequest, Reply, Tokens};

/// Output tokens reserved for a request that sets no max-tokens.
const DEFAULT_OUTPUT_ESTIMATE: u32 = 1024;
/// The longest conversation id kept for affinity.
const MAX_CONVERSATION_BYTES: usize = 256;

/// Why a call failed, as the agent sees it (mirrors the WIT `llm.error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LlmError {
    /// No such route, or not granted.
    Denied(String),
    /// A budget would be exceeded.
    BudgetExceeded(String),
    /// Every target is rate limited; retry after this long.
    RateLimited(Duration),
    /// The request is wrong.
    InvalidRequest(String),
    /// The provider refused the content.
    ContentFiltered(String),
    /// The deadline passed.
    Timeout(String),
    /// Every target failed; the text lists each attempt.
    Unavailable(String),
}

impl LlmError {
    /// The kind, for metrics and records.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmError::Denied(_) => "denied",
            LlmError::BudgetExceeded(_) => "budget-exceeded",
            LlmError::RateLimited(_) => "rate-limited",
            LlmError::InvalidRequest(_) => "invalid-request",
            LlmError::ContentFiltered(_) => "content-filtered",
            LlmError::Timeout(_) => "timeout",
            LlmError::Unavailable(_) => "unavailable",
        }
    }
}

impl fmt::Display for LlmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LlmError::RateLimited(wait) => write!(f, "rate-limited: retry after {}ms", wait.as_millis()),
            LlmError::Denied(m)
            | LlmError::BudgetExceeded(m)
            | LlmError::InvalidRequest(m)
            | LlmError::ContentFiltered(m)
            | LlmError::Timeout(m)
            | LlmError::Unavailable(m) => write!(f, "{}: {m}", self.kind()),
        }
    }
}

/// How one target fared in one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// It answered.
    Ok,
    /// It failed.
    Failed(ProviderError),
    /// It was not tried, and why.
    Skipped(String),
}

/// One entry of a request's trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// `provider/model`.
    pub target: String,
    /// What happened.
    pub outcome: AttemptOutcome,
    /// How long it took (zero for a skip).
    pub latency: Duration,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            AttemptOutcome::Ok => write!(f, "{}: ok", self.target),
            AttemptOutcome::Failed(e) => write!(f, "{}: {e} after {}ms", self.target, self.latency.as_millis()),
            AttemptOutcome::Skipped(why) => write!(f, "{}: skipped, {why}", self.target),
        }
    }
}

/// A failed call and every attempt it made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// What the agent is told.
    pub error: LlmError,
    /// Every attempt and skip, in order.
    pub trail: Vec<Attempt>,
}

/// A whole answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The provider's reply.
    pub reply: Reply,
    /// The provider that answered.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// Provider attempts made (skips not counted).
    pub attempts: u32,
    /// Tokens used.
    pub tokens: Tokens,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// Every attempt and skip, in order.
    pub trail: Vec<Attempt>,
}

/// Why a gateway could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The HTTP client could not be built: its TLS backend, or the system's
    /// resolver configuration, failed to load.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(reqwest::Error),
}

/// A route target's state, for `paddock providers check`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetReport {
    /// The route.
    pub route: String,
    /// The provider.
    pub provider: String,
    /// Its kind.
    pub kind: &'static str,
    /// The model.
    pub model: String,
    /// `ok` or the error.
    pub status: String,
    /// How long the probe took.
    pub latency_ms: f64,
    /// The breaker's state.
    pub breaker: &'static str,
    /// The lowest fraction of requests or tokens left, if the provider said.
    pub headroom: Option<f64>,
}

/// The gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    /// The routes, swapped whole by [`Gateway::reload`].
    table: ArcSwap<Table>,
    /// The client, and its connection pool, of every thread but the front
    /// threads.
    client: reqwest::Client,
    /// Each front thread's own client ([`Inner::client`]).
    fronts: ThreadLocal<reqwest::Client>,
    clock: Arc<dyn Clock>,
    quota: Arc<dyn Quota>,
    metrics: Metrics,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.inner.table.load();
        f.debug_struct("Gateway").field("routes", &table.routes.keys().collect::<Vec<_>>()).finish()
    }
}

impl Gateway {
    /// A gateway for `settings`, on the real clock, without budgets.
    pub fn new(settings: &GatewaySettings) -> Result<Gateway, BuildError> {
        Gateway::with(settings, Arc::new(SystemClock), Arc::new(Unmetered))
    }

    /// A gateway reading time from `clock` and budgets from `quota`.
    pub fn with(
        settings: &GatewaySettings,
        clock: Arc<dyn Clock>,
        quota: Arc<dyn Quota>,
    ) -> Result<Gateway, BuildError> {
        install_crypto();
        let client = http_client().map_err(BuildError::HttpClient)?;
        let metrics = Metrics::default();
        let (table, _) = Table::build(settings, &metrics, None);
        let fronts = ThreadLocal::new();
        let inner = Inner { table: ArcSwap::from_pointee(table), client, fronts, clock, quota, metrics };
        Ok(Gateway { inner: Arc::new(inner) })
    }

    /// The routes serving now, sorted by name.
    pub fn routes(&self) -> Vec<Arc<Route>> {
        let mut routes: Vec<Arc<Route>> = self.inner.table.load().routes.values().cloned().collect();
        routes.sort_by(|a, b| a.name.cmp(&b.name));
        routes
    }

    /// What a caller's `model` names: a route by its name, or
    /// `ROUTE/TARGET`, the route with the target to pin ([`Route::pinned`]);
    /// `None` when no route has the name.
    pub fn find_route<'m>(&self, model: &'m str) -> Option<(Arc<Route>, Option<&'m str>)> {
        let table = self.inner.table.load();
        if let Some(route) = table.routes.get(model) {
            return Some((route.clone(), None));
        }
        model
            .match_indices('/')
            .find_map(|(i, _)| table.routes.get(&model[..i]).map(|r| (r.clone(), Some(&model[i + 1..]))))
    }

    /// Whether the routes are the built-in simulated ones.
    pub fn is_simulated_default(&self) -> bool {
        self.inner.table.load().simulated_defaults
    }

    /// Serves `settings` from now on. Calls in flight finish on the routes
    /// they started with; what did not change keeps its breakers, affinity
    /// and provider accounts (see [`table`](self::table)).
    pub fn reload(&self, settings: &GatewaySettings) -> RoutesChanged {
        let prior = self.inner.table.load_full();
        let (table, changes) = Table::build(settings, &self.inner.metrics, Some(&prior));
        self.inner.table.store(Arc::new(table));
        changes
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Builds the calling thread's provider client now, if it is a front
    /// thread: as a thread starts, not in its first request (building one
    /// reads the system's root certificates, about 19 million instructions).
    pub fn prepare_thread(&self) {
        self.inner.client();
    }

    /// Asks for a whole answer.
    pub async fn complete(&self, caller: &Caller, req: ChatRequest) -> Result<Completion, Failure> {
        let span = record::call_span("complete", &req.route);
        self.completion(caller, req).instrument(span).await
    }

    async fn completion(&self, caller: &Caller, req: ChatRequest) -> Result<Completion, Failure> {
        let started = Instant::now();
        let (route, reservation) = self.admit(caller, &req)?;
        let deadline = started + route.settings.timeout;
        let inner = &self.inner;
        let req = Arc::new(req);
        let result = inner
            .chain(&route, caller, &req, deadline, |target, budget| {
                let (req, client, wall) = (req.clone(), inner.client().clone(), inner.clock.wall());
                async move {
                    let budget = budget.min(target.policy.attempt_timeout);
                    let mut meta = Meta::default();
                    let attempt = async {
                        match &target.simulated {
                            Some(sim) => sim.complete(&target.model, &req).await,
                            None => {
                                let url = target.chat_url(false);
                                target.provider.complete(&client, url, &target.model, &req, wall, &mut meta).await
                            }
                        }
                    };
                    let result =
                        tokio::time::timeout(budget, attempt).await.unwrap_or_else(|_| Err(attempt_timeout(budget)));
                    if let Ok(reply) = &result {
                        record::attempt_usage(&target, reply.tokens.unwrap_or_default());
                    }
                    (result, meta)
                }
            })
            .await;
        match result {
            Ok((reply, target, trail)) => {
                let tokens = reply.tokens.unwrap_or_default();
                let cost = target.price.map_or(0, |p| p.cost(tokens.input, tokens.output));
                let attempts = count_attempts(&trail);
                inner.record(caller, &route, Some(&target), attempts, started, tokens, "ok", false, reservation);
                Ok(Completion {
                    reply,
                    provider: target.provider.name.clone(),
                    model: target.model.clone(),
                    attempts,
                    tokens,
                    cost_micros: cost,
                    trail,
                })
            }
            Err(failure) => Err(inner.record_failure(caller, &route, started, failure, false, reservation)),
        }
    }

    /// Asks for a streamed answer. Returns once the first piece has arrived,
    /// so that until then every failure can still fall back to the next target.
    pub async fn stream(&self, caller: &Caller, req: ChatRequest) -> Result<ReplyStream, Failure> {
        let span = record::call_span("stream", &req.route);
        self.streaming(caller, req).instrument(span).await
    }

    async fn streaming(&self, caller: &Caller, req: ChatRequest) -> Result<ReplyStream, Failure> {
        let started = Instant::now();
        let (route, reservation) = self.admit(caller, &req)?;
        let deadline = started + route.settings.timeout;
        let inner = &self.inner;
        let req = Arc::new(req);
        let result = inner
            .chain(&route, caller, &req, deadline, |target, budget| {
                let (req, client, wall) = (req.clone(), inner.client().clone(), inner.clock.wall());
                async move {
                    let budget = budget.min(target.policy.first_token_timeout);
                    let mut meta = Meta::default();
                    let attempt = async {
                        let mut pieces = match &target.simulated {
                            Some(sim) => sim.stream(&target.model, &req).await?,
                            None => {
                                let url = target.chat_url(true);
                                target.provider.stream(&client, url, &target.model, &req, wall, &mut meta).await?
                            }
                        };
                        stream::first_piece(&mut pieces).await.map(|first| (first, pieces))
                    };
                    let result = tokio::time::timeout(budget, attempt)
                        .await
                        .unwrap_or_else(|_| Err(first_token_timeout(budget)));
                    (result, meta)
                }
            })
            .await;
        match result {
            Ok(((first, rest), target, trail)) => Ok(ReplyStream::new(
                self.inner.clone(),
                route,
                target,
                caller.clone(),
                reservation,
                started,
                deadline,
                first,
                rest,
                trail,
            )),
            Err(failure) => Err(inner.record_failure(caller, &route, started, failure, true, reservation)),
        }
    }

    /// Embeds `inputs` through `route` (only its targets `target` names, when given).
    pub async fn embed(
        &self,
        caller: &Caller,
        route: &str,
        target: Option<&str>,
        inputs: &[String],
    ) -> Result<Vec<Vec<f32>>, Failure> {
        let req = ChatRequest {
            route: route.to_string(),
            target: target.map(String::from),
            messages: inputs.iter().map(|t| types::Message::new(types::Role::User, t.clone())).collect(),
            max_tokens: Some(0),
            ..Default::default()
        };
        self.embedding(caller, req, inputs).instrument(record::call_span("embed", route)).await
    }

    /// [`embed`](Self::embed), its request made.
    async fn embedding(&self, caller: &Caller, req: ChatRequest, inputs: &[String]) -> Result<Vec<Vec<f32>>, Failure> {
        let started = Instant::now();
        let (route, reservation) = self.admit(caller, &req)?;
        let deadline = started + route.settings.timeout;
        let inner = &self.inner;
        let shared: Arc<[String]> = inputs.into();
        let result = inner
            .chain(&route, caller, &req, deadline, |target, budget| {
                let (inputs, client, wall) = (shared.clone(), inner.client().clone(), inner.clock.wall());
                async move {
                    let budget = budget.min(target.policy.attempt_timeout);
                    let mut meta = Meta::default();
                    let attempt = async {
                        match &target.simulated {
                            Some(sim) => sim.embed(&inputs).await,
                            None => target.provider.embed(&client, &target.model, &inputs, wall, &mut meta).await,
                        }
                    };
                    let result =
                        tokio::time::timeout(budget, attempt).await.unwrap_or_else(|_| Err(attempt_timeout(budget)));
                    (result, meta)
                }
            })
            .await;
        let tokens = Tokens { input: req.estimated_input_tokens(), output: 0 };
        match result {
            Ok((vectors, target, trail)) => {
                let attempts = count_attempts(&trail);
                inner.record(caller, &route, Some(&target), attempts, started, tokens, "ok", false, reservation);
                Ok(vectors)
            }
            Err(failure) => Err(inner.record_failure(caller, &route, started, failure, false, reservation)),
        }
    }

    /// Sends a tiny request to every route target, bypassing breakers and
    /// retries, and reports what each answered.
    pub async fn check(&self) -> Vec<TargetReport> {
        let routes = self.routes();
        let probes = routes.iter().flat_map(|r| r.targets.iter()).map(|target| async move {
            let req = ChatRequest {
                route: target.route.to_string(),
                messages: vec![types::Message::new(types::Role::User, "Reply with the word OK.")],
                max_tokens: Some(5),
                ..Default::default()
            };
            let started = Instant::now();
            let mut meta = Meta::default();
            let attempt = async {
                match &target.simulated {
                    Some(sim) => sim.complete(&target.model, &req).await,
                    None => {
                        let (client, url, wall) =
                            (self.inner.client(), target.chat_url(false), self.inner.clock.wall());
                        target.provider.complete(client, url, &target.model, &req, wall, &mut meta).await
                    }
                }
            };
            let budget = target.policy.attempt_timeout.min(Duration::from_secs(30));
            let result = tokio::time::timeout(budget, attempt).await.unwrap_or_else(|_| Err(attempt_timeout(budget)));
            let now = self.inner.clock.now();
            if let Some(room) = meta.headroom {
                target.account.observe(room, target.policy.throttle_below, now);
            }
            TargetReport {
                route: target.route.to_string(),
                provider: target.provider.name.clone(),
                kind: target.provider.kind.as_str(),
                model: target.model.clone(),
                status: result.map_or_else(|e| e.to_string(), |_| "ok".to_string()),
                latency_ms: started.elapsed().as_secs_f64() * 1000.0,
                breaker: target.breaker_state(now).as_str(),
                headroom: target.account.headroom().map(|h| h.fraction()),
            }
        });
        futures_util::future::join_all(probes).await
    }

    /// Checks the route and the request, and reserves budget.
    fn admit(&self, caller: &Caller, req: &ChatRequest) -> Result<(Arc<Route>, Reserved), Failure> {
        let inner = &self.inner;
        let refuse = |error: LlmError| {
            inner
                .metrics
                .calls
                .get_or_create(&RouteLabels { route: req.route.clone(), outcome: error.kind().into() })
                .inc();
            tracing::info!(tenant = %caller.tenant, agent = %caller.agent, route = %req.route, %error, "llm call refused");
            Failure { error, trail: Vec::new() }
        };
        let table = inner.table.load();
        let Some(route) = table.routes.get(&req.route) else {
            let near = paddock_core::names::did_you_mean(&req.route, table.routes.keys().map(String::as_str));
            return Err(refuse(LlmError::Denied(format!("no route named {:?}{near}", req.route))));
        };
        validate(req).map_err(|m| refuse(LlmError::InvalidRequest(m)))?;
        let route = match &req.target {
            None => route.clone(),
            Some(target) => {
                Arc::new(route.pinned(target).ok_or_else(|| refuse(LlmError::InvalidRequest(route.no_target(target))))?)
            }
        };
        let input = req.estimated_input_tokens();
        let output = req.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
        let cost = route.targets.iter().filter_map(|t| t.price).map(|p| p.cost(input, output)).max().unwrap_or(0);
        let estimate = Estimate { input_tokens: input, output_tokens: output, cost_micros: cost };
        let reservation = inner.quota.reserve(caller, &route.name, estimate).map_err(|m| {
            let who = metrics::CallerLabels { tenant: caller.tenant.to_string(), agent: caller.agent.to_string() };
            inner.metrics.budget_refusals.get_or_create(&who).inc();
            refuse(LlmError::BudgetExceeded(m))
        })?;
        let name = route.name.clone();
        Ok((route, Reserved::new(inner.quota.clone(), caller, name, reservation)))
    }
}

fn count_attempts(trail: &[Attempt]) -> u32 {
    trail.iter().filter(|a| !matches!(a.outcome, AttemptOutcome::Skipped(_))).count() as u32
}

fn attempt_timeout(budget: Duration) -> ProviderError {
    ProviderError::new(ErrorClass::Timeout, format!("no answer within {}", paddock_core::Span(budget)))
}

fn first_token_timeout(budget: Duration) -> ProviderError {
    ProviderError::new(ErrorClass::Timeout, format!("no first token within {}", paddock_core::Span(budget)))
}

/// Checks what a provider would refuse anyway, so a bad request costs no attempt.
fn validate(req: &ChatRequest) -> Result<(), String> {
    if req.messages.is_empty() {
        return Err("messages is empty".into());
    }
    for (i, tool) in req.tools.iter().enumerate() {
        if tool.name.is_empty() {
            return Err(format!("tools[{i}].name is empty"));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&tool.parameters) {
            return Err(format!("tools[{i}].parameters is not JSON: {e}"));
        }
    }
    if let Some(schema) = &req.response_schema
        && let Err(e) = serde_json::from_str::<serde_json::Value>(schema)
    {
        return Err(format!("response-schema is not JSON: {e}"));
    }
    if let Some(t) = req.temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!("temperature {t} is not between 0 and 2"));
    }
    if req.conversation.as_ref().is_some_and(|c| c.len() > MAX_CONVERSATION_BYTES) {
        return Err(format!("conversation id is over {MAX_CONVERSATION_BYTES} bytes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_requests_are_refused_before_any_attempt() {
        let mut req = ChatRequest { route: "r".into(), ..Default::default() };
        assert_eq!(validate(&req).unwrap_err(), "messages is empty");
        req.messages.push(types::Message::new(types::Role::User, "hi"));
        req.tools.push(types::ToolSpec { name: "f".into(), description: String::new(), parameters: "{".into() });
        assert!(validate(&req).unwrap_err().starts_with("tools[0].parameters is not JSON"));
    }
}
