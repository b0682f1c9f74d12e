//! `paddock:agent/llm`: completions through the operator's routes.
//!
//! The glue checks sizes and grants, converts between the WIT types and the
//! gateway's, and keeps each open stream in a resource table. The agent sees
//! a provider's configured name, the model, usage and attempts — never a
//! URL or a key.

use super::CallContext;
use super::wit::llm::{self as wit, Error, Host, HostCompletionStream, Request, Response, Usage};
use paddock_core::Capabilities;
use paddock_gateway::types::{ChatRequest, Message, Role, ToolCall, ToolSpec};
use paddock_gateway::{Caller, Completion, Gateway, LlmError, ReplyStream};
use paddock_journal as journal;
use paddock_tenants::Grants;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable};

/// The host side of a `completion-stream`.
pub struct CompletionStream {
    /// The provider's stream; `None` when replayed from a journal.
    live: Option<ReplyStream>,
    /// Whether its usage was charged to the run's budget.
    charged: bool,
    /// Which stream of the invocation it is, from 1 (how the journal names it).
    number: u32,
}

/// The most streams one invocation may hold open at once.
const MAX_OPEN_STREAMS: usize = 64;

/// Per-invocation state of the `llm` interface.
pub struct LlmCtx {
    call: Arc<CallContext>,
    gateway: Option<Gateway>,
    grants: Arc<Grants>,
    requested: Arc<Capabilities>,
    streams: ResourceTable,
    open: usize,
    /// Streams opened so far.
    opened: u32,
}

impl LlmCtx {
    /// The llm interface for one invocation: `grants.routes` are the routes
    /// its manifest asked for and its tenant granted; without a gateway every
    /// route is unknown.
    pub fn new(
        call: Arc<CallContext>,
        gateway: Option<Gateway>,
        grants: Arc<Grants>,
        requested: Arc<Capabilities>,
    ) -> Self {
        LlmCtx { call, gateway, grants, requested, streams: ResourceTable::new(), open: 0, opened: 0 }
    }

