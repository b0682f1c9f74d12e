//! `paddock build`: run each plugin's build command and report what it built.

use super::{EXIT_BUILD, EXIT_LOAD};
use crate::config::{ByteSize, Settings};
use crate::plugins::{Manifest, Registry};
use clap::Args;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The folder holding the plugins [default: the plugins folder]
    dir: Option<PathBuf>,
}

pub async fn build(settings: Settings, args: BuildArgs) -> u8 {
    let dir = args.dir.unwrap_or(settings.plugins_dir);
    let manifests = Registry::new(&dir).scan();
    if manifests.is_empty() {
        eprintln!("error: no plugins (folders with agent.toml) under {}", dir.display());
        return EXIT_LOAD;
    }
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
                if let Err(c) = build_one(&m).await {
                    code = code.max(c);
                }
            }
        }
    }
    code
}

/// Runs `manifest`'s build command, then checks that it produced the component.
pub async fn build_one(manifest: &Manifest) -> Result<(), u8> {
    let Some(build) = &manifest.build else {
        return Ok(());
    };
    eprintln!("building {} {}: {} (in {})", manifest.name, manifest.version, build.command, build.workdir.display());
    let started = Instant::now();
    // Build output goes to stderr so that stdout stays the report. A target
    // folder inherited from the caller would put the component where the
    // manifest does not look.
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(&build.command)
        .current_dir(&build.workdir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .stdin(std::process::Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .await;
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
            println!(
                "built {} {} -> {} ({}) in {seconds:.1}s",
                manifest.name,
                manifest.version,
                manifest.component.display(),
                ByteSize(meta.len())
            );
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
