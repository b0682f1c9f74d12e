//! `paddock:agent/llm`: completions through the operator's routes.
//!
//! This host has no providers yet, so every route is unknown and every call
//! answers `denied` naming the route — the truthful answer, never a fake reply.

use super::CallContext;
use super::wit::llm::{Error, Host, HostCompletionStream, Request, Response, Usage};
use std::collections::VecDeque;
use std::sync::Arc;
use wasmtime::component::{HasData, Resource, ResourceTable};

/// The host side of a `completion-stream`: pieces not yet taken, and the
/// usage once the answer is complete.
#[derive(Debug, Default)]
pub struct CompletionStream {
    /// Pieces (or the error that ends the stream) waiting for `next`.
    pub pending: VecDeque<Result<String, Error>>,
    /// Usage of the whole answer, once known.
    pub usage: Option<Usage>,
}

/// Per-invocation state of the `llm` interface.
pub struct LlmCtx {
    call: Arc<CallContext>,
    streams: ResourceTable,
}

impl LlmCtx {
    /// The llm interface for one invocation.
    pub fn new(call: Arc<CallContext>) -> Self {
        LlmCtx { call, streams: ResourceTable::new() }
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

    fn route(&self, route: &str) -> Error {
        Error::Denied(format!("no route named {route:?}"))
    }
}

impl Host for LlmCtx {
    async fn complete(&mut self, req: Request) -> wasmtime::Result<Result<Response, Error>> {
        self.check_request(&req)?;
        Ok(Err(self.route(&req.route)))
    }

    async fn stream(&mut self, req: Request) -> wasmtime::Result<Result<Resource<CompletionStream>, Error>> {
        self.check_request(&req)?;
        Ok(Err(self.route(&req.route)))
    }

    async fn embed(&mut self, route: String, inputs: Vec<String>) -> wasmtime::Result<Result<Vec<Vec<f32>>, Error>> {
        let size = route.len() + inputs.iter().map(String::len).sum::<usize>();
        self.call.check_size("embed request", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        Ok(Err(self.route(&route)))
    }
}

impl HostCompletionStream for LlmCtx {
    async fn next(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Result<String, Error>>> {
        Ok(self.streams.get_mut(&stream)?.pending.pop_front())
    }

    async fn usage(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<Option<Usage>> {
        Ok(self.streams.get(&stream)?.usage)
    }

    async fn drop(&mut self, stream: Resource<CompletionStream>) -> wasmtime::Result<()> {
        self.streams.delete(stream)?;
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