    fn check_request(&self, req: &Request) -> wasmtime::Result<()> {
        let size = req.route.len()
            + req.response_schema.as_ref().map_or(0, String::len)
            + req.conversation.as_ref().map_or(0, String::len)
            + req.stop.iter().map(String::len).sum::<usize>()
            + req.tools.iter().map(|t| t.name.len() + t.description.len() + t.parameters.len()).sum::<usize>()
            + req
                .messages
                .iter()
                .map(|m| {
                    m.content.len()
                        + m.tool_call_id.as_ref().map_or(0, String::len)
                        + m.tool_calls.iter().map(|c| c.id.len() + c.name.len() + c.arguments.len()).sum::<usize>()
                })
                .sum::<usize>();
        self.call.check_size("llm request", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")
    }

    /// The gateway, if `route` is granted to this agent.
    fn granted(&self, route: &str) -> Result<&Gateway, Error> {
        if !self.grants.routes.iter().any(|r| r == route) {
            let call = &self.call;
            let capability = format!("route {route:?}");
            let routes = &self.requested.routes;
            return Err(Error::Denied(self.grants.denial(
                &capability,
                &call.agent,
                &call.tenant,
                "capabilities.routes",
                routes,
            )));
        }
        self.gateway.as_ref().ok_or_else(|| Error::Denied(format!("no route named {route:?}")))
    }

    /// Refuses a call when the run's budget is spent.
    fn affordable(&self) -> Result<(), Error> {
        self.call.budget.as_ref().map_or(Ok(()), |b| b.check().map_err(|e| Error::BudgetExceeded(e.to_string())))
    }

    /// Charges the run's budget with what a call used.
    fn charge(&self, usage: &Usage) {
        if let Some(b) = &self.call.budget {
            b.charge(u64::from(usage.input_tokens) + u64::from(usage.output_tokens), usage.cost_micros);
        }
    }

    fn caller(&self) -> Caller {
        Caller { tenant: self.call.tenant.clone(), agent: self.call.agent.clone() }
    }
}

fn request(req: Request) -> ChatRequest {
    ChatRequest {
        route: req.route,
        messages: req
            .messages
            .into_iter()
            .map(|m| Message {
                role: match m.role {
                    wit::Role::System => Role::System,
                    wit::Role::User => Role::User,
                    wit::Role::Assistant => Role::Assistant,
                    wit::Role::Tool => Role::Tool,
                },
                content: m.content,
                tool_calls: m
                    .tool_calls
                    .into_iter()
                    .map(|c| ToolCall { id: c.id, name: c.name, arguments: c.arguments })
                    .collect(),
                tool_call_id: m.tool_call_id,
            })
            .collect(),
        tools: req
            .tools
            .into_iter()
            .map(|t| ToolSpec { name: t.name, description: t.description, parameters: t.parameters })
            .collect(),
        response_schema: req.response_schema,
        max_tokens: req.max_tokens,
        temperature: req.temperature,
        stop: req.stop,
        conversation: req.conversation,
        target: None,
    }
}

fn response(c: Completion) -> Response {
    Response {
        text: c.reply.text,
        tool_calls: c
            .reply
            .tool_calls
            .into_iter()
            .map(|t| wit::ToolCall { id: t.id, name: t.name, arguments: t.arguments })
            .collect(),
        provider: c.provider,
        model: c.model,
        usage: Usage { input_tokens: c.tokens.input, output_tokens: c.tokens.output, cost_micros: c.cost_micros },
        finish_reason: c.reply.finish.as_str().to_string(),
        attempts: c.attempts,
    }
}

fn error(e: LlmError) -> Error {
    match e {
        LlmError::Denied(m) => Error::Denied(m),
        LlmError::BudgetExceeded(m) => Error::BudgetExceeded(m),
        LlmError::RateLimited(wait) => Error::RateLimited(wait.as_millis().min(u64::MAX as u128) as u64),
        LlmError::InvalidRequest(m) => Error::InvalidRequest(m),
        LlmError::ContentFiltered(m) => Error::ContentFiltered(m),
        LlmError::Timeout(_) => Error::Timeout,
        LlmError::Unavailable(m) => Error::Unavailable(m),
    }
}

impl LlmCtx {
    async fn complete_now(&mut self, (req,): (Request,)) -> wasmtime::Result<Result<Response, Error>> {
        let gateway = match self.granted(&req.route).and_then(|g| self.affordable().map(|()| g)) {
            Ok(g) => g,
            Err(e) => return Ok(Err(e)),
        };
        let answer = gateway.complete(&self.caller(), request(req)).await.map(response).map_err(|f| error(f.error));
        if let Ok(r) = &answer {
            self.charge(&r.usage);
        }
        Ok(answer)
    }

    /// Opens a stream; `opened` receives it, and the journal what the agent learns (ok or the error).
    async fn stream_now(
        &mut self,
        req: Request,
        opened: &mut Option<ReplyStream>,
    ) -> wasmtime::Result<Result<(), Error>> {
        if self.open >= MAX_OPEN_STREAMS {
            return Ok(Err(Error::InvalidRequest(format!(
                "{MAX_OPEN_STREAMS} streams are already open; drop one before starting another"
            ))));
        }
        let gateway = match self.granted(&req.route).and_then(|g| self.affordable().map(|()| g)) {
            Ok(g) => g,
            Err(e) => return Ok(Err(e)),
        };
        Ok(gateway.stream(&self.caller(), request(req)).await.map(|s| *opened = Some(s)).map_err(|f| error(f.error)))
    }

    async fn embed_now(
        &mut self,
        (route, inputs): (String, Vec<String>),
    ) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let gateway = match self.granted(&route) {
            Ok(g) => g,
            Err(e) => return Ok(Err(e)),
        };
        Ok(gateway.embed(&self.caller(), &route, None, &inputs).await.map_err(|f| error(f.error)))
    }

