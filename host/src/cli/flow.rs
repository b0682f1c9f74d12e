//! `paddock flow run | resume | status | list | check`, `paddock approvals`,
//! `paddock approve`, `paddock dlq` and `paddock replay`.

use super::flow_remote::Remote;
use super::host_api::HostApi;
use super::{EXIT_AGENT_ERROR, EXIT_CONFIG, EXIT_CRASH, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::Settings;
use crate::flow::store::{ApprovalRecord, DeadLetter, Page, RunQuery, RunSummary};
use crate::flow::{Event, Flow, Flows, Report, RunStatus, Start, StepStatus, now_ms};
use crate::runtime::Runtime;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Run a flow, printing each step as it runs; the output goes to stdout
    #[command(after_help = concat!(
        "Examples:\n  paddock flow run examples/plan-execute-audit.toml --build --input '{\"goal\":\"write the launch note\"}'\n",
        "  paddock flow run flow.toml --json     # one JSON event per line\n\n",
        "Exit codes: 0 succeeded, 1 the run failed, 2 usage, 4 an agent could not load, 5 the spec is wrong"
    ))]
    Run(RunArgs),
    /// Continue an interrupted run at its first unfinished step
    #[command(after_help = "Example:\n  paddock flow resume 019a3c5e8f21a1b2c3d4")]
    Resume(ResumeArgs),
    /// Show a run and each step's checkpoint
    Status(StatusArgs),
    /// List runs, newest first
    List(JsonArgs),
    /// Check a flow spec without running it
    Check(CheckArgs),
    /// Stop a run: its agents stop, nothing more starts, no compensation runs
    #[command(
        after_help = "Example:\n  paddock flow cancel 019a3c5e8f21a1b2c3d4 --by ada\n\nA run in another process stops when that process next renews its lease on it (every 2 s); this waits for it, up to 10 s."
    )]
    Cancel(CancelArgs),
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The run's id
    run: String,
    /// Who cancels [default: $USER]
    #[arg(long)]
    by: Option<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The flow spec (TOML)
    file: PathBuf,
    /// The input, as JSON
    #[arg(long, default_value = "{}")]
    input: String,
    /// The tenant to run for [default: host.default-tenant]
    #[arg(long)]
    tenant: Option<String>,
    /// The run's id [default: a new one]
    #[arg(long)]
    run_id: Option<String>,
    /// Run each agent's build command first
    #[arg(long)]
    build: bool,
    /// Print one JSON event per line instead of readable progress
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run's id
    run: String,
    /// Finish on the agents' current versions when they changed since the run started
    #[arg(long)]
    repin: bool,
    /// Print one JSON event per line
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run's id
    run: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArgs {
    /// Print JSON
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The flow spec (TOML)
    file: PathBuf,
}

pub(super) fn engine(settings: Settings) -> Result<Flows, u8> {
    let runtime = Runtime::new(settings).map_err(|e| fail(EXIT_CRASH, format!("cannot start the host: {e:#}")))?;
    Flows::open(runtime).map_err(|e| fail(EXIT_CONFIG, e))
}

/// Prints events as they happen, readable on stderr (between the agents'
/// log lines) or JSON lines on stdout. A reader gone (`| head -1`) loses
/// the rest of them, never the run: a flow goes on to its end.
fn printer(json: bool) -> crate::flow::events::Sink {
    use std::io::Write;
    std::sync::Arc::new(move |e: Event| {
        let _ = match json {
            true => writeln!(std::io::stdout().lock(), "{}", serde_json::to_string(&e).unwrap_or_default()),
            false => writeln!(std::io::stderr().lock(), "{}", e.line()),
        };
    })
}

fn finish(report: Result<Report, String>, json: bool) -> u8 {
    match report {
        Ok(r) if r.status == RunStatus::Succeeded => {
            if !json {
                println!("{}", r.output.unwrap_or(Value::Null));
            }
            0
        }
        Ok(r) => {
            if !json {
                let error = r.error.unwrap_or_default();
                match r.status {
                    RunStatus::Cancelled => eprintln!("error: run {} was {error}", r.run),
                    _ => eprintln!("error: run {} failed: {error}", r.run),
                }
            }
            EXIT_AGENT_ERROR
        }
        Err(e) => fail(EXIT_LOAD, e),
    }
}

