//! `paddock test`: replay each agent's recorded cases against its current
//! build; `paddock record`: keep a flow step that ran as a case. The case
//! format is [`super::cases`].

use super::cases::{self, Case};
use super::{EXIT_AGENT_ERROR, EXIT_LOAD, EXIT_USAGE, fail};
use crate::caps::log::LogRecord;
use crate::config::{BoardStore, Settings};
use crate::journal::{TRUNCATED, Tape};
use crate::plugins::Manifest;
use crate::plugins::manifest::FILE_NAME;
use crate::runtime::{Agent, RunOptions, Runtime};
use clap::Args;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Plugins to test: a plugin's folder, a folder of plugins, or a name [default: the plugin of the current folder, else every plugin]
    #[arg(value_name = "DIR|NAME")]
    targets: Vec<String>,
    /// Only the cases whose name contains this
    #[arg(long, value_name = "TEXT")]
    case: Option<String>,
    /// Run each plugin's build command first
    #[arg(long)]
    build: bool,
    /// The tenant to replay for, whatever the cases say [default: each case's, else host.default-tenant]
    #[arg(long)]
    tenant: Option<String>,
    /// Print one JSON object per case
    #[arg(long)]
    json: bool,
}

/// What one case came to.
#[derive(Debug, Serialize)]
pub(super) struct Verdict {
    agent: String,
    pub case: String,
    file: PathBuf,
    pub passed: bool,
    /// The first difference from what was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
    calls: usize,
    elapsed_ms: f64,
    /// What the agent logged, shown when it failed.
    logs: Vec<String>,
}

pub async fn test(mut settings: Settings, args: TestArgs) -> u8 {
    // Every host call is answered from the case: nothing is read or written.
    settings.board_store = BoardStore::Memory;
    let manifests = match plugins_to_test(&settings.plugins_dir, &args.targets) {
        Ok(m) => m,
        Err(message) => return fail(EXIT_LOAD, message),
    };
    let runtime = match Runtime::new(settings) {
        Ok(r) => r,
        Err(e) => return fail(super::EXIT_CRASH, format!("cannot start the host: {e:#}")),
    };
    runtime.set_one_shot();
    let (mut code, mut verdicts, mut without) = (0, Vec::new(), Vec::new());
    for manifest in manifests {
        let manifest = match manifest {
            Ok(m) => m,
            Err(e) => {
                code = code.max(fail(EXIT_LOAD, e));
                continue;
            }
        };
        let folder = manifest.file.parent().unwrap_or(Path::new(".")).join(cases::FOLDER);
        let files = match cases::in_folder(&folder) {
            Ok(files) => files,
            Err(message) => {
                code = code.max(fail(EXIT_LOAD, message));
                continue;
            }
        };
        let files: Vec<PathBuf> = files.into_iter().filter(|f| selected(f, args.case.as_deref())).collect();
        if files.is_empty() {
            without.push(manifest.name.clone());
            continue;
        }
        if args.build
            && let Err(c) = super::build::build_one(&manifest, super::build::Report::Stderr).await
        {
            code = code.max(c);
            continue;
        }
        let (rt, spec) = (runtime.clone(), manifest.file.to_string_lossy().into_owned());
        let loaded = super::progress::when_slow(|| super::progress::loading(&runtime, &spec.clone()), {
            let spec = spec.clone();
            move || rt.load(&spec)
        });
        let agent = match loaded.await {
            Ok(agent) => agent,
            Err(e) => {
                code = code.max(fail(EXIT_LOAD, e));
                continue;
            }
        };
        for file in files {
            match run_case(&runtime, &agent, &file, args.tenant.as_deref()).await {
                Ok(verdict) => {
                    report(&verdict, args.json);
                    verdicts.push(verdict);
                }
                Err(message) => code = code.max(fail(EXIT_LOAD, message)),
            }
        }
    }
    let code = summarize(&verdicts, &without, code, args.json);
    runtime.wait_background(super::run::STORE_PATIENCE);
    code
}

/// Prints the tally, and answers the exit code: 1 when a case failed, the
/// worst other error, 2 when nothing was tested.
fn summarize(verdicts: &[Verdict], without: &[String], code: u8, json: bool) -> u8 {
    let failed = verdicts.iter().filter(|v| !v.passed).count();
    if !json && !without.is_empty() && !verdicts.is_empty() {
        eprintln!("no cases: {} (record one with `paddock run NAME --record CASE`)", without.join(", "));
    }
    if verdicts.is_empty() && code == 0 {
        return fail(
            EXIT_USAGE,
            format!(
                "no cases to run in {}: an agent keeps them in {}/NAME.json; record one with \
                 `paddock run NAME --input JSON --record CASE` or `paddock record RUN --into NAME/CASE`",
                without.join(", "),
                cases::FOLDER
            ),
        );
    }
    if !json {
        let cases = if verdicts.len() == 1 { "case" } else { "cases" };
        println!("{} {cases}: {} passed, {failed} failed", verdicts.len(), verdicts.len() - failed);
    }
    if failed > 0 { code.max(EXIT_AGENT_ERROR) } else { code }
}

fn selected(file: &Path, filter: Option<&str>) -> bool {
    filter.is_none_or(|text| file.file_stem().is_some_and(|s| s.to_string_lossy().contains(text)))
}

