//! Agents as MCP tools: `paddock serve` speaks the Model Context Protocol
//! (Streamable HTTP, by the official Rust SDK) at `/mcp`, behind the same API
//! keys as every other route.
//!
//! `tools/list` lists the agents the key's tenant may run that are serving,
//! each with its manifest's `[tool]` description and input schema (`{"type":
//! "object"}` without one), and the flows of `serve.mcp-flows` whose agents
//! the tenant may all run (a flow takes the name from an agent that has it).
//! `tools/call` is an invocation for that tenant, under its limits, budget
//! and concurrency cap: the output as text, and as `structuredContent` too
//! when it is a JSON object; an agent's failure or limit is a result with
//! `isError` and the message. A tool the tenant does not see is an unknown
//! tool. A flow's call starts a run, sends a progress notification as each
//! step finishes (when the client asked for progress) and answers with the
//! run's output; a client that cancels the call cancels the run.
//!
//! Every request stands alone (no session is kept), so any host of a fleet
//! answers any request.

use super::flows::{SpecError, spec};
use crate::config::ServeAuth;
use crate::flow::{Event, Flows, RunStatus, StartError};
use crate::keys::{Caller, Role};
use crate::runtime::Runtime;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;

/// The MCP server of `paddock serve`, one per request.
#[derive(Clone)]
pub(super) struct Tools {
    runtime: Runtime,
    flows: Flows,
}

/// The `/mcp` service: stateless, answering in JSON unless a call sends
/// progress first, its requests bounded like an agent's input.
pub(super) fn service(runtime: Runtime, flows: Flows) -> StreamableHttpService<Tools, NeverSessionManager> {
    let settings = runtime.settings();
    let limit = usize::try_from(settings.caps.arg_bytes).unwrap_or(usize::MAX).saturating_add(64 * 1024);
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(limit);
    // The loopback-only Host check guards servers that trust whoever reaches
    // them; with keys, a request without one never gets here.
    if settings.serve.auth == ServeAuth::Keys {
        config = config.disable_allowed_hosts();
    }
    let tools = Tools { runtime, flows };
    StreamableHttpService::new(move || Ok(tools.clone()), Arc::new(NeverSessionManager::default()), config)
}

/// The caller the key check put on the HTTP request.
fn caller(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    let caller = ctx.extensions.get::<axum::http::request::Parts>().and_then(|p| p.extensions.get::<Caller>());
    let caller = caller.cloned().ok_or_else(|| ErrorData::internal_error("the request carries no caller", None))?;
    if !caller.role.allows(Role::Run) {
        let message = format!("a {} key may not call tools; that needs the {} role", caller.role, Role::Run);
        return Err(ErrorData::invalid_request(message, None));
    }
    Ok(caller)
}

fn unknown(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("no tool {name:?} (tools/list lists the ones this key may call)"), None)
}

/// The input schema of a tool without one: any object.
fn any_object() -> Arc<JsonObject> {
    let mut schema = JsonObject::new();
    schema.insert("type".into(), json!("object"));
    Arc::new(schema)
}

impl Tools {
    /// The agents `caller`'s tenant may run, serving now, as tools.
    fn agent_tools(&self, caller: &Caller) -> Vec<Tool> {
        let Ok(policy) = self.runtime.settings().tenants.get(&caller.tenant) else { return Vec::new() };
        let serving = self.runtime.plugins().into_iter().filter(|p| p.serving.is_some());
        let allowed = serving.filter(|p| policy.check_agent(&p.name).is_ok());
        allowed.filter_map(|p| self.runtime.load(&p.name).ok()).map(|agent| agent_tool(&agent)).collect()
    }

    /// The flows of `serve.mcp-flows` whose every agent `caller`'s tenant
    /// may run, as tools; a spec missing or invalid now is left out.
    fn flow_tools(&self, caller: &Caller) -> Vec<Tool> {
        let Ok(policy) = self.runtime.settings().tenants.get(&caller.tenant) else { return Vec::new() };
        let names = self.runtime.settings().serve.mcp_flows.clone();
        // Named as `serve.mcp-flows` names them (the file), which calls find.
        let specs = names.iter().filter_map(|name| spec(&self.flows, name).ok().map(|(flow, _)| (name, flow)));
        let allowed = specs.filter(|(_, flow)| flow.agents().keys().all(|a| policy.check_agent(a).is_ok()));
        allowed
            .map(|(name, flow)| {
                let description = match flow.description.as_str() {
                    "" => format!("runs the flow {}", flow.name),
                    text => text.to_string(),
                };
                Tool::new(name.clone(), description, any_object())
            })
            .collect()
    }

