//! `paddock tools`: the MCP servers of `[mcp.NAME]`, what each offers, and a
//! call of one tool — the operator's check that a server is reachable and
//! does what agents will be granted.

use super::{EXIT_AGENT_ERROR, EXIT_PROVIDER, EXIT_USAGE, fail};
use crate::config::Settings;
use crate::tools::{Servers, ToolError};
use clap::Subcommand;
use serde_json::{Value, json};

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Connect to every MCP server of [mcp.NAME] and list its tools as server/tool
    #[command(after_help = "Example:\n  paddock tools list --json\n\nExit code 8 when a server cannot be reached.")]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Call one tool with JSON arguments and print its result
    #[command(
        after_help = "Example:\n  paddock tools call fetch/get --args '{\"url\": \"https://example.com\"}'\n\nExit codes: 0 ok, 1 the tool answered an error, 2 no such server, bad arguments, 8 unreachable or timed out"
    )]
    Call {
        /// The tool, as server/tool
        tool: String,
        /// Its arguments, a JSON object
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

pub async fn tools(settings: Settings, command: ToolsCommand) -> u8 {
    let servers = Servers::new(settings.mcp.iter().cloned());
    match command {
        ToolsCommand::List { json } => list(&servers, json).await,
        ToolsCommand::Call { tool, args } => call(&servers, &tool, &args).await,
    }
}

async fn list(servers: &Servers, json: bool) -> u8 {
    if servers.names().is_empty() {
        eprintln!("note: no MCP servers are configured; add [mcp.NAME] with command = [...] or url = \"...\"");
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for name in servers.names() {
        match servers.list(&name).await {
            Ok(tools) => rows.extend(tools.into_iter().map(|t| {
                json!({
                    "tool": format!("{name}/{}", t.name),
                    "description": t.description.as_deref().unwrap_or(""),
                    "input_schema": Value::Object(t.input_schema.as_ref().clone()),
                })
            })),
            Err(e) => {
                failed = true;
                rows.push(json!({ "server": name, "error": e.to_string() }));
            }
        }
    }
    if json {
        println!("{}", Value::Array(rows));
    } else {
        for row in &rows {
            match row.get("error") {
                Some(error) => {
                    println!("{}  error: {}", row["server"].as_str().unwrap_or(""), error.as_str().unwrap_or(""))
                }
                None => {
                    println!("{}  {}", row["tool"].as_str().unwrap_or(""), row["description"].as_str().unwrap_or(""))
                }
            }
        }
    }
    if failed { EXIT_PROVIDER } else { 0 }
}

async fn call(servers: &Servers, tool: &str, args: &str) -> u8 {
    let Some((server, name)) = tool.split_once('/') else {
        return fail(EXIT_USAGE, format!("{tool:?}: name a tool as server/tool (paddock tools list shows them)"));
    };
    let arguments = match serde_json::from_str::<Value>(args) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return fail(EXIT_USAGE, "--args: a JSON object"),
        Err(e) => return fail(EXIT_USAGE, format!("--args: not JSON: {e}")),
    };
    match servers.call(server, name, arguments).await {
        Ok(result) => {
            println!("{}", serde_json::to_string(&result).unwrap_or_default());
            if result.is_error == Some(true) { EXIT_AGENT_ERROR } else { 0 }
        }
        Err(e @ (ToolError::Denied(_) | ToolError::InvalidArguments(_))) => fail(EXIT_USAGE, e),
        Err(e @ ToolError::Failed(_)) => fail(EXIT_AGENT_ERROR, e),
        Err(e @ (ToolError::Timeout(_) | ToolError::Unavailable(_))) => fail(EXIT_PROVIDER, e),
    }
}
