//! `paddock build`: run plugins' build commands and report what they built,
//! after checking that the tools each command runs are installed; and the
//! steps of a C agent's build that paddock does in-process (`c-bindings`,
//! `component`, see [`crate::toolchain::c`]).

use super::{EXIT_BUILD, EXIT_LOAD};
use crate::config::{ByteSize, Settings};
use crate::core::names::validate_agent;
use crate::plugins::manifest::FILE_NAME;
use crate::plugins::{Manifest, ManifestError, Registry};
use crate::toolchain::{self, SystemProbe, c};
use clap::{Args, Subcommand};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BuildArgs {
    /// A plugin's folder, a folder of plugins, or a plugin's name [default: the plugins folder]
    #[arg(value_name = "DIR|NAME")]
    target: Option<String>,
    #[command(subcommand)]
    step: Option<Step>,
}

#[derive(Debug, Subcommand)]
enum Step {
    /// Write the C bindings of the agent world (a step of C agents' build commands)
    #[command(name = "c-bindings", after_help = "Example:\n  paddock build c-bindings wit build/bindings")]
    CBindings {
        /// The WIT folder (package paddock:agent)
        wit: PathBuf,
        /// Where to write <world>.h, <world>.c and <world>_component_type.o
        out: PathBuf,
        /// The world to bind
        #[arg(long, default_value = c::WORLD)]
        world: String,
    },
    /// Wrap a WASI preview 1 core module into a component (a step of C agents' build commands)
    #[command(after_help = "Example:\n  paddock build component build/core.wasm -o build/agent.wasm")]
    Component {
        /// The core module (clang --target=wasm32-wasi -mexec-model=reactor, linked with the bindings)
        core: PathBuf,
        /// The component to write
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

pub async fn build(settings: Settings, args: BuildArgs) -> u8 {
    if let Some(step) = args.step {
        return run_step(step);
    }
    let manifests = match plugins_named(&settings.plugins_dir, args.target.as_deref()) {
        Ok(manifests) => manifests,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_LOAD;
        }
    };
    let mut code = 0;
    for manifest in manifests {
        match manifest {
            Err(e) => {
                eprintln!("error: {e}");
                code = code.max(EXIT_LOAD);
            }
            Ok(m) if m.build.is_none() => {
                eprintln!("skipped {} {}: no [build] command in {}", m.name, m.version, m.file.display())
            }
            Ok(m) => {
                if let Err(c) = build_one(&m, Report::Stdout).await {
                    code = code.max(c);
                }
            }
        }
    }
    code
}

/// The manifests `target` names: a plugin's folder (or its agent.toml), every
/// plugin in a folder, or the plugin of that name in the plugins folder.
pub(super) fn plugins_named(
    plugins_dir: &Path,
    target: Option<&str>,
) -> Result<Vec<Result<Manifest, ManifestError>>, String> {
    let scan = |dir: &Path| {
        let found = Registry::new(dir).scan().unwrap_or_else(|e| vec![Err(e)]);
        match found.is_empty() {
            true => Err(format!("no plugins (folders with {FILE_NAME}) under {}", dir.display())),
            false => Ok(found),
        }
    };
    let Some(target) = target else { return scan(plugins_dir) };
    let path = Path::new(target);
    if path.join(FILE_NAME).is_file() {
        return Ok(vec![Manifest::load(&path.join(FILE_NAME))]);
    }
    if path.is_file() && path.file_name().is_some_and(|n| n == FILE_NAME) {
        return Ok(vec![Manifest::load(path)]);
    }
    if path.is_dir() {
        return scan(path);
    }
    if validate_agent(target).is_err() {
        return Err(format!("{target}: no such folder, and not a plugin name"));
    }
    match Registry::new(plugins_dir).find(target) {
        Ok(manifest) => Ok(vec![Ok(manifest)]),
        Err(e) => Err(format!("{target}: no such folder, and {e}")),
    }
}

/// `PATH` for build commands: the folder of this `paddock` first, so that a
/// command's `paddock build …` steps run this very binary (also under `cargo run`).
pub(super) fn build_path() -> OsString {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let own = std::env::current_exe().ok().and_then(|exe| exe.parent().map(Path::to_path_buf));
    let dirs = own.into_iter().chain(std::env::split_paths(&inherited));
    std::env::join_paths(dirs).unwrap_or(inherited)
}

/// Where a build's last line, what it built, goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Stdout: it is the command's output (`paddock build`).
    Stdout,
    /// Stderr, with the build's own output: stdout is another command's (`run --build`, `dev`).
    Stderr,
}