    /// Runs agent `name` for `caller` on `arguments`.
    async fn call_agent(&self, caller: &Caller, name: &str, arguments: Value) -> Result<CallToolResult, ErrorData> {
        let allowed = self.runtime.settings().tenants.get(&caller.tenant).is_ok_and(|p| p.check_agent(name).is_ok());
        if !allowed {
            return Err(unknown(name));
        }
        let (agent, outcome) = match super::run_for(&self.runtime, caller, name, &arguments.to_string()).await {
            Ok(ran) => ran,
            Err(super::NotRun::Missing(_)) => return Err(unknown(name)),
            Err(
                super::NotRun::NotServing(m)
                | super::NotRun::Options(m)
                | super::NotRun::Refused(m)
                | super::NotRun::Busy(m),
            ) => {
                return Ok(failure(m));
            }
        };
        Ok(match &outcome.result {
            Ok(output) => answer(output, agent.manifest.as_ref().and_then(|m| m.tool.as_ref())),
            Err(e) => failure(e),
        })
    }

    /// Runs flow `name` of `serve.mcp-flows` for `caller` on `arguments`.
    async fn call_flow(
        &self,
        caller: &Caller,
        name: &str,
        arguments: Value,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let (flow, origin) = match spec(&self.flows, name) {
            Ok(found) => found,
            Err(SpecError::Missing(_)) => return Err(unknown(name)),
            Err(e) => return Ok(failure(e.message())),
        };
        let policy = self.runtime.settings().tenants.get(&caller.tenant);
        if !policy.is_ok_and(|p| flow.agents().keys().all(|a| p.check_agent(a).is_ok())) {
            return Err(unknown(name));
        }
        let (sender, mut finished) = tokio::sync::mpsc::channel::<String>(256);
        let sink: crate::flow::events::Sink = Arc::new(move |event| {
            if let Event::StepFinished { step, .. } = event {
                // A client too slow for its progress misses some; the run goes on.
                let _ = sender.try_send(step);
            }
        });
        let start = crate::flow::Start { tenant: Some(caller.tenant.to_string()), run: None, events: Some(sink) };
        let started = match self.flows.begin_off_thread(flow, &origin, arguments, start).await {
            Ok(started) => started,
            Err(StartError::Load(m) | StartError::Denied(m) | StartError::Exists(m)) => return Ok(failure(m)),
            Err(StartError::Full(m) | StartError::Store(m)) => return Ok(failure(m)),
        };
        let run = started.run().to_string();
        let mut running = super::fronts::spawn_shared(started.finish());
        let mut progress = Progress { token: ctx.meta.get_progress_token(), steps: 0 };
        let report = loop {
            tokio::select! {
                ended = &mut running => break ended,
                Some(step) = finished.recv() => progress.step_finished(ctx, &step).await,
                _ = ctx.ct.cancelled() => {
                    let _ = self.flows.cancel(&run, "mcp client");
                    break (&mut running).await;
                }
            }
        };
        // The steps that finished as the run ended.
        while let Ok(step) = finished.try_recv() {
            progress.step_finished(ctx, &step).await;
        }
        Ok(match report {
            Ok(Ok(report)) if report.status == RunStatus::Succeeded => {
                answer(&report.output.unwrap_or(Value::Null).to_string(), None)
            }
            Ok(Ok(report)) => failure(format!(
                "run {run} {}: {}",
                report.status.word(),
                report.error.as_deref().unwrap_or("no reason given")
            )),
            Ok(Err(m)) => failure(format!("run {run}: {m}")),
            Err(e) => failure(format!("run {run} stopped: {e}")),
        })
    }
}

/// The progress a flow's call reports: one more for each finished step.
struct Progress {
    /// The client's token, when it asked for progress.
    token: Option<rmcp::model::ProgressToken>,
    steps: u32,
}

