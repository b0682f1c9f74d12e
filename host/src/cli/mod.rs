//! The `paddock` command line: the only place that prints for humans.
//!
//! Exit codes (also in the README and `paddock --help`):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the agent returned an error |
//! | 2 | bad command line or options |
//! | 3 | the agent hit a limit (fuel, memory, time, stack, a size cap) |
//! | 4 | the agent could not be loaded (missing file, not WebAssembly, core module, wrong world, bad manifest) |
//! | 5 | the configuration file is wrong |
//! | 6 | the agent crashed (trapped other than on a limit) or could not start |
//! | 7 | a build command failed |
//! | 8 | a provider target failed its check |
//! | 9 | refused by a tenant's policy (no such tenant, not granted, at a concurrency cap) |

mod bb;
mod build;
mod cases;
mod dev;
mod flow;
mod flow_remote;
mod gc;
mod host_api;
mod inspect;
mod keys;
mod logline;
mod new;
mod plugins;
mod progress;
mod providers;
mod run;
mod serve;
mod sources;
mod telemetry;
mod test;
mod tools;
mod usage;

pub use serve::auth;

use crate::config::{ConfigError, LogFormat, ProviderKeys, Settings};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code: the agent returned an error.
pub const EXIT_AGENT_ERROR: u8 = 1;
/// Exit code: bad command line or options.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the agent hit a limit.
pub const EXIT_LIMIT: u8 = 3;
/// Exit code: the agent could not be loaded.
pub const EXIT_LOAD: u8 = 4;
/// Exit code: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 5;
/// Exit code: the agent crashed or could not start.
pub const EXIT_CRASH: u8 = 6;
/// Exit code: a build command failed.
pub const EXIT_BUILD: u8 = 7;
/// Exit code: a provider target failed its check.
pub const EXIT_PROVIDER: u8 = 8;
/// Exit code: a tenant's policy refused (the run, or a capability asked for).
pub const EXIT_DENIED: u8 = 9;

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the agent returned an error
  2  bad command line or options
  3  the agent hit a limit (fuel, memory, time, stack, a size cap)
  4  the agent could not be loaded (missing, not WebAssembly, core module, wrong world, bad manifest)
  5  the configuration file is wrong
  6  the agent crashed or could not start
  7  a build command failed
  8  a provider target failed its check
  9  refused by a tenant's policy (no such tenant, not granted, at a concurrency cap)";