/// Checks the tools `manifest`'s build command runs, runs it, then checks
/// that it produced the component.
pub async fn build_one(manifest: &Manifest, report: Report) -> Result<(), u8> {
    let Some(build) = &manifest.build else {
        return Ok(());
    };
    let path = build_path();
    let checked = toolchain::check(&toolchain::tools_in(&build.command), &SystemProbe::new(path.clone()));
    for note in &checked.notes {
        eprintln!("warning: {}: {note}", manifest.name);
    }
    if !checked.missing.is_empty() {
        for missing in &checked.missing {
            eprintln!("error: {}: {missing}", manifest.name);
        }
        eprintln!(
            "error: {}: not built: its build command ({}) needs the tools above",
            manifest.name,
            manifest.file.display()
        );
        return Err(EXIT_BUILD);
    }
    eprintln!("building {} {}: {} (in {})", manifest.name, manifest.version, build.command, build.workdir.display());
    let started = Instant::now();
    // Build output goes to stderr so that stdout stays the report. A target
    // folder inherited from the caller would put the component where the
    // manifest does not look.
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(&build.command)
        .current_dir(&build.workdir)
        .env("PATH", &path)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(std::process::Stdio::null());
    // On a terminal its output scrolls above a spinner; elsewhere it is
    // passed through as it comes.
    let status = match std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        true => super::progress::command_with_spinner(&mut command, format!("building {}", manifest.name)).await,
        false => command.stdout(std::io::stderr()).status().await,
    };
    let seconds = started.elapsed().as_secs_f64();
    match status {
        Err(e) => {
            eprintln!("error: {}: cannot run `sh -c {}`: {e}", manifest.name, build.command);
            return Err(EXIT_BUILD);
        }
        Ok(s) if !s.success() => {
            let how = s.code().map_or("was killed".to_string(), |c| format!("exited with {c}"));
            eprintln!(
                "error: {}: build command {how} after {seconds:.1}s ({})",
                manifest.name,
                manifest.file.display()
            );
            return Err(EXIT_BUILD);
        }
        Ok(_) => {}
    }
    match std::fs::metadata(&manifest.component) {
        Ok(meta) => {
            let line = format!(
                "built {} {} -> {} ({}) in {seconds:.1}s",
                manifest.name,
                manifest.version,
                manifest.component.display(),
                ByteSize(meta.len())
            );
            match report {
                Report::Stdout => println!("{line}"),
                Report::Stderr => eprintln!("{line}"),
            }
            Ok(())
        }
        Err(_) => {
            eprintln!(
                "error: {}: the build command succeeded but {} does not exist (check `component` in {})",
                manifest.name,
                manifest.component.display(),
                manifest.file.display()
            );
            Err(EXIT_BUILD)
        }
    }
}

fn run_step(step: Step) -> u8 {
    let done = match step {
        Step::CBindings { wit, out, world } => c::write_bindings(&wit, &world, &out).map(|files| {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            println!("wrote {}", names.join(", "));
        }),
        Step::Component { core, output } => c::componentize_file(&core, &output)
            .map(|size| println!("wrote {} ({}) from {}", output.display(), ByteSize(size), core.display())),
    };
    match done {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BUILD
        }
    }
}
