//! The `paddock` command, run by benches that build agents.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `paddock` with `args` in `dir`: how long it took, or its stderr when it fails.
/// Where it finds no `paddock.toml`, its data goes to `<dir>/.paddock`, not the user's.
pub fn paddock(dir: &Path, args: &[&str]) -> Result<Duration, String> {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .current_dir(dir)
        .args(args)
        .env("PADDOCK_DATA_DIR", dir.join(".paddock"))
        .output()
        .map_err(|e| format!("cannot run paddock: {e}"))?;
    match out.status.success() {
        true => Ok(started.elapsed()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}