/// Run AI agents as sandboxed WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "paddock", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// Configuration file [default: the nearest paddock.toml in this folder or one above it, else built-in defaults keeping data in $PADDOCK_DATA_DIR, $XDG_DATA_HOME/paddock or ~/.local/share/paddock]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Plugins folder [default: host.plugins of the configuration, "plugins"]
    #[arg(long, global = true, value_name = "DIR")]
    pub plugins: Option<PathBuf>,
    /// More host logging (-v debug, -vv trace); PADDOCK_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The log's form: text, or JSON a line [default: host.log-format, text]
    #[arg(long, global = true, value_name = "FORMAT", value_parser = ["text", "json"])]
    pub log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an agent once and print its output
    #[command(after_help = concat!(
        "Examples:\n  paddock run hello --input '{\"name\":\"ada\"}'\n  paddock run ./agent.wasm --fuel 1000000 --memory 16 --timeout 2s\n  paddock run reader --dir ./data::/data\n\n",
        "Exit codes: 0 ok, 1 agent error, 2 usage, 3 limit hit, 4 could not load, 5 bad config, 6 crashed, 9 refused by the tenant"
    ))]
    Run(run::RunArgs),
    /// Write a new agent's folder (manifest, source, README, WIT) in Rust, Python, JavaScript or C
    #[command(after_help = concat!(
        "Examples:\n  paddock new greeter --lang python && paddock build greeter && paddock run greeter --input '{\"name\":\"ada\"}'\n",
        "  paddock new greeter --lang c --dir ../agents/greeter\n\n",
        "Exit codes: 0 written, 2 bad name, or the folder is not empty or cannot be written"
    ))]
    New(new::NewArgs),
    /// Watch an agent's sources: on each change build, reload, run it on the last input and replay its cases
    #[command(after_help = concat!(
        "Examples:\n  paddock dev greeter --input '{\"name\":\"ada\"}'\n",
        "  paddock dev                # the agent of this folder, else every plugin; the last input again\n\n",
        "The output goes to stdout; the build's output, the agent's log and what dev does to stderr.\n",
        "Exit codes: 0 stopped (Ctrl-C), 2 bad input, 4 no such plugin"
    ))]
    Dev(dev::DevArgs),
    /// Run each plugin's build command
    #[command(
        after_help = "Example:\n  paddock build            # every plugin under plugins/\n  paddock build my-agents"
    )]
    Build(build::BuildArgs),
    /// Show a component's imports and exports and whether it fits the agent world
    #[command(after_help = "Example:\n  paddock inspect plugins/target/wasm32-wasip2/release/hello.wasm")]
    Inspect(inspect::InspectArgs),
    /// List, check and approve plugins
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Keep the host up: reload plugins as they change, run triggers, answer HTTP
    #[command(after_help = concat!(
        "Examples:\n  paddock serve\n  paddock serve --listen 127.0.0.1:0 --debounce 50ms\n\n",
        "API (header Authorization: Bearer KEY, from `paddock keys create`; roles in the README):\n",
        "  agents     POST /v1/agents/NAME/run (body = input JSON)\n",
        "             GET /v1/plugins   POST /v1/plugins/NAME/approve\n",
        "  flows      GET /v1/flows   POST /v1/flows/NAME/runs   POST /v1/flows/run\n",
        "             GET /v1/runs   GET /v1/runs/ID   GET /v1/runs/ID/events\n",
        "             POST /v1/runs/ID/cancel   POST /v1/runs/ID/resume\n",
        "             GET /v1/runs/ID/journal?step=PATH   POST /v1/runs/ID/replay\n",
        "  people     GET /v1/approvals   POST /v1/approvals/ID (body = {\"option\": \"...\", \"by\": \"...\"})\n",
        "             GET /v1/dlq   GET|DELETE /v1/dlq/ID   POST /v1/dlq/ID/retry\n",
        "  board      GET /v1/board   GET|PUT|DELETE /v1/board/keys/KEY\n",
        "             GET /v1/board/keys/KEY/history   GET /v1/board/history   GET /v1/board/watch\n",
        "  operators  GET /v1/usage   GET /v1/providers   GET /v1/providers/hour   POST /v1/providers/check\n",
        "             GET /v1/tenants   POST /v1/admin/reload   GET /metrics\n",
        "  doors      POST /v1/chat/completions   POST /v1/embeddings   GET /v1/models (OpenAI)\n",
        "             POST /v1/messages (Anthropic)   /mcp (MCP, Streamable HTTP)\n",
        "  console    GET / (sign in with a key)   POST|DELETE /console/session   GET /console/whoami\n",
        "  no key     GET /v1/health"
    ))]
    Serve(serve::ServeArgs),
    /// Make, list and revoke the API keys `paddock serve` checks
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Read, write, list and watch a tenant's blackboard
    #[command(subcommand)]
    Bb(bb::BbCommand),
    /// List LLM routes and check each provider target
    #[command(subcommand)]
    Providers(providers::ProvidersCommand),
    /// List the tools of the MCP servers of [mcp.NAME], and call one
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Run flows (pipelines, fan-out, votes, sagas, machines, approvals) durably
    #[command(subcommand)]
    Flow(flow::FlowCommand),
    /// Questions a flow or agent waits on
    #[command(subcommand)]
    Approvals(flow::ApprovalsCommand),
    /// Answer a question: paddock approve ID OPTION
    Approve(flow::ApproveArgs),
    /// The dead-letter queue: tasks that exhausted their retries
    #[command(subcommand)]
    Dlq(flow::DlqCommand),
    /// Run a recorded run's agent steps again against their journals, calling nothing
    #[command(
        after_help = "Examples:\n  paddock replay 019a3c5e8f21a1b2c3d4\n  paddock replay 019a3c5e8f21a1b2c3d4 --step 'main/execute[1]/task'\n\nExit codes: 0 every step did the same, 1 a step diverged, 2 no such run or step"
    )]
    Replay(flow::ReplayArgs),
    /// Replay the recorded cases in each agent's tests/ against its current build, calling nothing
    #[command(after_help = concat!(
        "A case (tests/NAME.json in the agent's folder) holds an input, the journal of the host calls a real run\n",
        "made, and the output, error or JSON-pointer assertions the agent must answer. Every LLM answer, board\n",
        "read, callee's answer, clock reading and random number comes from the journal: no provider, board or\n",
        "other agent is needed.\n\n",
        "Examples:\n  paddock run greeter --input '{\"name\":\"ada\"}' --record ada   # keep a real run as a case\n",
        "  paddock test greeter\n  paddock test                # the agent of this folder, else every plugin\n\n",
        "Exit codes: 0 every case passed, 1 a case failed, 2 no cases, 4 an agent or case could not be loaded"
    ))]
    Test(test::TestArgs),
    /// Keep a finished agent step of a flow run as a test case (tests/NAME.json)
    #[command(
        after_help = "Example:\n  paddock record 019a3c5e8f21a1b2c3d4 --step 'main/draft' --into draft-happy-path\n\nExit codes: 0 written, 2 no such run or step, or the case exists, 4 the agent's folder is not found"
    )]
    Record(test::RecordArgs),
    /// Make the host serving this data folder re-read paddock.toml (as SIGHUP does)
    #[command(
        after_help = "Routes, providers, tenants, budgets, limits, agent policies and caps change at once; runs and\nLLM calls in flight finish on the settings they started with. A file that does not validate changes\nnothing. Changes to engine, stores, folders, serve and triggers wait for a restart.\n\nExample:\n  paddock reload\n\nExit codes: 0 reloaded, 2 no host serves this data folder, 5 the file was refused (the old settings keep serving)"
    )]
    Reload,
    /// Spend, tokens, requests and refusals per tenant, agent and window
    #[command(after_help = "Examples:\n  paddock usage\n  paddock usage --tenant acme --json")]
    Usage(usage::UsageArgs),
    /// Forget now what [retention] says is old: finished runs, settled questions, dead letters, day usage rows
    #[command(
        after_help = "A serving host does the same every retention.interval (10m by default).\n\nExample:\n  paddock gc\n\nExit codes: 0 done, 5 a store cannot be opened"
    )]
    Gc(gc::GcArgs),
}