fn report(v: &Verdict, json: bool) {
    if json {
        println!("{}", serde_json::to_string(v).unwrap_or_default());
    } else if v.passed {
        println!("ok      {}/{}  ({} host calls, {:.1} ms)", v.agent, v.case, v.calls, v.elapsed_ms);
    } else {
        println!("FAILED  {}/{}  {}", v.agent, v.case, v.divergence.as_deref().unwrap_or_default());
        for line in &v.logs {
            println!("        | {line}");
        }
    }
}

/// An invocation's log, a record a line: `INFO  greeting ada`.
pub(super) fn log_lines(logs: &[LogRecord]) -> Vec<String> {
    logs.iter().map(|r| format!("{:<5} {}", format!("{:?}", r.level).to_uppercase(), r.message)).collect()
}

/// Replays the case in `file` against `agent`.
pub(super) async fn run_case(
    runtime: &Runtime,
    agent: &Agent,
    file: &Path,
    tenant: Option<&str>,
) -> Result<Verdict, String> {
    let case = Case::load(file)?;
    let calls = case.journal.iter().filter(|e| e.call != TRUNCATED).count();
    let tape = Tape::replaying_effects(case.journal.clone());
    let options = RunOptions {
        tenant: tenant.map(str::to_string).or_else(|| case.tenant.clone()),
        run: case.run.clone(),
        journal: Some(tape.clone()),
        env: case.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let outcome = match runtime.run(agent, &case.input_text(), &options).await {
        Ok(outcome) => outcome,
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let result = outcome.result.map_err(|e| e.to_string());
    let logs =
        outcome.logs.iter().map(|r| format!("{:<5} {}", format!("{:?}", r.level).to_uppercase(), r.message)).collect();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let divergence = tape.finish().map(|d| d.to_string()).or_else(|| case.mismatch(&result));
    Ok(Verdict {
        agent: agent.name.to_string(),
        case: file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        file: file.to_path_buf(),
        passed: divergence.is_none(),
        divergence,
        calls,
        elapsed_ms: (elapsed_ms * 10.0).round() / 10.0,
        logs,
    })
}

/// The plugins `targets` name; with none, the plugin of the current folder
/// when it is one, else every plugin of the plugins folder.
pub(super) fn plugins_to_test(plugins_dir: &Path, targets: &[String]) -> Result<Vec<Result<Manifest, String>>, String> {
    if targets.is_empty() && Path::new(FILE_NAME).is_file() {
        return Ok(vec![Manifest::load(Path::new(FILE_NAME)).map_err(|e| e.to_string())]);
    }
    let targets: Vec<Option<&str>> = match targets.is_empty() {
        true => vec![None],
        false => targets.iter().map(|t| Some(t.as_str())).collect(),
    };
    let mut found = Vec::new();
    for target in targets {
        let manifests = super::build::plugins_named(plugins_dir, target)?;
        found.extend(manifests.into_iter().map(|m| m.map_err(|e| e.to_string())));
    }
    Ok(found)
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    /// The run's id (see `paddock flow list`)
    run: String,
    /// The agent step to keep (see `paddock flow status RUN`) [default: the run's only agent step]
    #[arg(long)]
    step: Option<String>,
    /// The case to write: a name (tests/NAME.json in the step's agent's folder), or a path ending in .json
    #[arg(long, value_name = "NAME|FILE")]
    into: String,
    /// Replace a case of that name
    #[arg(long)]
    force: bool,
}

pub async fn record(mut settings: Settings, args: RecordArgs) -> u8 {
    settings.board_store = BoardStore::Memory;
    let plugins_dir = settings.plugins_dir.clone();
    let flows = match super::flow::engine(settings) {
        Ok(f) => f,
        Err(code) => return code,
    };
    let step = match flows.recorded_step(&args.run, args.step.as_deref()) {
        Ok(step) => step,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    let mut case = match Case::of_run(&step.input, step.journal, &step.result) {
        Ok(case) => case,
        Err(message) => return fail(EXIT_USAGE, format!("step {} of run {}: {message}", step.step, args.run)),
    };
    case.tenant = Some(step.tenant);
    case.run = Some(args.run.clone());
    case.env = step.env.into_iter().filter(|(k, _)| k != "PADDOCK_RUN").collect();
    case.description = Some(format!("step {} of run {}", step.step, args.run));
    let folder = match args.into.ends_with(".json") {
        true => PathBuf::new(),
        false => match crate::plugins::Registry::new(&plugins_dir).find(&step.agent) {
            Ok(m) => m.file.parent().map(Path::to_path_buf).unwrap_or_default(),
            Err(e) => return fail(EXIT_LOAD, format!("step {} ran {}: {e}", step.step, step.agent)),
        },
    };
    save(&case, &folder, &args.into, args.force)
}

/// Writes `case` as `into` (a name in `folder`'s tests, or a path), unless
/// one is there and `force` is not given.
pub(super) fn save(case: &Case, folder: &Path, into: &str, force: bool) -> u8 {
    let file = match cases::destination(folder, into) {
        Ok(file) => file,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    if file.exists() && !force {
        return fail(EXIT_USAGE, format!("{} exists: choose another name, or --force to replace it", file.display()));
    }
    match case.save(&file) {
        Ok(()) => {
            let calls = case.journal.len();
            eprintln!("recorded {} ({calls} host calls); `paddock test` replays it", file.display());
            0
        }
        Err(message) => fail(EXIT_USAGE, message),
    }
}
