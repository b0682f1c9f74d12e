//! `paddock dev`: an agent author's inner loop in one command. It watches
//! each agent's sources ([`super::sources`]); when one changes it runs the
//! build command (its errors in place), loads the new version into the host
//! it runs, runs it on the last input, printing the output and the agent's
//! log, and replays the agent's recorded cases ([`super::cases`]).
//!
//! A manifest change reloads without building; a component built by
//! something else (another terminal's `cargo build`) reloads too; a change
//! to `tests/` replays the cases only. A host serving the same plugins
//! folder reloads each new build by itself, as it always does.

use super::build::Report;
use super::cases;
use super::sources;
use super::{EXIT_CRASH, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::{Settings, Span};
use crate::plugins::Manifest;
use crate::runtime::{Reload, RunOptions, Runtime};
use clap::Args;
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, new_debouncer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// The plugins to work on: a plugin's folder, or a name [default: the plugin of the current folder, else every plugin]
    #[arg(value_name = "DIR|NAME")]
    targets: Vec<String>,
    /// The input, as JSON [default: the last one `paddock dev` ran the agent with, else {}]
    #[arg(long, conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the input (JSON) from a file
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// The tenant to run for [default: host.default-tenant]
    #[arg(long)]
    tenant: Option<String>,
    /// How long files must rest after a change before it builds
    #[arg(long, default_value = "100ms", value_name = "DURATION", value_parser = parse_span)]
    debounce: Span,
}

fn parse_span(text: &str) -> Result<Span, String> {
    Span::parse(text).map_err(|e| e.to_string())
}

/// What a change asks of an agent, least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    /// Its cases changed: replay them.
    Cases,
    /// Its component changed: load it, run it, replay the cases.
    Component,
    /// Its manifest changed: the same.
    Manifest,
    /// A source changed: build first.
    Source,
}

/// One agent worked on.
struct Work {
    manifest: Manifest,
    input: String,
}

pub async fn dev(mut settings: Settings, args: DevArgs) -> u8 {
    let manifests = match super::test::plugins_to_test(&settings.plugins_dir, &args.targets) {
        Ok(found) => found.into_iter().collect::<Result<Vec<_>, _>>(),
        Err(message) => Err(message),
    };
    // Absolute paths, as the watcher reports them.
    let manifests = manifests.and_then(|found| {
        found
            .iter()
            .map(|m| Manifest::load(&std::path::absolute(&m.file).unwrap_or_default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    });
    let manifests = match manifests {
        Ok(m) => m,
        Err(message) => return fail(EXIT_LOAD, message),
    };
    // The host finds plugins by name in one folder: an agent's folder named
    // outside the plugins folder brings its own.
    if let Some(parent) = outside(&settings.plugins_dir, &manifests) {
        settings.plugins_dir = parent;
    }
    let given = match read_input(&args) {
        Ok(input) => input,
        Err(message) => return fail(EXIT_USAGE, message),
    };
    let inputs = settings.data_dir.join("dev");
    let mut work = Vec::new();
    for manifest in manifests {
        let kept = inputs.join(format!("{}.input.json", manifest.name));
        let input = match &given {
            Some(input) => {
                let saved = std::fs::create_dir_all(&inputs).and_then(|()| std::fs::write(&kept, input));
                if let Err(e) = saved {
                    eprintln!("warning: cannot keep the input in {}: {e}", kept.display());
                }
                input.clone()
            }
            None => std::fs::read_to_string(&kept).unwrap_or_else(|_| "{}".to_string()),
        };
        work.push(Work { manifest, input });
    }
    let runtime = match Runtime::new(settings) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CRASH, format!("cannot start the host: {e:#}")),
    };
    runtime.set_one_shot();
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel::<Vec<PathBuf>>();
    let debouncer = new_debouncer(args.debounce.0, None, move |result: DebounceEventResult| {
        if let Ok(events) = result {
            let paths =
                events.into_iter().filter(|e| !matches!(e.kind, EventKind::Access(_))).flat_map(|e| e.event.paths);
            let paths: Vec<PathBuf> = paths.collect();
            if !paths.is_empty() {
                let _ = sender.send(paths);
            }
        }
    });
    let mut debouncer = match debouncer {
        Ok(d) => d,
        Err(e) => return fail(EXIT_CRASH, format!("cannot watch files: {e}")),
    };
    for w in &work {
        cycle(&runtime, w, Change::Source, None, args.tenant.as_deref()).await;
    }
    let mut watched = BTreeSet::new();
    watch(&mut debouncer, &work, &mut watched);
    let names: Vec<&str> = work.iter().map(|w| w.manifest.name.as_str()).collect();
    eprintln!("[dev] watching {} ({} folders); Ctrl-C stops", names.join(", "), watched.len());
    let mut stop = std::pin::pin!(super::serve::stop_signal());
    loop {
        let paths = tokio::select! {
            () = &mut stop => return 0,
            paths = changes.recv() => paths.unwrap_or_default(),
        };
        let mut paths = paths;
        while let Ok(more) = changes.try_recv() {
            paths.extend(more);
        }
        tracing::debug!(?paths, "files changed");
        for w in &mut work {
            // The manifest is read again: it may be what changed.
            if let Ok(m) = Manifest::load(&w.manifest.file) {
                w.manifest = m;
            }
            if let Some((change, path)) = classify(&w.manifest, &paths) {
                cycle(&runtime, w, change, Some(&path), args.tenant.as_deref()).await;
            }
        }
        watch(&mut debouncer, &work, &mut watched);
    }
}