    async fn next_now(
        &mut self,
        stream: &Resource<CompletionStream>,
    ) -> wasmtime::Result<Option<Result<String, Error>>> {
        let s = self.streams.get_mut(stream)?;
        let live = s.live.as_mut().ok_or_else(not_live)?;
        let piece = live.next_text().await.map(|piece| piece.map_err(error));
        if piece.is_none() && !s.charged {
            // The answer is complete: charge the run's budget once.
            s.charged = true;
            if let Some((tokens, cost)) = live.usage() {
                let usage = Usage { input_tokens: tokens.input, output_tokens: tokens.output, cost_micros: cost };
                self.charge(&usage);
            }
        }
        Ok(piece)
    }

    fn live(&self, stream: &Resource<CompletionStream>) -> wasmtime::Result<&ReplyStream> {
        self.streams.get(stream)?.live.as_ref().ok_or_else(not_live)
    }
}

/// A stream opened in a replay has nothing behind it: every call on it is
/// answered from the journal, or diverges before reaching it.
fn not_live() -> wasmtime::Error {
    wasmtime::Error::msg("a replayed stream has no provider behind it")
}

// Every call goes through the journal: recorded, or answered from it in a
// replay without reaching the gateway (size checks come first: an oversized
// request traps in a replay too).
impl Host for LlmCtx {
    async fn complete(&mut self, req: Request) -> wasmtime::Result<Result<Response, Error>> {
        self.check_request(&req)?;
        let journal = self.call.journal.clone();
        journal::through(journal.as_deref(), "llm.complete", (req,), |a| self.complete_now(a)).await
    }

    async fn stream(&mut self, req: Request) -> wasmtime::Result<Result<Resource<CompletionStream>, Error>> {
        self.check_request(&req)?;
        let (journal, mut live) = (self.call.journal.clone(), None);
        let opened =
            journal::through(journal.as_deref(), "llm.stream", (req,), |(req,)| self.stream_now(req, &mut live))
                .await?;
        if let Err(e) = opened {
            return Ok(Err(e));
        }
        self.open += 1;
        self.opened += 1;
        Ok(Ok(self.streams.push(CompletionStream { live, charged: false, number: self.opened })?))
    }

    async fn embed(&mut self, route: String, inputs: Vec<String>) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let size = route.len() + inputs.iter().map(String::len).sum::<usize>();
        self.call.check_size("embed request", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        let journal = self.call.journal.clone();
        journal::through(journal.as_deref(), "llm.embed", (route, inputs), |a| self.embed_now(a)).await
    }
}

// A stream's calls are journaled by the stream's number (the order it was
// opened in), so a replay serves each stream its own pieces.
impl HostCompletionStream for LlmCtx {
    async fn next(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Result<String, Error>>> {
        let number = self.streams.get(&stream)?.number;
        let journal = self.call.journal.clone();
        journal::through(journal.as_deref(), "llm.stream.next", (number,), |_| self.next_now(&stream)).await
    }

    async fn usage(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Usage>> {
        let number = self.streams.get(&stream)?.number;
        journal::through_sync(self.call.journal.as_deref(), "llm.stream.usage", (number,), |_| {
            Ok(self.live(&stream)?.usage().map(|(tokens, cost)| Usage {
                input_tokens: tokens.input,
                output_tokens: tokens.output,
                cost_micros: cost,
            }))
        })
    }

    async fn response(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Response>> {
        let number = self.streams.get(&stream)?.number;
        journal::through_sync(self.call.journal.as_deref(), "llm.stream.response", (number,), |_| {
            Ok(self.live(&stream)?.completion().map(response))
        })
    }

    async fn drop(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<()> {
        self.streams.delete(stream)?;
        self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

/// [`HasData`] marker for the `llm` interface.
pub struct Llm;

impl HasData for Llm {
    type Data<'a> = &'a mut LlmCtx;
}

impl super::Capability for LlmCtx {
    const INTERFACE: &'static str = "llm";

    fn new(call: &Arc<CallContext>, lent: &super::Lent) -> Self {
        LlmCtx::new(call.clone(), lent.gateway.clone(), lent.grants.clone(), lent.requested.clone())
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::llm::add_to_linker::<T, Llm>(linker, get)
    }
}
