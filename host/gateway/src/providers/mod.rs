//! Providers: what the host knows of each configured upstream, and the wire
//! format of each kind. Every adapter turns a [`ChatRequest`] into its
//! provider's request, and its provider's answers — whole, streamed, or
//! failed — into [`Reply`], [`Piece`]s and classified [`ProviderError`]s.

mod anthropic;
mod frames;
#[cfg(test)]
mod fuzz;
mod gemini;
mod ollama;
mod openai;
pub mod simulated;

pub use frames::{Frame, Framer, Framing, MAX_FRAME_BYTES};

use super::error::{ErrorClass, ProviderError, excerpt};
use super::headroom::{self, Headroom};
use super::types::{ChatRequest, Piece, Reply};
use futures_util::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::fmt;
use std::pin::Pin;
use std::time::SystemTime;

/// The most of a whole (not streamed) answer read into memory.
pub const MAX_BODY_BYTES: usize = 32 << 20;
/// The most of an error body kept: enough for any provider's error JSON.
const MAX_ERROR_BODY: usize = 64 << 10;

/// The wire format a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// OpenAI chat completions, and every server that copies it (vLLM,
    /// llama.cpp, Groq, Together, Azure OpenAI…).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent`.
    Gemini,
    /// Ollama `/api/chat`.
    Ollama,
    /// Deterministic replies made up by the host, for demos and benchmarks.
    Simulated,
}

impl Kind {
    /// Parses the `kind` key of a provider.
    pub fn parse(text: &str) -> Option<Kind> {
        Some(match text {
            "openai" => Kind::OpenAi,
            "anthropic" => Kind::Anthropic,
            "gemini" => Kind::Gemini,
            "ollama" => Kind::Ollama,
            "simulated" => Kind::Simulated,
            _ => return None,
        })
    }

    /// Its name in config and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OpenAi => "openai",
            Kind::Anthropic => "anthropic",
            Kind::Gemini => "gemini",
            Kind::Ollama => "ollama",
            Kind::Simulated => "simulated",
        }
    }

    /// Where the provider lives unless `base-url` says otherwise.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Kind::OpenAi => "https://api.openai.com/v1",
            Kind::Anthropic => "https://api.anthropic.com",
            Kind::Gemini => "https://generativelanguage.googleapis.com",
            Kind::Ollama => "http://127.0.0.1:11434",
            Kind::Simulated => "",
        }
    }
}