/// Readies this process for mimalloc, the `paddock` binary's allocator (and
/// the benches' that measure it), before anything else runs: transparent
/// huge pages off, and the memory a compile used handed back once compiling
/// is done ([`engine::memory`](crate::engine::memory)).
pub fn on_mimalloc() {
    without_transparent_huge_pages();
    crate::engine::memory::set_hand_back(collect_mimalloc);
}

/// Frees the pages of the calling thread's mimalloc heap that hold nothing
/// and returns every page the allocator holds free to the system.
fn collect_mimalloc() {
    // SAFETY: mi_collect takes no arguments but the flag; it works on the
    // allocator's own state, the calling thread's heap and the shared arenas.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// Turns transparent huge pages off for this process (and what it starts).
///
/// The allocator (mimalloc) gives freed memory back 64 KiB at a time; inside
/// a huge page, the next touch of such a part makes the kernel zero a whole
/// 2 MiB page again. A Python agent's first run spent 0.9-4.0 s of kernel
/// time so, and 0.3-0.7 s without, whether the machine's `transparent_hugepage`
/// setting is `madvise` or `always`. Where the kernel refuses, nothing changes.
fn without_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE reads only its integer arguments and sets a
    // flag of the calling process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !works_past_its_output(&cli.command) {
        quiet_on_closed_pipe();
    }
    let settings = match load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let format = match cli.log_format.as_deref() {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Text,
        None => settings.log_format,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return ExitCode::from(fail(EXIT_CRASH, format!("cannot start the async runtime: {e}"))),
    };
    // The exporter's batches are sent by a task on this runtime.
    let telemetry = match runtime.block_on(async { telemetry::Telemetry::start(&settings.telemetry) }) {
        Ok(t) => t,
        Err(e) => return ExitCode::from(fail(EXIT_CONFIG, format!("{}: telemetry: {e}", settings.source_name()))),
    };
    // `paddock test` shows a case's log only when it fails; `paddock dev`
    // prints its runs' logs itself, and not its replays'.
    let agent_logs = !matches!(cli.command, Command::Test(_) | Command::Dev(_));
    init_tracing(cli.verbose, format, matches!(cli.command, Command::Serve(_)), agent_logs, telemetry.as_ref());
    let code = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => run::run(settings, args).await,
            Command::New(args) => new::new(&settings.plugins_dir, args),
            Command::Build(args) => build::build(settings, args).await,
            Command::Dev(args) => dev::dev(settings, args).await,
            Command::Inspect(args) => inspect::inspect(settings, args),
            Command::Plugins(cmd) => plugins::plugins(settings, cmd).await,
            Command::Serve(args) => serve::serve(settings, args).await,
            Command::Keys(cmd) => keys::keys(settings, cmd),
            Command::Providers(cmd) => providers::providers(settings, cmd).await,
            Command::Tools(cmd) => tools::tools(settings, cmd).await,
            Command::Bb(cmd) => bb::bb(settings, cmd).await,
            Command::Usage(args) => usage::usage(settings, args).await,
            Command::Reload => serve::admin::command(&settings).await,
            Command::Flow(cmd) => flow::flow(settings, cmd).await,
            Command::Approvals(cmd) => flow::approvals(settings, cmd),
            Command::Approve(args) => flow::approve(settings, args),
            Command::Dlq(cmd) => flow::dlq(settings, cmd).await,
            Command::Replay(args) => flow::replay(settings, args).await,
            Command::Test(args) => test::test(settings, args).await,
            Command::Record(args) => test::record(settings, args).await,
            Command::Gc(args) => gc::gc(settings, args),
        }
    });
    // After `paddock serve`'s drain: the spans of its last requests are sent.
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    ExitCode::from(code)
}