pub async fn flow(settings: Settings, cmd: FlowCommand) -> u8 {
    match cmd {
        FlowCommand::Run(args) => {
            let Ok(input) = serde_json::from_str::<Value>(&args.input) else {
                return fail(EXIT_USAGE, format!("--input: {:?} is not JSON", args.input));
            };
            let origin = args.file.display().to_string();
            let text = match std::fs::read_to_string(&args.file) {
                Ok(text) => text,
                Err(e) => return fail(EXIT_USAGE, format!("cannot read {origin}: {e}")),
            };
            let flow = match Flow::parse(&text, &origin) {
                Ok(f) => f,
                Err(e) => return fail(EXIT_CONFIG, e),
            };
            if args.build {
                let registry = crate::plugins::Registry::of(&settings);
                for name in flow.agents().keys() {
                    let manifest = match registry.find(name) {
                        Ok(m) => m,
                        Err(e) => return fail(EXIT_LOAD, e),
                    };
                    if let Err(code) = super::build::build_one(&manifest, super::build::Report::Stderr).await {
                        return code;
                    }
                }
            }
            // The host serving this data folder holds its stores: it runs the flow.
            if let Some(host) = HostApi::find(&settings) {
                let host = match host {
                    Ok(h) => h,
                    Err(e) => return fail(EXIT_CRASH, e),
                };
                let remote = Remote { spec: &text, origin: &origin, input, tenant: args.tenant, run: args.run_id };
                return match super::flow_remote::run(&host, remote, &printer(args.json)).await {
                    Ok(report) => finish(Ok(report), args.json),
                    Err(code) => code,
                };
            }
            let flows = match engine(settings) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let start = Start { tenant: args.tenant, run: args.run_id, events: Some(printer(args.json)) };
            let report = flows.start(flow, &origin, input, start).await;
            flows.flush_events().await;
            finish(report, args.json)
        }
        FlowCommand::Resume(args) => {
            if let Some(host) = HostApi::find(&settings) {
                let host = match host {
                    Ok(h) => h,
                    Err(e) => return fail(EXIT_CRASH, e),
                };
                return match super::flow_remote::resume(&host, &args.run, args.repin, &printer(args.json)).await {
                    Ok(report) => finish(Ok(report), args.json),
                    Err(code) => code,
                };
            }
            let flows = match engine(settings) {
                Ok(f) => f,
                Err(code) => return code,
            };
            let report = flows.resume(&args.run, Some(printer(args.json)), args.repin).await;
            flows.flush_events().await;
            finish(report, args.json)
        }
        FlowCommand::Status(args) => status(settings, args),
        FlowCommand::List(args) => list(settings, args.json),
        FlowCommand::Cancel(args) => cancel(settings, args).await,
        FlowCommand::Check(args) => check(&settings, &args.file),
    }
}

/// `flow check FILE`: the spec parses, and every agent it names is a plugin
/// of the plugins folder (a flow run would refuse it before starting).
fn check(settings: &Settings, file: &std::path::Path) -> u8 {
    let origin = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => return fail(EXIT_USAGE, format!("cannot read {origin}: {e}")),
    };
    let f = match Flow::parse(&text, &origin) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let registry = crate::plugins::Registry::of(settings);
    for (agent, step) in f.agents() {
        if let Err(e) = registry.find(agent) {
            return fail(EXIT_LOAD, format!("{origin}: steps.{step}.agent: {e}"));
        }
    }
    let agents: Vec<&str> = f.agents().keys().copied().collect();
    println!("{origin}: flow {} is valid: {} steps, agents {}", f.name, f.steps.len(), agents.join(", "));
    0
}

/// The store alone, without building a host: for commands that only read or answer.
fn store(settings: &Settings) -> Result<std::sync::Arc<dyn crate::flow::FlowStore>, u8> {
    if settings.flows == crate::config::FlowsStore::Memory {
        return Err(fail(EXIT_CONFIG, "host.flows = \"memory\": runs live only inside the process that runs them"));
    }
    crate::flow::open_store(&settings.flows, crate::flow::FlowBounds::default())
        .map_err(|e| fail(EXIT_CONFIG, format!("host.flows: {e}")))
}