/// An API key. It is never printed: `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub fn new(key: String) -> Self {
        Secret(key)
    }

    fn header(&self, prefix: &str) -> Option<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0)).ok()?;
        // Keeps the key out of hyper's and reqwest's debug output.
        value.set_sensitive(true);
        Some(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How an OpenAI-style server wants its key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer KEY` (OpenAI and most compatibles).
    #[default]
    Bearer,
    /// `api-key: KEY` (Azure OpenAI).
    ApiKey,
}

/// A configured provider.
#[derive(Clone, Debug, PartialEq)]
pub struct Provider {
    /// Its name in `paddock.toml` (what agents see as `provider`).
    pub name: String,
    /// Its wire format.
    pub kind: Kind,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Its key, when it needs one.
    pub key: Option<Secret>,
    /// Where an OpenAI-style key goes.
    pub key_header: KeyHeader,
    /// A query string added to every URL (Azure's `api-version=…`).
    pub query: Option<String>,
    /// OpenAI only: send the token cap as `max_completion_tokens` (which
    /// OpenAI's reasoning models require) instead of `max_tokens` (which
    /// every compatible server accepts).
    pub max_completion_tokens: bool,
    /// Settings of a simulated provider.
    pub simulated: simulated::SimSettings,
}

/// A streamed answer, decoded into pieces.
pub type Pieces = Pin<Box<dyn Stream<Item = Result<Piece, ProviderError>> + Send>>;

/// What an HTTP exchange produced besides the answer.
#[derive(Debug, Default)]
pub struct Meta {
    /// Rate-limit headroom from the response headers.
    pub headroom: Option<Headroom>,
}

/// Adds the trace context of the current span (`traceparent`) to the
/// headers of a provider request, so the provider's side of a call joins the
/// trace. The binary that exports traces installs it ([`set_trace_headers`]);
/// the gateway knows no tracing system beyond `tracing`'s spans.
pub type TraceHeaders = fn(&mut HeaderMap);

static TRACE_HEADERS: std::sync::OnceLock<TraceHeaders> = std::sync::OnceLock::new();

/// Installs the function that adds trace headers to every provider request
/// (the first one installed stays).
pub fn set_trace_headers(add: TraceHeaders) {
    let _ = TRACE_HEADERS.set(add);
}

impl Provider {
    fn url(&self, path: &str) -> String {
        match &self.query {
            Some(q) => format!("{}{path}?{q}", self.base_url),
            None => format!("{}{path}", self.base_url),
        }
    }

    fn post(&self, client: &reqwest::Client, url: impl reqwest::IntoUrl, body: &Value) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            let header = match (self.kind, self.key_header) {
                (Kind::Anthropic, _) => ("x-api-key", key.header("")),
                (Kind::Gemini, _) => ("x-goog-api-key", key.header("")),
                (_, KeyHeader::ApiKey) => ("api-key", key.header("")),
                _ => ("authorization", key.header("Bearer ")),
            };
            if let (name, Some(value)) = header {
                headers.insert(HeaderName::from_static(name), value);
            }
        }
        if self.kind == Kind::Anthropic {
            headers.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        // Sent from inside the attempt's span, whose context this is.
        if let Some(add) = TRACE_HEADERS.get() {
            add(&mut headers);
        }
        let body = serde_json::to_vec(body).unwrap_or_default();
        client.post(url).headers(headers).header("content-type", "application/json").body(body)
    }

    /// Where a chat request for `model` goes, whole or streamed.
    pub fn chat_url(&self, model: &str, stream: bool) -> String {
        let path = match self.kind {
            Kind::OpenAi => "/chat/completions".to_string(),
            Kind::Anthropic => "/v1/messages".to_string(),
            Kind::Gemini => gemini::path(model, stream),
            Kind::Ollama => "/api/chat".to_string(),
            Kind::Simulated => unreachable!("simulated providers make no HTTP calls"),
        };
        let mut url = self.url(&path);
        if self.kind == Kind::Gemini && stream {
            url.push_str(if url.contains('?') { "&alt=sse" } else { "?alt=sse" });
        }
        url
    }

    /// A chat request for `model` to `url`, or to [`Provider::chat_url`]
    /// when the caller has none parsed.
    fn chat_request(
        &self,
        client: &reqwest::Client,
        url: Option<&reqwest::Url>,
        model: &str,
        req: &ChatRequest,
        stream: bool,
    ) -> reqwest::RequestBuilder {
        let body = match self.kind {
            Kind::OpenAi => openai::body(model, req, stream, self.max_completion_tokens),
            Kind::Anthropic => anthropic::body(model, req, stream),
            Kind::Gemini => gemini::body(req),
            Kind::Ollama => ollama::body(model, req, stream),
            Kind::Simulated => unreachable!("simulated providers make no HTTP calls"),
        };
        match url {
            Some(url) => self.post(client, url.clone(), &body),
            None => self.post(client, self.chat_url(model, stream), &body),
        }
    }

    /// Sends a chat request; `Ok` is a response whose status was a success.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        wall: SystemTime,
        meta: &mut Meta,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = request.send().await.map_err(transport_error)?;
        meta.headroom = Headroom::from_headers(response.headers(), wall);
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        if status.is_redirection() {
            let to = headers.get(reqwest::header::LOCATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let message = format!(
                "redirected to {}, which the gateway does not follow: set the provider's base-url to where it points",
                to.map_or_else(|| "no location".to_string(), |to| excerpt(&to))
            );
            return Err(ProviderError::new(ErrorClass::InvalidRequest, message).with_status(status.as_u16()));
        }
        let body = read_capped(response, MAX_ERROR_BODY).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body);
        let mut error = match self.kind {
            Kind::OpenAi => openai::error(status.as_u16(), &text),
            Kind::Anthropic => anthropic::error(status.as_u16(), &text),
            Kind::Gemini => gemini::error(status.as_u16(), &text),
            _ => ollama::error(status.as_u16(), &text),
        }
        .with_status(status.as_u16());
        if let Some(wait) = headroom::retry_after(&headers, wall) {
            error.retry_after = Some(wait);
        }
        Err(error)
    }

    /// Asks for a whole answer, at `url` when the caller parsed
    /// [`Provider::chat_url`] once.
    pub async fn complete(
        &self,
        client: &reqwest::Client,
        url: Option<&reqwest::Url>,
        model: &str,
        req: &ChatRequest,
        wall: SystemTime,
        meta: &mut Meta,
    ) -> Result<Reply, ProviderError> {
        let response = self.send(self.chat_request(client, url, model, req, false), wall, meta).await?;
        let body = read_capped(response, MAX_BODY_BYTES).await?;
        if self.kind == Kind::OpenAi
            && let Some(reply) = openai::plain_reply(&body)
        {
            return Ok(reply);
        }
        let json: Value = serde_json::from_slice(&body).map_err(|e| {
            ProviderError::new(
                ErrorClass::Malformed,
                format!("answer is not JSON ({e}): {}", excerpt(&String::from_utf8_lossy(&body))),
            )
        })?;
        match self.kind {
            Kind::OpenAi => openai::reply(&json),
            Kind::Anthropic => anthropic::reply(&json),
            Kind::Gemini => gemini::reply(&json),
            _ => ollama::reply(&json),
        }
    }

    /// Asks for an answer as a stream of pieces, at `url` as for
    /// [`Provider::complete`]. Errors before the body
    /// starts are returned here; later ones end the stream.
    pub async fn stream(
        &self,
        client: &reqwest::Client,
        url: Option<&reqwest::Url>,
        model: &str,
        req: &ChatRequest,
        wall: SystemTime,
        meta: &mut Meta,
    ) -> Result<Pieces, ProviderError> {
        let response = self.send(self.chat_request(client, url, model, req, true), wall, meta).await?;
        let decoder: Box<dyn Decode> = match self.kind {
            Kind::OpenAi => Box::new(openai::Decoder::default()),
            Kind::Anthropic => Box::new(anthropic::Decoder::default()),
            Kind::Gemini => Box::new(gemini::Decoder::default()),
            _ => Box::new(ollama::Decoder::default()),
        };
        Ok(decode(response, decoder))
    }

    /// Embeds `inputs` with `model`.
    pub async fn embed(
        &self,
        client: &reqwest::Client,
        model: &str,
        inputs: &[String],
        wall: SystemTime,
        meta: &mut Meta,
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        let (path, body) = match self.kind {
            Kind::OpenAi => ("/embeddings".to_string(), serde_json::json!({ "model": model, "input": inputs })),
            Kind::Ollama => ("/api/embed".to_string(), serde_json::json!({ "model": model, "input": inputs })),
            Kind::Gemini => (format!("/v1beta/models/{model}:batchEmbedContents"), gemini::embed_body(model, inputs)),
            Kind::Anthropic => {
                return Err(ProviderError::new(ErrorClass::InvalidRequest, "anthropic serves no embeddings"));
            }
            Kind::Simulated => unreachable!("simulated providers make no HTTP calls"),
        };
        let response = self.post(client, self.url(&path), &body).send().await.map_err(transport_error)?;
        meta.headroom = Headroom::from_headers(response.headers(), wall);
        let status = response.status().as_u16();
        let body = read_capped(response, MAX_BODY_BYTES).await?;
        let text = String::from_utf8_lossy(&body);
        if !(200..300).contains(&status) {
            return Err(match self.kind {
                Kind::OpenAi => openai::error(status, &text),
                Kind::Gemini => gemini::error(status, &text),
                _ => ollama::error(status, &text),
            }
            .with_status(status));
        }
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| ProviderError::new(ErrorClass::Malformed, format!("embeddings are not JSON: {e}")))?;
        let vectors: Option<Vec<Vec<f32>>> = match self.kind {
            Kind::OpenAi => json["data"].as_array().map(|d| d.iter().map(|e| floats(&e["embedding"])).collect()),
            Kind::Gemini => json["embeddings"].as_array().map(|d| d.iter().map(|e| floats(&e["values"])).collect()),
            _ => json["embeddings"].as_array().map(|d| d.iter().map(floats).collect()),
        };
        match vectors {
            Some(v) if v.len() == inputs.len() => Ok(v),
            _ => Err(ProviderError::new(ErrorClass::Malformed, "embeddings answer has no vector per input")),
        }
    }
}

fn floats(value: &Value) -> Vec<f32> {
    value.as_array().map_or_else(Vec::new, |a| a.iter().filter_map(Value::as_f64).map(|f| f as f32).collect())
}

/// Turns a transport failure into an error class.
fn transport_error(e: reqwest::Error) -> ProviderError {
    let class = if e.is_timeout() { ErrorClass::Timeout } else { ErrorClass::Connection };
    // The URL is the operator's, not a secret, but it is not the agent's business either.
    ProviderError::new(class, strip_url(&e))
}

fn strip_url(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&s.to_string());
        source = s.source();
    }
    if text.is_empty() { "connection failed".to_string() } else { text }
}

async fn read_capped(mut response: reqwest::Response, cap: usize) -> Result<Vec<u8>, ProviderError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| {
        ProviderError::new(
            ErrorClass::Connection,
            format!("answer broke off after {} bytes: {}", body.len(), strip_url(&e)),
        )
    })? {
        if body.len() + chunk.len() > cap {
            return Err(ProviderError::new(ErrorClass::Malformed, format!("answer is over {} MiB", cap >> 20)));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A wire format's stream decoder.
pub(crate) trait Decode: Send {
    /// How its body is framed.
    fn framing(&self) -> Framing;
    /// Decodes one frame, appending the pieces it holds.
    fn frame(&mut self, frame: Frame, out: &mut Vec<Piece>) -> Result<(), ProviderError>;
    /// The body ended: an error unless the format's end marker was seen.
    fn end(&mut self, out: &mut Vec<Piece>) -> Result<(), ProviderError>;
}

fn decode(response: reqwest::Response, decoder: Box<dyn Decode>) -> Pieces {
    struct State {
        body: Pin<Box<dyn Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
        framer: Framer,
        decoder: Box<dyn Decode>,
        frames: Vec<Frame>,
        pieces: std::collections::VecDeque<Piece>,
        ended: bool,
    }
    let framer = Framer::new(decoder.framing());
    let state = State {
        body: Box::pin(response.bytes_stream()),
        framer,
        decoder,
        frames: Vec::new(),
        pieces: Default::default(),
        ended: false,
    };
    Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(piece) = s.pieces.pop_front() {
                return Some((Ok(piece), s));
            }
            if s.ended {
                return None;
            }
            let mut out = Vec::new();
            let step = match s.body.next().await {
                Some(Ok(bytes)) => s.framer.push(&bytes, &mut s.frames),
                Some(Err(e)) => {
                    Err(ProviderError::new(ErrorClass::Connection, format!("stream broke off: {}", strip_url(&e))))
                }
                None => {
                    s.ended = true;
                    s.framer.finish(&mut s.frames)
                }
            };
            let step = step.and_then(|()| {
                for frame in s.frames.drain(..) {
                    s.decoder.frame(frame, &mut out)?;
                }
                if s.ended { s.decoder.end(&mut out) } else { Ok(()) }
            });
            s.pieces.extend(out);
            if let Err(e) = step {
                s.ended = true;
                s.pieces.clear();
                return Some((Err(e), s));
            }
        }
    }))
}

/// Parses a frame's JSON, or says the stream is malformed.
fn frame_json(frame: &Frame) -> Result<Value, ProviderError> {
    serde_json::from_str(&frame.data).map_err(|e| {
        ProviderError::new(ErrorClass::Malformed, format!("stream event is not JSON ({e}): {}", excerpt(&frame.data)))
    })
}

/// Parses a tool's parameters or a response schema (validated as JSON when the request came in).
fn json_text(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Tools in the OpenAI shape, which Ollama copies.
fn function_tools(req: &ChatRequest) -> Vec<Value> {
    req.tools
        .iter()
        .map(|t| {
            serde_json::json!({"type": "function", "function": {
                "name": t.name, "description": t.description, "parameters": json_text(&t.parameters)
            }})
        })
        .collect()
}

/// A role's name in the OpenAI shape, which Ollama copies.
fn role_name(role: super::types::Role) -> &'static str {
    use super::types::Role;
    match role {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

/// An id for a tool call when the provider gives none (Gemini, Ollama).
fn synthetic_call_id(n: usize) -> String {
    format!("call_{n}")
}

/// Number from a JSON field, as u32.
fn count(value: &Value) -> u32 {
    count_of(value.as_u64())
}

/// A token count as kept: none is 0, more than a `u32` holds is its most.
fn count_of(n: Option<u64>) -> u32 {
    n.map_or(0, |n| n.min(u32::MAX as u64) as u32)
}