impl Progress {
    async fn step_finished(&mut self, ctx: &RequestContext<RoleServer>, step: &str) {
        self.steps += 1;
        if let Some(token) = &self.token {
            let note = ProgressNotificationParam::new(token.clone(), f64::from(self.steps))
                .with_message(format!("step {step} finished"));
            // A client gone away misses it; the run goes on.
            let _ = ctx.peer.notify_progress(note).await;
        }
    }
}

/// What `tools/list` says of `agent`.
fn agent_tool(agent: &crate::runtime::Agent) -> Tool {
    let manifest = agent.manifest.as_ref();
    let tool = manifest.and_then(|m| m.tool.as_ref());
    let description = tool
        .and_then(|t| t.description.clone())
        .or_else(|| manifest.map(|m| m.description.clone()).filter(|d| !d.is_empty()))
        .unwrap_or_else(|| format!("runs the agent {}", agent.name));
    let input = tool.and_then(|t| t.input_schema.clone()).map_or_else(any_object, Arc::new);
    let listed = Tool::new(agent.name.to_string(), description, input);
    match tool.and_then(|t| t.output_schema.clone()) {
        Some(schema) => listed.with_raw_output_schema(Arc::new(schema)),
        None => listed,
    }
}

/// A successful call's result: a JSON string as its text, an object as text
/// and `structuredContent`, anything else as it is. A tool that declares an
/// output schema must answer with an object.
fn answer(output: &str, tool: Option<&crate::plugins::manifest::Tool>) -> CallToolResult {
    let declared = tool.is_some_and(|t| t.output_schema.is_some());
    match serde_json::from_str::<Value>(output) {
        Ok(Value::String(text)) if !declared => CallToolResult::success(vec![ContentBlock::text(text)]),
        Ok(object @ Value::Object(_)) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(output)]);
            result.structured_content = Some(object);
            result
        }
        _ if declared => failure("the agent's output is not a JSON object, which its tool.output-schema promises"),
        _ => CallToolResult::success(vec![ContentBlock::text(output)]),
    }
}

/// A call that ran and failed: `isError`, with why.
fn failure(message: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.to_string())])
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        let me = Implementation::new("paddock", env!("CARGO_PKG_VERSION"));
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(me)
            .with_instructions("Each tool is a sandboxed Paddock agent (or flow) your API key's tenant may run.")
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller(&ctx)?;
        let flows = self.flow_tools(&caller);
        let mut tools: Vec<Tool> =
            self.agent_tools(&caller).into_iter().filter(|a| !flows.iter().any(|f| f.name == a.name)).collect();
        tools.extend(flows);
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = caller(&ctx)?;
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let name = request.name.as_ref();
        let result = if self.runtime.settings().serve.mcp_flows.iter().any(|f| f == name) {
            self.call_flow(&caller, name, arguments, &ctx).await?
        } else {
            // A client that cancels stops the invocation, as a hang-up does.
            tokio::select! {
                result = self.call_agent(&caller, name, arguments) => result?,
                _ = ctx.ct.cancelled() => failure("cancelled by the client"),
            }
        };
        Ok(result.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_of(result: &CallToolResult) -> String {
        result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.clone()).collect()
    }

    #[test]
    fn an_object_output_is_text_and_structured_content_and_a_string_is_its_text() {
        let object = answer(r#"{"answer": 42}"#, None);
        assert_eq!(
            (object.structured_content, object.is_error, text_of(&answer(r#"{"answer": 42}"#, None))),
            (Some(json!({"answer": 42})), Some(false), r#"{"answer": 42}"#.to_string())
        );
        let string = answer(r#""hello""#, None);
        assert_eq!((text_of(&string), string.structured_content), ("hello".to_string(), None));
        assert_eq!(text_of(&answer("[1, 2]", None)), "[1, 2]");
    }

    #[test]
    fn a_tool_with_an_output_schema_that_answers_no_object_is_an_error() {
        let tool = crate::plugins::manifest::Tool {
            description: None,
            input_schema: None,
            output_schema: Some(any_object().as_ref().clone()),
        };
        let result = answer(r#""hello""#, Some(&tool));
        assert_eq!(result.is_error, Some(true));
        assert_eq!(text_of(&result), "the agent's output is not a JSON object, which its tool.output-schema promises");
    }
}
