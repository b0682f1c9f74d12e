//! `paddock:agent/tools`: the tools of the operator's MCP servers, named
//! `server/tool`, as far as the agent's grants reach.
//!
//! Every call is checked against the grants (what the manifest asked for
//! and the tenant granted), the tenant's rate and the run's budget, then
//! made through the host's [`Toolbox`] (the server's timeout and result cap)
//! — all inside the journal, so a replay answers it, refusals included,
//! without reaching a server. Arguments past `limits.max-arg-bytes` end the
//! invocation, as every oversized host call does.

use super::wit::tools::{Error, Host, Output, Tool};
use super::{CallContext, Capability, Lent, traced};
use paddock_core::{Capabilities, TRACE_TARGET};
use paddock_journal as journal;
use paddock_tenants::Grants;
use paddock_tools::{ToolError, Toolbox};
use std::sync::Arc;
use wasmtime::component::HasData;

/// Per-invocation state of the `tools` interface.
pub struct ToolsCtx {
    call: Arc<CallContext>,
    toolbox: Option<Arc<Toolbox>>,
    grants: Arc<Grants>,
    requested: Arc<Capabilities>,
    /// The tenant's tool calls per minute.
    rate: Option<u32>,
}

fn error(e: ToolError) -> Error {
    match e {
        ToolError::Denied(m) => Error::Denied(m),
        ToolError::InvalidArguments(m) => Error::InvalidArguments(m),
        ToolError::Failed(m) => Error::Failed(m),
        ToolError::Timeout(m) => Error::Timeout(m),
        ToolError::Unavailable(m) => Error::Unavailable(m),
    }
}

impl ToolsCtx {
    /// The toolbox, when the tool `name` is granted to this agent; the server
    /// it names, for the metrics.
    fn granted<'a>(&self, name: &'a str) -> Result<(&Arc<Toolbox>, &'a str), Error> {
        let (server, _) = paddock_core::tools::split(name).map_err(|e| Error::Denied(e.to_string()))?;
        if !self.grants.allows_tool(name) {
            let call = &self.call;
            return Err(Error::Denied(self.grants.tool_denial(name, &call.agent, &call.tenant, &self.requested.tools)));
        }
        let toolbox = self.toolbox.as_ref().ok_or_else(|| Error::Denied(format!("no MCP server {server:?}")))?;
        Ok((toolbox, server))
    }

    async fn available_now(&mut self) -> wasmtime::Result<Result<Vec<Tool>, Error>> {
        let Some(toolbox) = &self.toolbox else { return Ok(Ok(Vec::new())) };
        let listed = toolbox.list(&self.grants.tools).await.map_err(error);
        Ok(listed.map(|tools| {
            tools
                .into_iter()
                .map(|t| Tool { name: t.name, description: t.description, input_schema: t.input_schema })
                .collect()
        }))
    }

    async fn call_now(&mut self, (name, arguments): (String, String)) -> wasmtime::Result<Result<Output, Error>> {
        let (toolbox, server) = match self.granted(&name) {
            Ok(granted) => granted,
            Err(e) => {
                if let Some(toolbox) = &self.toolbox {
                    toolbox.refused(&self.call.tenant, paddock_core::tools::server_of(&name).unwrap_or(""), "denied");
                }
                return Ok(Err(e));
            }
        };
        let tenant = &self.call.tenant;
        let arguments = match serde_json::from_str::<serde_json::Value>(&arguments) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(other) => {
                toolbox.refused(tenant, server, "invalid-arguments");
                let kind = json_kind(&other);
                return Ok(Err(Error::InvalidArguments(format!(
                    "the arguments of {name} are {kind}, not a JSON object"
                ))));
            }
            Err(e) => {
                toolbox.refused(tenant, server, "invalid-arguments");
                return Ok(Err(Error::InvalidArguments(format!("the arguments of {name} are not JSON: {e}"))));
            }
        };
        if let Err(wait) = toolbox.admit(tenant, server, self.rate) {
            return Ok(Err(Error::RateLimited(wait.as_millis().max(1).min(u128::from(u64::MAX)) as u64)));
        }
        if let Some(budget) = &self.call.budget
            && let Err(spent) = budget.tool_call()
        {
            toolbox.refused(tenant, server, "budget-exceeded");
            return Ok(Err(Error::BudgetExceeded(spent.to_string())));
        }
        let output = toolbox.call(tenant, &name, arguments).await.map_err(error);
        Ok(output.map(|o| Output { text: o.text, structured: o.structured, content: o.content }))
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

// Every call goes through the journal: recorded, or answered from it in a
// replay without reaching a server; and is a span of the invocation's trace.
impl Host for ToolsCtx {
    async fn available(&mut self) -> wasmtime::Result<Result<Vec<Tool>, Error>> {
        let span = tracing::info_span!(target: TRACE_TARGET, "tools", otel.name = "tools.available", outcome = tracing::field::Empty);
        let journal = self.call.journal.clone();
        traced(span, journal::through(journal.as_deref(), "tools.available", (), |()| self.available_now())).await
    }

    async fn call(&mut self, name: String, arguments: String) -> wasmtime::Result<Result<Output, Error>> {
        let size = name.len() + arguments.len();
        self.call.check_size("tool call", size, self.call.caps.arg_bytes, "limits.max-arg-bytes")?;
        let span = tracing::info_span!(target: TRACE_TARGET, "tools", otel.name = "tools.call", tool = %name, outcome = tracing::field::Empty);
        let journal = self.call.journal.clone();
        traced(span, journal::through(journal.as_deref(), "tools.call", (name, arguments), |a| self.call_now(a))).await
    }
}

impl Capability for ToolsCtx {
    const INTERFACE: &'static str = "tools";

    fn new(call: &Arc<CallContext>, lent: &Lent) -> Self {
        ToolsCtx {
            call: call.clone(),
            toolbox: lent.tools.clone(),
            grants: lent.grants.clone(),
            requested: lent.requested.clone(),
            rate: lent.tool_rate,
        }
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::tools::add_to_linker::<T, Tools>(linker, get)
    }
}

/// [`HasData`] marker for the `tools` interface.
pub struct Tools;

impl HasData for Tools {
    type Data<'a> = &'a mut ToolsCtx;
}