/// The folder of the agents' folders, when it is not the plugins folder.
fn outside(plugins_dir: &Path, manifests: &[Manifest]) -> Option<PathBuf> {
    let home = plugins_dir.canonicalize().ok();
    let parents: BTreeSet<PathBuf> =
        manifests.iter().filter_map(|m| m.file.parent()?.parent()?.canonicalize().ok()).collect();
    match parents.len() {
        1 if parents.first() != home.as_ref() => parents.into_iter().next(),
        _ => None,
    }
}

fn read_input(args: &DevArgs) -> Result<Option<String>, String> {
    let input = match (&args.input, &args.input_file) {
        (Some(text), _) => text.clone(),
        (None, Some(path)) => {
            std::fs::read_to_string(path).map_err(|e| format!("--input-file {}: {e}", path.display()))?
        }
        (None, None) => return Ok(None),
    };
    serde_json::from_str::<serde_json::Value>(&input).map_err(|e| format!("--input is not valid JSON: {e}"))?;
    Ok(Some(input))
}

/// Watches each agent's source folders and its component's folder, each
/// without recursion; folders made since are added, folders gone dropped.
fn watch<W: notify::Watcher, C: notify_debouncer_full::FileIdCache>(
    debouncer: &mut notify_debouncer_full::Debouncer<W, C>,
    work: &[Work],
    watched: &mut BTreeSet<PathBuf>,
) {
    let mut wanted = BTreeSet::new();
    for w in work {
        let root = w.manifest.file.parent().unwrap_or(Path::new("."));
        wanted.extend(sources::folders(root));
        wanted.insert(root.join(cases::FOLDER));
        wanted.extend(w.manifest.component.parent().map(Path::to_path_buf));
    }
    wanted.retain(|f| f.is_dir());
    for gone in watched.difference(&wanted).cloned().collect::<Vec<_>>() {
        let _ = debouncer.unwatch(&gone);
        watched.remove(&gone);
    }
    for folder in wanted {
        if !watched.contains(&folder) {
            match debouncer.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(folder);
                }
                Err(e) => eprintln!("warning: cannot watch {}: {e}", folder.display()),
            }
        }
    }
}

/// The most a change among `paths` asks of `manifest`'s agent, and the path
/// that asked it.
fn classify(manifest: &Manifest, paths: &[PathBuf]) -> Option<(Change, PathBuf)> {
    let root = manifest.file.parent()?;
    let tests = root.join(cases::FOLDER);
    let change = |path: &PathBuf| {
        if *path == manifest.file {
            Some(Change::Manifest)
        } else if *path == manifest.component {
            Some(Change::Component)
        } else if path.starts_with(&tests) && path.extension().is_some_and(|x| x == "json") {
            Some(Change::Cases)
        } else if sources::is_source(root, manifest, path) {
            Some(Change::Source)
        } else {
            None
        }
    };
    paths.iter().filter_map(|p| Some((change(p)?, p.clone()))).max_by_key(|(c, _)| *c)
}

