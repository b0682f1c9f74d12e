//! Outbound HTTP (`wasi:http/outgoing-handler`) for agents whose manifest
//! asks for hosts (`capabilities.http`) that their tenant grants.
//!
//! Every request is checked here before anything leaves the host: its host
//! and port against the grant (a redirect is a new request the agent makes,
//! checked the same way), then each address its name resolves to. A
//! loopback, private, link-local or otherwise non-public address is refused
//! unless the tenant's `http` grant names that very address or its
//! `http-private` names the host (a manifest naming an address under a
//! tenant's `"*"` is not enough), so a granted name cannot lead the host into its own
//! network by DNS; the connection then goes to the address checked, never to
//! a second lookup, and through no proxy. Bodies are bounded both ways (`limits.max-http-request-bytes`,
//! `max-http-response-bytes`) and the whole exchange by `limits.http-timeout`;
//! the response is read whole by the host before the agent sees it.
//! Redirects are not followed by the host.
//!
//! Every exchange is journaled as `http.request` (method, URL and headers;
//! status, headers and body, or the failure) at the place the agent sent it,
//! so a replay answers it from the journal without reaching the network.

use crate::caps::CallContext;
use crate::caps::log::{Severity, Source};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use paddock_core::Capabilities;
use paddock_core::TRACE_TARGET;
use paddock_core::hosts;
use paddock_journal::Reserved;
use paddock_tenants::Grants;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// What one invocation's requests are checked against.
pub struct HttpHooks {
    pub(super) call: Arc<CallContext>,
    pub(super) grants: Arc<Grants>,
    pub(super) requested: Arc<Capabilities>,
    /// Counts each request by outcome (`paddock_agent_http_requests_total`).
    pub(super) counted: Option<crate::caps::CountOutcome>,
}

/// A response as the journal keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct Exchange {
    status: u16,
    headers: Vec<(String, String)>,
    /// The body, in base64.
    body: String,
}

/// Why a request got no response, as the journal keeps it.
#[derive(Debug, Serialize, Deserialize)]
enum Failure {
    /// Refused by the host; the text says why.
    Denied(String),
    RequestTooLarge(u64),
    ResponseTooLarge(u64),
    Timeout,
    Dns(String),
    ConnectionRefused,
    Other(String),
}

impl Failure {
    /// Its outcome label.
    fn outcome(&self) -> &'static str {
        match self {
            Failure::Denied(_) => "denied",
            Failure::RequestTooLarge(_) => "request-too-large",
            Failure::ResponseTooLarge(_) => "response-too-large",
            Failure::Timeout => "timeout",
            Failure::Dns(_) => "dns",
            Failure::ConnectionRefused => "refused",
            Failure::Other(_) => "failed",
        }
    }

    fn error(self) -> Error {
        match self {
            Failure::Denied(why) => Error::InternalError(Some(format!("denied: {why}"))),
            Failure::RequestTooLarge(limit) => Error::HttpRequestBodySize(Some(limit)),
            Failure::ResponseTooLarge(limit) => Error::HttpResponseBodySize(Some(limit)),
            Failure::Timeout => Error::HttpResponseTimeout,
            Failure::Dns(why) => Error::DnsError { rcode: Some(why), info_code: None },
            Failure::ConnectionRefused => Error::ConnectionRefused,
            Failure::Other(why) => Error::InternalError(Some(why)),
        }
    }
}

type Answered = Result<Exchange, Failure>;
type Sent = Result<(http::Response<WasiBody>, Box<dyn Future<Output = Result<(), Error>> + Send>), Error>;

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let (call, grants, requested) = (self.call.clone(), self.grants.clone(), self.requested.clone());
        let counted = self.counted.clone();
        // The place in the journal is taken now, as the agent sends it.
        let mut place = None;
        if let Some(tape) = call.journal.as_deref() {
            let mut headers: Vec<(String, String)> = request
                .headers()
                .iter()
                .filter(|(name, _)| *name != http::header::HOST)
                .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect();
            headers.sort();
            let key = (request.method().as_str(), request.uri().to_string(), headers);
            match tape.reserve::<_, Answered>("http.request", &key) {
                Ok(Reserved::Answer(recorded)) => return Box::new(replayed(call, request, recorded)),
                Ok(Reserved::Place(at)) => place = at,
                Err(d) => return Box::new(async move { Err(Error::InternalError(Some(d.to_string()))) }),
            }
        }
        let span = tracing::info_span!(
            target: TRACE_TARGET,
            "http",
            otel.name = "http.request",
            url = %request.uri(),
            outcome = tracing::field::Empty,
        );
        Box::new(
            async move {
                let answered = send(&call, &grants, &requested, request, options).await;
                let outcome = match &answered {
                    Ok(e) => ["1xx", "2xx", "3xx", "4xx", "5xx"]
                        .get(usize::from(e.status / 100).saturating_sub(1))
                        .copied()
                        .unwrap_or("failed"),
                    Err(f) => f.outcome(),
                };
                tracing::Span::current().record("outcome", outcome);
                if let Some(count) = &counted {
                    count(outcome);
                }
                if let Some(tape) = call.journal.as_deref() {
                    tape.fill(place, &answered);
                }
                respond(&call, answered)
            }
            .instrument(span),
        )
    }
}

