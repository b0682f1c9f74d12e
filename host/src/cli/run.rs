//! `paddock run`: one invocation, output on stdout, errors on stderr.

use super::{EXIT_AGENT_ERROR, EXIT_CRASH, EXIT_DENIED, EXIT_LIMIT, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::{DirGrant, Requested, Settings, Span};
use crate::runtime::{RunError, RunOptions, Runtime};
use crate::sandbox::InvokeError;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// A plugin name, or a path to a .wasm component (or an agent.toml)
    agent: String,
    /// The input, as JSON
    #[arg(long, default_value = "{}", conflicts_with = "input_file")]
    input: String,
    /// Read the input (JSON) from a file; `-` for stdin
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// Fuel limit (wasm operations; ~44 G/s of a busy loop)
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Memory limit in MiB
    #[arg(long, value_name = "MIB")]
    memory: Option<u64>,
    /// Wall-clock limit, e.g. 500ms, 10s, 2m
    #[arg(long, value_name = "DURATION", value_parser = parse_span)]
    timeout: Option<Span>,
    /// The tenant to run for [default: host.default-tenant]
    #[arg(long)]
    tenant: Option<String>,
    /// Lend a host directory read-only: HOST[::GUEST], guest path defaults to /data
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir: Vec<String>,
    /// Lend a host directory read-write: HOST[::GUEST]
    #[arg(long, value_name = "HOST[::GUEST]")]
    dir_write: Vec<String>,
    /// Run the plugin's build command first
    #[arg(long)]
    build: bool,
    /// Print one JSON object (output or error, logs, fuel, time) instead of plain output
    #[arg(long)]
    json: bool,
}

fn parse_span(text: &str) -> Result<Span, String> {
    Span::parse(text).map_err(|e| e.to_string())
}

pub async fn run(settings: Settings, args: RunArgs) -> u8 {
    let input = match read_input(&args) {
        Ok(input) => input,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    let mut dirs = Vec::new();
    for (specs, write) in [(&args.dir, false), (&args.dir_write, true)] {
        for spec in specs {
            match DirGrant::parse(spec, write) {
                Ok(grant) => dirs.push(grant),
                Err(message) => return fail(EXIT_USAGE, format!("--dir: {message}")),
            }
        }
    }
    let memory = match args.memory.map(|m| m.checked_mul(1 << 20)) {
        Some(None) => {
            return fail(EXIT_USAGE, format!("--memory {} MiB is too large", args.memory.unwrap_or_default()));
        }
        Some(Some(bytes)) => Some(bytes),
        None => None,
    };
    let runtime = match Runtime::new(settings) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CRASH, format!("cannot start the host: {e:#}")),
    };
    runtime.set_one_shot();
    if args.build {
        let manifest = match runtime.registry().find(&args.agent) {
            Ok(m) => m,
            Err(e) => return fail(EXIT_LOAD, e),
        };
        if let Err(code) = super::build::build_one(&manifest).await {
            return code;
        }
    }
    let agent = match runtime.load(&args.agent) {
        Ok(agent) => agent,
        Err(e) => return fail(EXIT_LOAD, e),
    };
    let options = RunOptions {
        tenant: args.tenant.clone(),
        run: None,
        overrides: Requested { fuel: args.fuel, memory, timeout: args.timeout.map(|t| t.0) },
        dirs,
        ..RunOptions::default()
    };
    let outcome = match runtime.run(&agent, &input, &options).await {
        Ok(outcome) => outcome,
        Err(RunError::Load(e)) => return fail(EXIT_LOAD, e),
        Err(RunError::Options(message)) => return fail(EXIT_USAGE, message),
        Err(RunError::Refused(message)) => return fail(EXIT_DENIED, message),
    };
    let code = match &outcome.result {
        Ok(_) => 0,
        Err(InvokeError::Failed { .. }) => EXIT_AGENT_ERROR,
        Err(InvokeError::Limit { .. }) => EXIT_LIMIT,
        Err(InvokeError::Crashed { .. } | InvokeError::Start { .. }) => EXIT_CRASH,
    };
    if args.json {
        let (output, error) = match &outcome.result {
            Ok(output) => (Some(output.as_str()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let report = serde_json::json!({
            "agent": &*agent.name,
            "version": &*outcome.version,
            "run": &*outcome.run,
            "output": output,
            "error": error,
            "logs": outcome.logs,
            "fuel_consumed": outcome.fuel_consumed,
            "elapsed_us": outcome.elapsed.as_micros() as u64,
        });
        println!("{report}");
        return code;
    }
    match outcome.result {
        Ok(output) => {
            println!("{output}");
            0
        }
        Err(e) => fail(code, e),
    }
}

fn read_input(args: &RunArgs) -> Result<String, String> {
    let input = match &args.input_file {
        Some(path) if path.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).map_err(|e| format!("--input-file -: cannot read stdin: {e}"))?
        }
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--input-file {}: {e}", path.display()))?,
        None => args.input.clone(),
    };
    serde_json::from_str::<serde_json::Value>(&input).map_err(|e| format!("--input is not valid JSON: {e}"))?;
    Ok(input)
}