/// Brings one agent up to date with `change`: build, load, run, replay.
async fn cycle(runtime: &Runtime, w: &Work, change: Change, path: Option<&Path>, tenant: Option<&str>) {
    let m = &w.manifest;
    if let Some(path) = path {
        let root = m.file.parent().unwrap_or(Path::new(""));
        eprintln!("[dev] {}: {} changed", m.name, path.strip_prefix(root).unwrap_or(path).display());
    }
    if change == Change::Source {
        let fresh = path.is_none() && m.component.is_file() && sources::changed_since_built(m).is_none();
        if m.build.is_some() && !fresh && super::build::build_one(m, Report::Stderr).await.is_err() {
            eprintln!("[dev] {}: not built; the errors are above. Watching for the next change", m.name);
            return;
        }
    }
    if change >= Change::Component {
        let loading = || super::progress::loading(runtime, &m.name);
        match super::progress::future_when_slow(loading, runtime.reload(&m.name)).await {
            Reload::Swapped { from: Some(from), to } => eprintln!("[dev] {}: {from} -> {to}", m.name),
            Reload::Swapped { from: None, to } => eprintln!("[dev] {}: {to} loaded", m.name),
            Reload::Unchanged if change == Change::Component => return,
            Reload::Unchanged => {}
            Reload::Held { version, .. } => eprintln!("[dev] {}: {version} held", m.name),
            Reload::Failed(why) => return eprintln!("[dev] {}: not loaded: {why}", m.name),
            Reload::Removed => return eprintln!("[dev] {}: its plugin is gone", m.name),
        }
        run(runtime, w, tenant).await;
    }
    replay_cases(runtime, m, tenant).await;
}

/// Runs the agent on its input: the output on stdout, its log and the
/// result on stderr.
async fn run(runtime: &Runtime, w: &Work, tenant: Option<&str>) {
    let agent = match runtime.load(&w.manifest.name) {
        Ok(agent) => agent,
        Err(e) => return eprintln!("[dev] {}: {e}", w.manifest.name),
    };
    eprintln!("[dev] run {} {}", agent.name, crate::flow::events::abbreviate(w.input.trim(), 200));
    let options = RunOptions { tenant: tenant.map(str::to_string), ..RunOptions::default() };
    let started = Instant::now();
    let outcome = match runtime.run(&agent, &w.input, &options).await {
        Ok(outcome) => outcome,
        Err(e) => return eprintln!("[dev] {}: {e}", agent.name),
    };
    for line in super::test::log_lines(&outcome.logs) {
        eprintln!("  {line}");
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome.result {
        Ok(output) => {
            println!("{output}");
            eprintln!("[dev] {} {}: ok in {ms:.1} ms", agent.name, outcome.version);
        }
        Err(e) => eprintln!("[dev] {} {}: error: {e}", agent.name, outcome.version),
    }
}

/// Replays the agent's cases, one line each that fails and a tally.
async fn replay_cases(runtime: &Runtime, m: &Manifest, tenant: Option<&str>) {
    let folder = m.file.parent().unwrap_or(Path::new(".")).join(cases::FOLDER);
    let Ok(files) = cases::in_folder(&folder) else { return };
    if files.is_empty() {
        return;
    }
    let agent = match runtime.load(&m.name) {
        Ok(agent) => agent,
        Err(_) => return,
    };
    let (mut passed, mut failed) = (0, 0);
    for file in &files {
        match super::test::run_case(runtime, &agent, file, tenant).await {
            Ok(v) if v.passed => passed += 1,
            Ok(v) => {
                failed += 1;
                eprintln!("[dev] case {}: FAILED {}", v.case, v.divergence.unwrap_or_default());
            }
            Err(message) => {
                failed += 1;
                eprintln!("[dev] case: {message}");
            }
        }
    }
    eprintln!("[dev] {}: cases {passed} passed, {failed} failed", m.name);
}