/// A replayed exchange: the recorded answer, the agent's body read and dropped.
async fn replayed(call: Arc<CallContext>, request: http::Request<WasiBody>, recorded: Option<Answered>) -> Sent {
    let _ = read_whole(request.into_body(), call.caps.http_request_bytes).await;
    let answered = recorded.unwrap_or_else(|| Err(Failure::Other("the recorded request never got an answer".into())));
    respond(&call, answered)
}

/// The agent's response, or the error it gets (also noted in its log).
fn respond(call: &CallContext, answered: Answered) -> Sent {
    let error = match answered {
        Ok(exchange) => match response(exchange) {
            Ok(r) => return Ok((r, Box::new(async { Ok(()) }))),
            Err(e) => e,
        },
        Err(failure) => failure.error(),
    };
    call.log.push(Severity::Warn, Source::Host, format!("http: {error}"));
    Err(error)
}

fn response(exchange: Exchange) -> Result<http::Response<WasiBody>, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(exchange.body)
        .map_err(|e| Error::InternalError(Some(format!("a journaled body is not base64: {e}"))))?;
    let mut answer = http::Response::builder().status(exchange.status);
    for (name, value) in exchange.headers {
        answer = answer.header(name, value);
    }
    let body = Full::new(Bytes::from(bytes)).map_err(|never| match never {}).boxed_unsync();
    answer.body(body).map_err(|e| Error::InternalError(Some(e.to_string())))
}

async fn send(
    call: &CallContext,
    grants: &Grants,
    requested: &Capabilities,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Answered {
    let started = Instant::now();
    let uri = request.uri().clone();
    let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
    let name = uri.host().ok_or_else(|| Failure::Other("the request has no host".into()))?.trim_matches(['[', ']']);
    let host = hosts::normalize(name);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    if !grants.allows_host(&host, port) {
        return Err(Failure::Denied(grants.host_denial(&host, port, &call.agent, &call.tenant, &requested.http)));
    }
    let limit = call.caps.http_timeout;
    let left = |started: Instant| limit.saturating_sub(started.elapsed());
    let connect = options.and_then(|o| o.connect_timeout).unwrap_or(limit).min(limit);
    let address = tokio::time::timeout(connect, address(grants, &host, port))
        .await
        .map_err(|_| Failure::Dns(format!("no answer for {host} within {}", paddock_core::Span(connect))))??;

    let (parts, body) = request.into_parts();
    let body = read_whole(body, call.caps.http_request_bytes).await?;
    paddock_gateway::install_crypto();
    let client = reqwest::Client::builder()
        .resolve(name, address)
        .redirect(reqwest::redirect::Policy::none())
        // Through no proxy: a proxy would look the name up again.
        .no_proxy()
        .connect_timeout(connect)
        .build()
        .map_err(|e| Failure::Other(format!("cannot make an HTTP client: {e}")))?;
    let mut headers = parts.headers;
    headers.remove(http::header::HOST);
    let sending = client.request(parts.method, uri.to_string()).headers(headers).body(body).send();
    let mut response =
        tokio::time::timeout(left(started), sending).await.map_err(|_| Failure::Timeout)?.map_err(|e| match () {
            () if e.is_timeout() => Failure::Timeout,
            () if e.is_connect() => Failure::ConnectionRefused,
            () => Failure::Other(e.to_string()),
        })?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let cap = call.caps.http_response_bytes;
    let mut bytes = Vec::new();
    loop {
        let chunk = tokio::time::timeout(left(started), response.chunk()).await.map_err(|_| Failure::Timeout)?;
        match chunk.map_err(|e| Failure::Other(e.to_string()))? {
            Some(piece) if (bytes.len() + piece.len()) as u64 > cap => return Err(Failure::ResponseTooLarge(cap)),
            Some(piece) => bytes.extend_from_slice(&piece),
            None => break,
        }
    }
    Ok(Exchange { status, headers, body: base64::engine::general_purpose::STANDARD.encode(bytes) })
}

/// The address to connect to for `host`: itself when it is an address, else
/// what its name resolves to, each checked.
async fn address(grants: &Grants, host: &str, port: u16) -> Result<SocketAddr, Failure> {
    let literal = host.trim_matches(['[', ']']).parse::<IpAddr>().ok();
    let addresses: Vec<SocketAddr> = match literal {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port)).await.map_err(|e| Failure::Dns(e.to_string()))?.collect(),
    };
    // An address the tenant's grant names, or a host its http-private names.
    let explicit = grants.http_private.iter().any(|p| hosts::matches(p, host, port));
    for address in &addresses {
        if let Some(kind) = hosts::non_public(address.ip()).filter(|_| !explicit) {
            let ip = address.ip();
            let how = if literal.is_some() { "is".to_string() } else { format!("resolves to {ip}, which is") };
            return Err(Failure::Denied(format!(
                "{host} {how} a {kind} address; only an address the tenant's http grant names, or a host its \
                 http-private names, may be reached there"
            )));
        }
    }
    addresses.first().copied().ok_or_else(|| Failure::Dns(format!("{host} has no address")))
}

/// A body read whole, refused past `limit` bytes.
async fn read_whole(mut body: WasiBody, limit: u64) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Failure::Other(format!("the request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if (bytes.len() + data.len()) as u64 > limit {
                return Err(Failure::RequestTooLarge(limit));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}