/// Whether `command` does work its output only reports on, which a reader
/// stopping early must not end: a host serving, a flow run going on to its
/// end (its events then go nowhere), a dead letter retried.
fn works_past_its_output(command: &Command) -> bool {
    match command {
        Command::Serve(_) | Command::Dev(_) => true,
        Command::Flow(cmd) => matches!(cmd, flow::FlowCommand::Run(_) | flow::FlowCommand::Resume(_)),
        Command::Dlq(cmd) => matches!(cmd, flow::DlqCommand::Retry(_)),
        _ => false,
    }
}

/// Any other command whose output goes to a reader that stops early
/// (`paddock usage | head -3`) ends there, quietly, as `head` expects of any
/// command: the default action of SIGPIPE, which Rust programs ignore (their
/// `println!` then panics on the broken pipe). Sockets are written with
/// `MSG_NOSIGNAL`, so only stdout and stderr raise it.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called once, first thing, before any thread that could be
    // writing is started; SIG_DFL is a valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn load_settings(cli: &Cli) -> Result<Settings, ConfigError> {
    let keys = if calls_providers(&cli.command) { ProviderKeys::Required } else { ProviderKeys::Optional };
    let mut settings = Settings::load_with(cli.config.as_deref(), keys)?;
    // A check runs in the serving host when one serves; else here, with the keys.
    if matches!(cli.command, Command::Providers(providers::ProvidersCommand::Check { .. }))
        && serve::serving(&settings.data_dir).is_none()
    {
        settings = Settings::load(cli.config.as_deref())?;
    }
    if let Some(dir) = &cli.plugins {
        settings.plugins_dir = dir.clone();
    }
    Ok(settings)
}