fn status(settings: Settings, args: StatusArgs) -> u8 {
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (run, steps) = match store.run(&args.run).and_then(|r| Ok((r, store.steps(&args.run)?))) {
        Ok((Some(r), steps)) => (r, steps),
        Ok((None, _)) => return fail(EXIT_USAGE, format!("no run with id {:?}", args.run)),
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let interrupted = interrupted(&run);
    if args.json {
        let out = json!({ "run": run, "steps": steps, "interrupted": interrupted });
        println!("{out}");
        return 0;
    }
    let status = match &interrupted {
        Some(why) => format!("running, interrupted: {why}"),
        None => run.status.word().to_string(),
    };
    println!("run {}  flow {}  tenant {}  {status}", run.id, run.flow, run.tenant);
    for s in steps.iter().filter(|s| s.status != StepStatus::Decided) {
        let took = s.ended_ms.map(|e| format!("{} ms", e.saturating_sub(s.started_ms))).unwrap_or_default();
        let what = s.error.clone().or(s.output.clone()).unwrap_or_default();
        println!(
            "  {:<20} {:<40} {:>8}  {}",
            format!("{:?}", s.status).to_lowercase(),
            s.path,
            took,
            crate::flow::events::abbreviate(&what, 80)
        );
    }
    match (&run.output, &run.error) {
        (Some(o), _) => println!("output: {o}"),
        (_, Some(e)) => println!("error: {e}"),
        _ => {}
    }
    0
}

/// Why a run marked running runs nowhere, when that can be told: the
/// process holding it on this machine is gone, or its lease lapsed.
fn interrupted(run: &crate::flow::store::RunRecord) -> Option<String> {
    let running = run.status == RunStatus::Running;
    running.then(|| crate::flow::lease::interrupted(&run.id, &run.owner, run.heartbeat_ms, now_ms())).flatten()
}

async fn cancel(settings: Settings, args: CancelArgs) -> u8 {
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let by = args.by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into());
    match crate::flow::cancel(store.as_ref(), &args.run, &by) {
        Ok(crate::flow::Cancel::Requested { owner }) => {
            // Its holder stops it when it next renews its lease.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                match store.run(&args.run) {
                    Ok(Some(r)) if r.status == RunStatus::Cancelled => {
                        println!("run {} was cancelled (host {owner} stopped it)", r.id);
                        return 0;
                    }
                    Ok(Some(r)) if r.status != RunStatus::Running => {
                        let why = format!("run {} {} before host {owner} could stop it", r.id, r.status.phrase());
                        return fail(EXIT_AGENT_ERROR, why);
                    }
                    Ok(_) => {}
                    Err(e) => return fail(EXIT_CONFIG, e),
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            fail(
                EXIT_AGENT_ERROR,
                format!("asked host {owner} to cancel run {}; it has not stopped within 10 s", args.run),
            )
        }
        Ok(_) => {
            println!("run {} was cancelled by {by}", args.run);
            0
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

/// Rows a command reads from the store at a time.
const PAGE: usize = 500;

/// Reads every row a page at a time (`read` given the last id of the
/// previous page), handing each to `each` as its page arrives.
fn each_page<T>(
    mut read: impl FnMut(Option<String>) -> Result<Vec<T>, String>,
    id: impl Fn(&T) -> String,
    mut each: impl FnMut(T),
) -> Result<(), String> {
    let mut after = None;
    loop {
        let rows = read(after.take())?;
        let full = rows.len() == PAGE;
        after = rows.last().map(&id);
        rows.into_iter().for_each(&mut each);
        if !full {
            return Ok(());
        }
    }
}

fn list(settings: Settings, json: bool) -> u8 {
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let read = |after| store.runs(&RunQuery { after, limit: PAGE, ..RunQuery::default() });
    let now = now_ms();
    // An interrupted run is still `running` (a host resumes it); the list says
    // so in a word, and `flow status RUN` or `--json` says why.
    let print = |r: RunSummary| {
        let interrupted = r.interrupted(now);
        if json {
            let line = json!({"run": r.id, "flow": r.flow, "tenant": r.tenant, "status": r.status, "interrupted": interrupted, "bytes": r.bytes, "created_ms": r.created_ms});
            println!("{line}");
        } else {
            let status = if interrupted.is_some() { "running, interrupted" } else { r.status.word() };
            println!("{}  {:<24} {:<12} {status}", r.id, r.flow, r.tenant);
        }
    };
    match each_page(read, |r| r.id.clone(), print) {
        Ok(()) => 0,
        Err(e) => fail(EXIT_CONFIG, e),
    }
}

#[derive(Debug, Subcommand)]
pub enum ApprovalsCommand {
    /// Questions waiting for an answer (all of them with --all)
    List(ApprovalsListArgs),
}

#[derive(Debug, Args)]
pub struct ApprovalsListArgs {
    /// Include answered and timed-out questions
    #[arg(long)]
    all: bool,
    /// Print one JSON object per line
    #[arg(long)]
    json: bool,
}

pub fn approvals(settings: Settings, cmd: ApprovalsCommand) -> u8 {
    let ApprovalsCommand::List(args) = cmd;
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let now = now_ms();
    let waiting_at = (!args.all).then_some(now);
    let read = |after| store.approvals(&Page { tenant: None, after, limit: PAGE }, waiting_at);
    let print = |a: ApprovalRecord| {
        if args.json {
            println!("{}", serde_json::to_string(&a).unwrap_or_default());
        } else {
            let state = match &a.answer {
                Some(x) => format!("answered {x:?}"),
                None if a.deadline_ms <= now => "timed out".to_string(),
                None => format!("waiting, {} s left", (a.deadline_ms - now) / 1000),
            };
            println!("{}  run {}  {}  {}  [{}]  {state}", a.id, a.run, a.asker, a.question, a.options.join(" | "));
        }
    };
    match each_page(read, |a| a.id.clone(), print) {
        Ok(()) => 0,
        Err(e) => fail(EXIT_CONFIG, e),
    }
}

#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The approval's id (see `paddock approvals list`)
    id: String,
    /// The option chosen
    option: String,
    /// Who answers [default: $USER]
    #[arg(long)]
    by: Option<String>,
}

pub fn approve(settings: Settings, args: ApproveArgs) -> u8 {
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let by = args.by.or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "cli".into());
    match store.answer(&args.id, &args.option, &by, now_ms()) {
        Ok(a) => {
            println!("approval {}: {} (by {by})", a.id, args.option);
            0
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Tasks that exhausted their retries
    List(JsonArgs),
    /// One dead letter: input, error, attempts and journal
    Show(DlqIdArgs),
    /// Run the task again (same input and idempotency key); it leaves the queue when it succeeds
    Retry(DlqIdArgs),
    /// Remove a dead letter
    Drop(DlqIdArgs),
}

#[derive(Debug, Args)]
pub struct DlqIdArgs {
    /// The dead letter's id
    id: String,
}

pub async fn dlq(settings: Settings, cmd: DlqCommand) -> u8 {
    let store = match store(&settings) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match cmd {
        DlqCommand::List(args) => {
            let read = |after| store.dead_letters(&Page { tenant: None, after, limit: PAGE });
            let print = |d: DeadLetter| {
                if args.json {
                    let line = json!({"id": d.id, "run": d.run, "step": d.step, "agent": d.agent, "attempts": d.attempts, "error": d.error});
                    println!("{line}");
                } else {
                    println!(
                        "{}  run {}  {}  ({}, {} attempts)  {}",
                        d.id, d.run, d.step, d.agent, d.attempts, d.error
                    );
                }
            };
            match each_page(read, |d| d.id.clone(), print) {
                Ok(()) => 0,
                Err(e) => fail(EXIT_CONFIG, e),
            }
        }
        DlqCommand::Show(args) => match store.dead(&args.id) {
            Ok(Some(d)) => {
                println!("{}", serde_json::to_string_pretty(&d).unwrap_or_default());
                0
            }
            Ok(None) => fail(EXIT_USAGE, format!("no dead letter with id {:?}", args.id)),
            Err(e) => fail(EXIT_CONFIG, e),
        },
        DlqCommand::Drop(args) => match store.drop_dead(&args.id) {
            Ok(true) => {
                println!("dropped {}", args.id);
                0
            }
            Ok(false) => fail(EXIT_USAGE, format!("no dead letter with id {:?}", args.id)),
            Err(e) => fail(EXIT_CONFIG, e),
        },
        DlqCommand::Retry(args) => {
            drop(store);
            let flows = match engine(settings) {
                Ok(f) => f,
                Err(code) => return code,
            };
            match flows.retry_dead(&args.id).await {
                Ok(output) => {
                    println!("{output}");
                    0
                }
                Err(e) => fail(EXIT_AGENT_ERROR, format!("dead letter {}: {e}", args.id)),
            }
        }
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The run's id
    run: String,
    /// Only the step at this path (see `paddock flow status RUN`)
    #[arg(long)]
    step: Option<String>,
    /// Print one JSON object per step
    #[arg(long)]
    json: bool,
}

pub async fn replay(mut settings: Settings, args: ReplayArgs) -> u8 {
    // A replay's host calls are answered from the journals and write nothing:
    // it needs no board, so it never waits on the one a serving host holds.
    settings.board_store = crate::config::BoardStore::Memory;
    let flows = match engine(settings) {
        Ok(f) => f,
        Err(code) => return code,
    };
    match flows.replay(&args.run, args.step.as_deref()).await {
        Ok(steps) => {
            let same = steps.iter().all(|s| s.same);
            for s in &steps {
                if args.json {
                    println!("{}", serde_json::to_string(s).unwrap_or_default());
                } else if s.same {
                    println!("same      {}  ({} {}, {} host calls)", s.step, s.agent, s.version, s.calls);
                } else {
                    println!(
                        "DIVERGED  {}  ({} {}, recorded on {}): {}",
                        s.step,
                        s.agent,
                        s.version,
                        s.recorded_version,
                        s.divergence.as_deref().unwrap_or_default()
                    );
                }
            }
            if same { 0 } else { EXIT_AGENT_ERROR }
        }
        Err(e) => fail(EXIT_USAGE, e),
    }
}
