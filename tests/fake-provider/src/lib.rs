//! A fake LLM provider for tests and benchmarks.
//!
//! One server speaks four wire formats faithfully — OpenAI chat completions,
//! Anthropic Messages, Gemini `generateContent` and Ollama `/api/chat`, each
//! with streaming and embeddings — and fails on command: rate limits with
//! each dialect's retry hints, error statuses with each dialect's error
//! bodies, stalls, cut connections, malformed JSON and errors in the middle
//! of a stream.
//!
//! ```
//! use paddock_fake_provider::{Behavior, Fault, FakeProvider, Reply, RetryAfter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let provider = FakeProvider::start().await?;
//! // The next request is rate-limited, the one after it answers "hello",
//! // and every later one gets the default reply.
//! provider.push(Fault::RateLimited { retry_after: RetryAfter::Seconds(7) }.into());
//! provider.push(Behavior::Reply(Reply::text("hello")));
//! let base_url = provider.url(); // e.g. http://127.0.0.1:41234, then /v1/chat/completions
//! # assert!(base_url.starts_with("http://127.0.0.1:"));
//! assert_eq!(provider.request_count(), 0);
//! provider.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Endpoints: `POST /v1/chat/completions` and `/v1/embeddings` (also under
//! any path ending in `/chat/completions` or `/embeddings`, as Azure and
//! self-hosted servers mount them), `POST /v1/messages`,
//! `POST /v1beta/models/{model}:{generateContent | streamGenerateContent |
//! embedContent | batchEmbedContents}`, `POST /api/chat` and `/api/embed`.
//! The control API, for the binary: `POST /_fake/script`, `PUT /_fake/default`,
//! `PUT /_fake/chaos`, `PUT /_fake/rate-limit`, `GET /_fake/requests`,
//! `GET /_fake/request-count`, `POST /_fake/clear`.

#![warn(missing_docs)]

mod answer;
mod anthropic;
mod behavior;
mod clock;
mod control;
mod embedding;
mod exchange;
mod gemini;
mod ollama;
mod openai;
mod plan;
mod prompt;
mod ratelimit;
mod record;
mod state;
mod stream;
mod wire;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use behavior::{Behavior, Chaos, FakeToolCall, Fault, Finish, RateLimitHeaders, Reply, RetryAfter};
pub use record::{Dialect, LOG_CAPACITY, Recorded};

use exchange::Route;
use state::Shared;

/// How long [`FakeProvider::shutdown`] waits for connections to close.
/// Stalls and streams end at once when the server closes; only a client that
/// stopped reading can hold one open, and then the server is aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// A running fake provider on `127.0.0.1`.
///
/// It serves on the caller's tokio runtime. Scripted behaviors, the default,
/// chaos and rate-limit headers are shared by all four dialects: one server
/// is one provider target. Dropping it stops the server in the background;
/// [`FakeProvider::shutdown`] waits for that.
pub struct FakeProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Option<JoinHandle<()>>,
}

impl fmt::Debug for FakeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FakeProvider").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl FakeProvider {
    /// Starts a server on `127.0.0.1` at a free port.
    pub async fn start() -> std::io::Result<FakeProvider> {
        FakeProvider::start_on(0).await
    }

    /// Starts a server on `127.0.0.1:port` (0 picks a free port).
    pub async fn start_on(port: u16) -> std::io::Result<FakeProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
        let addr = listener.local_addr()?;
        // Streams are many small writes; Nagle's algorithm would hold each
        // one back until the previous is acknowledged. A socket that refuses
        // the option still works, only slower.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let shared = Arc::new(Shared::new());
        let mut closing = shared.closing();
        let serve =
            axum::serve(listener, app(shared.clone())).with_graceful_shutdown(async move { closing.closed().await });
        let server = tokio::spawn(async move {
            // Serving only ends at shutdown; accept errors are retried inside.
            let _ = serve.await;
        });
        Ok(FakeProvider { addr, shared, server: Some(server) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Appends a behavior to the script: requests take scripted behaviors in
    /// order, then fall back to chaos and the default.
    pub fn push(&self, behavior: Behavior) {
        self.shared.push([behavior]);
    }

    /// Appends several behaviors to the script, in order.
    pub fn push_many(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        self.shared.push(behaviors);
    }

    /// Sets what unscripted requests get; initially `Behavior::Reply(Reply::default())`.
    pub fn set_default(&self, behavior: Behavior) {
        self.shared.set_default(behavior);
    }

    /// Sets (or, with `None`, stops) random faults for unscripted requests,
    /// and restarts their count, so that a seed gives the same sequence.
    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.shared.set_chaos(chaos);
    }

    /// Sets (or removes) the rate-limit headers added to every response.
    pub fn set_rate_limit(&self, limits: Option<RateLimitHeaders>) {
        self.shared.set_rate_limit(limits);
    }

    /// The last [`LOG_CAPACITY`] requests, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.log.snapshot()
    }

    /// Requests received since start or the last [`FakeProvider::clear`], including those no longer in the log.
    pub fn request_count(&self) -> u64 {
        self.shared.request_count()
    }

    /// Empties the script and the log and zeroes the counts; the default,
    /// chaos and rate-limit settings stay.
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// Stops the server: stalls and streams in flight end with an error, and
    /// it returns once the connections are closed.
    pub async fn shutdown(mut self) {
        self.shared.close();
        if let Some(server) = self.server.take() {
            let abort = server.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.shared.close();
    }
}

fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1beta/models/{*method}", post(gemini))
        .route("/v1/models/{*method}", post(gemini))
        .route("/api/chat", post(ollama_chat))
        .route("/api/embed", post(ollama_embed))
        .nest("/_fake", control::router())
        .fallback(by_suffix)
        .with_state(shared)
}

async fn openai_chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    exchange::serve(shared, Route::OpenAiChat, request).await
}

async fn openai_embeddings(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    exchange::serve(shared, Route::OpenAiEmbed, request).await
}

async fn anthropic_messages(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    exchange::serve(shared, Route::AnthropicMessages, request).await
}

/// Axum cannot route on the colon in `{model}:{method}`; the method is read here.
async fn gemini(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    match gemini::Target::parse(request.uri().path(), request.uri().query()) {
        Ok(target) => exchange::serve(shared, Route::Gemini(target), request).await,
        Err(unknown) => unknown.into_response(),
    }
}

async fn ollama_chat(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    exchange::serve(shared, Route::OllamaChat, request).await
}

async fn ollama_embed(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    exchange::serve(shared, Route::OllamaEmbed, request).await
}

/// OpenAI- and Anthropic-style APIs mounted under other prefixes:
/// `/openai/deployments/{d}/chat/completions?api-version=…`, `/api/v1/chat/completions`.
async fn by_suffix(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let path = request.uri().path();
    let route = if request.method() != Method::POST {
        None
    } else if path.ends_with("/chat/completions") {
        Some(Route::OpenAiChat)
    } else if path.ends_with("/embeddings") && !path.starts_with("/api/") {
        // Ollama's legacy `/api/embeddings` has a shape of its own, which the fake does not speak.
        Some(Route::OpenAiEmbed)
    } else if path.ends_with("/messages") {
        Some(Route::AnthropicMessages)
    } else {
        None
    };
    match route {
        Some(route) => exchange::serve(shared, route, request).await,
        None => {
            let message = format!("the fake provider has no endpoint {} {path}", request.method());
            (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "error": message }))).into_response()
        }
    }
}
