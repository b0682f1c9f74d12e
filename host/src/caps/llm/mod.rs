//! `paddock:agent/llm`: completions through the operator's routes.
//!
//! The glue checks sizes and grants, converts between the WIT types and the
//! gateway's, and keeps each open stream in a resource table. The agent sees
//! a provider's configured name, the model, usage and attempts — never a
//! URL or a key.

use super::CallContext;
use super::wit::llm::{self as wit, Error, Host, HostCompletionStream, Request, Response, Usage};
use crate::gateway::types::{ChatRequest, Message, Role, ToolCall, ToolSpec};
use crate::gateway::{Caller, Completion, Gateway, LlmError, ReplyStream};
use crate::plugins::Capabilities;
use crate::tenants::Grants;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable};

/// The host side of a `completion-stream`, and whether its usage was charged.
pub struct CompletionStream(ReplyStream, bool);

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
        LlmCtx { call, gateway, grants, requested, streams: ResourceTable::new(), open: 0 }
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
        self.call.budget.as_ref().map_or(Ok(()), |b| b.check().map_err(Error::BudgetExceeded))
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

impl Host for LlmCtx {
    async fn complete(&mut self, req: Request) -> wasmtime::Result<Result<Response, Error>> {
        self.check_request(&req)?;
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

    async fn stream(&mut self, req: Request) -> wasmtime::Result<Result<Resource<CompletionStream>, Error>> {
        self.check_request(&req)?;
        if self.open >= MAX_OPEN_STREAMS {
            return Ok(Err(Error::InvalidRequest(format!(
                "{MAX_OPEN_STREAMS} streams are already open; drop one before starting another"
            ))));
        }
        let gateway = match self.granted(&req.route).and_then(|g| self.affordable().map(|()| g)) {
            Ok(g) => g,
            Err(e) => return Ok(Err(e)),
        };
        match gateway.stream(&self.caller(), request(req)).await {
            Ok(stream) => {
                self.open += 1;
                Ok(Ok(self.streams.push(CompletionStream(stream, false))?))
            }
            Err(f) => Ok(Err(error(f.error))),
        }
    }

    async fn embed(&mut self, route: String, inputs: Vec<String>) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let size = route.len() + inputs.iter().map(String::len).sum::<usize>();
        self.call.check_size("embed request", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        let gateway = match self.granted(&route) {
            Ok(g) => g,
            Err(e) => return Ok(Err(e)),
        };
        Ok(gateway.embed(&self.caller(), &route, &inputs).await.map_err(|f| error(f.error)))
    }
}

impl HostCompletionStream for LlmCtx {
    async fn next(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Result<String, Error>>> {
        let s = self.streams.get_mut(&stream)?;
        let piece = s.0.next_text().await.map(|piece| piece.map_err(error));
        if piece.is_none() && !s.1 {
            // The answer is complete: charge the run's budget once.
            s.1 = true;
            if let Some((tokens, cost)) = s.0.usage() {
                let usage = Usage { input_tokens: tokens.input, output_tokens: tokens.output, cost_micros: cost };
                self.charge(&usage);
            }
        }
        Ok(piece)
    }

    async fn usage(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Usage>> {
        let stream = &self.streams.get(&stream)?.0;
        Ok(stream.usage().map(|(tokens, cost)| Usage {
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            cost_micros: cost,
        }))
    }

    async fn response(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Response>> {
        Ok(self.streams.get(&stream)?.0.completion().map(response))
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

/// Adds `paddock:agent/llm` to `linker`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    get: fn(&mut T) -> &mut LlmCtx,
) -> wasmtime::Result<()> {
    super::wit::llm::add_to_linker::<T, Llm>(linker, get)
}