/// Whether `command` may call a provider from this process, and so needs
/// the providers' API keys; the others load without them.
fn calls_providers(command: &Command) -> bool {
    match command {
        Command::Run(_) | Command::Serve(_) | Command::Dev(_) => true,
        Command::Dlq(cmd) => matches!(cmd, flow::DlqCommand::Retry(_)),
        Command::Flow(cmd) => matches!(cmd, flow::FlowCommand::Run(_) | flow::FlowCommand::Resume(_)),
        _ => false,
    }
}

/// The log on stderr, and the trace exporter's layer when there is one. A
/// serving host logs each HTTP request, invocation and LLM call (`info`) with
/// the time; a one-shot command only warnings and its agent's own records,
/// without the time.
fn init_tracing(
    verbose: u8,
    format: LogFormat,
    serving: bool,
    agent_logs: bool,
    telemetry: Option<&telemetry::Telemetry>,
) {
    use tracing_subscriber::filter::EnvFilter;
    use tracing_subscriber::{Layer, Registry, layer::SubscriberExt, util::SubscriberInitExt};
    let default = match (verbose, serving) {
        (0, false) if agent_logs => "warn,paddock::agent=info",
        (0, false) => "warn,paddock::agent=off",
        (0, true) => "warn,paddock=info",
        (1, _) => "debug,cranelift=info,wasmtime=info",
        _ => "trace",
    };
    let filter = log_filter(EnvFilter::try_from_env("PADDOCK_LOG").unwrap_or_else(|_| EnvFilter::new(default)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log: Box<dyn Layer<Registry> + Send + Sync> = match (format, serving) {
        (LogFormat::Json, _) => {
            log.json().flatten_event(true).with_current_span(true).with_span_list(false).with_filter(filter).boxed()
        }
        (LogFormat::Text, true) if !ansi => log
            .with_ansi(false)
            .fmt_fields(logline::PlainFields)
            .event_format(logline::PlainLine)
            .with_filter(filter)
            .boxed(),
        (LogFormat::Text, true) => log.with_ansi(true).with_filter(filter).boxed(),
        (LogFormat::Text, false) => log.with_target(false).with_ansi(ansi).without_time().with_filter(filter).boxed(),
    };
    // Without an exporter no second layer is added: an empty one (`None`)
    // counts as a layer that wants every callsite, so each span made for
    // traces alone asked the log's filter again every time it was made.
    let _ = match telemetry {
        Some(t) => tracing_subscriber::registry().with(log).with(t.layer()).try_init(),
        None => tracing_subscriber::registry().with(log).try_init(),
    };
}

/// The log layer's filter: `filter` without the spans made for traces alone,
/// keeping `filter`'s most verbose level as its hint. Without the hint (a
/// part of an `and` with none leaves none) the process took every level to
/// be logged, and each `log` record of every dependency, such as the `trace`
/// wasmtime writes as each store is made and dropped, reached the filters.
fn log_filter<S: tracing::Subscriber>(
    filter: tracing_subscriber::filter::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S> {
    use tracing_subscriber::filter::{FilterExt, filter_fn};
    let most = filter.max_level_hint().unwrap_or(tracing::level_filters::LevelFilter::TRACE);
    filter.and(filter_fn(telemetry::logged).with_max_level_hint(most))
}

/// Prints an error the way every command does.
fn fail(code: u8, message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;
    use tracing_subscriber::filter::EnvFilter;
    use tracing_subscriber::layer::Filter;

    fn hint(directives: &str) -> Option<LevelFilter> {
        Filter::<tracing_subscriber::Registry>::max_level_hint(&log_filter(EnvFilter::new(directives)))
    }

    #[test]
    fn the_log_filter_keeps_the_most_verbose_level_its_directives_name_so_quieter_records_are_never_asked_about() {
        assert_eq!(hint("warn,paddock=info"), Some(LevelFilter::INFO));
        assert_eq!(hint("warn,paddock::agent=off"), Some(LevelFilter::WARN));
        assert_eq!(hint("debug,cranelift=info,wasmtime=info"), Some(LevelFilter::DEBUG));
        assert_eq!(hint("trace"), Some(LevelFilter::TRACE));
    }
}
