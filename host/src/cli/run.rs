//! `paddock run`: one invocation, output on stdout, errors on stderr.

use super::cases::Case;
use super::{EXIT_AGENT_ERROR, EXIT_CRASH, EXIT_DENIED, EXIT_LIMIT, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::{DirGrant, Requested, Settings, Span};
use crate::journal::Tape;
use crate::runtime::{Agent, RunError, RunOptions, Runtime};
use crate::sandbox::{InvokeError, Outcome};
use clap::Args;
use std::path::{Component, Path, PathBuf};

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
    /// Keep this run as a test case: a name (tests/NAME.json in the agent's folder) or a path ending in .json
    #[arg(long, value_name = "CASE")]
    record: Option<String>,
    /// With --record, replace a case of that name
    #[arg(long, requires = "record")]
    force: bool,
}

fn parse_span(text: &str) -> Result<Span, String> {
    Span::parse(text).map_err(|e| e.to_string())
}

pub async fn run(settings: Settings, args: RunArgs) -> u8 {
    let (input, options) = match read_input(&args).and_then(|input| Ok((input, options(&args)?))) {
        Ok(parsed) => parsed,
        Err(message) => return fail(EXIT_USAGE, message),
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
        if let Err(code) = super::build::build_one(&manifest, super::build::Report::Stderr).await {
            return code;
        }
    }
    let (rt, spec) = (runtime.clone(), args.agent.clone());
    let loaded = super::progress::when_slow(|| super::progress::loading(&runtime, &args.agent), move || rt.load(&spec));
    let agent = match loaded.await {
        Ok(agent) => agent,
        Err(e) => return fail(EXIT_LOAD, e),
    };
    if !args.build {
        warn_if_stale(&agent);
    }
    let outcome = match runtime.run(&agent, &input, &options).await {
        Ok(outcome) => outcome,
        Err(RunError::Load(e)) => return fail(EXIT_LOAD, e),
        Err(RunError::Options(message)) => return fail(EXIT_USAGE, message),
        Err(RunError::Refused(message) | RunError::Busy(message)) => return fail(EXIT_DENIED, message),
    };
    let code = match &outcome.result {
        Ok(_) => 0,
        Err(InvokeError::Failed { .. }) => EXIT_AGENT_ERROR,
        Err(InvokeError::Limit { .. }) => EXIT_LIMIT,
        Err(InvokeError::Crashed { .. } | InvokeError::Start { .. }) => EXIT_CRASH,
    };
    if let (Some(into), Some(tape)) = (&args.record, &options.journal) {
        let saved = keep_case(&args, into, &input, &agent, &outcome, tape);
        if saved != 0 {
            return saved;
        }
    }
    let code = match args.json {
        true => {
            print_json(&agent, &outcome);
            code
        }
        false => match outcome.result {
            Ok(output) => {
                println!("{output}");
                0
            }
            Err(e) => fail(code, e),
        },
    };
    // After the output: the code compiled for this run is stored for the next.
    runtime.wait_background(STORE_PATIENCE);
    code
}

/// How long a one-shot command waits, after its output, for the code it
/// compiled to be stored in the code cache (a Python agent's takes ~0.3 s).
pub(super) const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The run's options from the command line.
fn options(args: &RunArgs) -> Result<RunOptions, String> {
    let mut dirs = Vec::new();
    for (specs, write) in [(&args.dir, false), (&args.dir_write, true)] {
        for spec in specs {
            dirs.push(DirGrant::parse(spec, write).map_err(|message| format!("--dir: {message}"))?);
        }
    }
    let memory = match args.memory.map(|m| m.checked_mul(1 << 20)) {
        Some(None) => return Err(format!("--memory {} MiB is too large", args.memory.unwrap_or_default())),
        Some(Some(bytes)) => Some(bytes),
        None => None,
    };
    Ok(RunOptions {
        tenant: args.tenant.clone(),
        run: None,
        overrides: Requested { fuel: args.fuel, memory, timeout: args.timeout.map(|t| t.0) },
        dirs,
        journal: args.record.is_some().then(Tape::recording),
        ..RunOptions::default()
    })
}

/// Says so when a source of the agent changed after its component was built.
fn warn_if_stale(agent: &Agent) {
    let Some(manifest) = &agent.manifest else { return };
    let Some(source) = super::sources::changed_since_built(manifest) else { return };
    // Without `./`, which one path may have and not the other.
    let plain = |path: &Path| -> PathBuf { path.components().filter(|c| *c != Component::CurDir).collect() };
    let folder = plain(manifest.file.parent().unwrap_or(Path::new("")));
    let within = |path: &Path| plain(path).strip_prefix(&folder).unwrap_or(path).display().to_string();
    eprintln!(
        "warning: {}: {} changed after {} was built; `paddock run --build` or `paddock dev` builds it first",
        agent.name,
        within(&source),
        within(&manifest.component)
    );
}

/// Writes the run as the case `into` (`--record`).
fn keep_case(args: &RunArgs, into: &str, input: &str, agent: &Agent, outcome: &Outcome, tape: &Tape) -> u8 {
    let result = outcome.result.as_ref().map(String::clone).map_err(ToString::to_string);
    let kept = Case::of_run(input, tape.entries(), &result).map(|mut case| {
        case.tenant = args.tenant.clone();
        case.run = Some(outcome.run.to_string());
        case
    });
    let folder = agent.manifest.as_ref().and_then(|m| m.file.parent()).unwrap_or(Path::new("."));
    match kept {
        Ok(case) => super::test::save(&case, folder, into, args.force),
        Err(message) => fail(EXIT_USAGE, format!("--record: {message}")),
    }
}

/// `--json`: the output (a JSON value when it parses as JSON, else its
/// text) or the error, with the log, fuel and time.
fn print_json(agent: &Agent, outcome: &Outcome) {
    let (output, error) = match &outcome.result {
        Ok(text) => (Some(serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text.as_str()))), None),
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
