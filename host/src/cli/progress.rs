//! Progress on what may be slow — a first load compiling a large component,
//! a build — so that no command sits silent. On a terminal a spinner with
//! the time so far (indicatif) on stderr; elsewhere one plain line, so that
//! logs and CI output say what the wait was.

use indicatif::{ProgressBar, ProgressStyle};
use std::future::Future;
use std::time::Duration;

/// How long work may take before it is said to be slow: longer than a load
/// from the code cache (tens of milliseconds), shorter than a person notices.
const SLOW: Duration = Duration::from_millis(300);

/// A spinner saying `message`, ticking by itself; hidden when stderr is not
/// a terminal, in which case the message is printed once instead.
pub fn spinner(message: String) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if bar.is_hidden() {
        eprintln!("{message}");
    }
    let style =
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Runs `work` on a blocking thread; when it takes longer than [`SLOW`],
/// says `message()` until it ends.
pub async fn when_slow<T: Send + 'static>(
    message: impl FnOnce() -> String,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let mut task = tokio::task::spawn_blocking(work);
    let done = tokio::select! {
        done = &mut task => Some(done),
        () = tokio::time::sleep(SLOW) => None,
    };
    let joined = match done {
        Some(done) => done,
        None => {
            let bar = spinner(message());
            let done = task.await;
            bar.finish_and_clear();
            done
        }
    };
    joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The same for a future.
pub async fn future_when_slow<F: Future>(message: impl FnOnce() -> String, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        done = &mut work => return done,
        () = tokio::time::sleep(SLOW) => {}
    }
    let bar = spinner(message());
    let done = work.await;
    bar.finish_and_clear();
    done
}

/// What a slow load of `spec` says: the agent, its component's size, and
/// that compiling happens once.
pub fn loading(runtime: &crate::runtime::Runtime, spec: &str) -> String {
    let manifest = match runtime.registry().find(spec) {
        Ok(manifest) => Some(manifest),
        Err(_) if spec.ends_with(".toml") => crate::plugins::Manifest::load(std::path::Path::new(spec)).ok(),
        Err(_) => None,
    };
    let (name, component) = match manifest {
        Some(m) => (m.name, m.component),
        None => (spec.to_string(), spec.into()),
    };
    let size =
        std::fs::metadata(&component).map(|m| format!(" ({})", crate::config::ByteSize(m.len()))).unwrap_or_default();
    format!("compiling {name}{size}: the first load only, its code is cached for the next…")
}

/// Runs `command`, its output shown above a spinner saying `message`.
pub async fn command_with_spinner(
    command: &mut tokio::process::Command,
    message: String,
) -> std::io::Result<std::process::ExitStatus> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn()?;
    let bar = spinner(message);
    let mut out = child.stdout.take().map(|o| BufReader::new(o).lines());
    let mut err = child.stderr.take().map(|e| BufReader::new(e).lines());
    async fn next<R: tokio::io::AsyncBufRead + Unpin>(lines: &mut Option<tokio::io::Lines<R>>) -> Option<String> {
        lines.as_mut()?.next_line().await.ok().flatten()
    }
    loop {
        tokio::select! {
            line = next(&mut out), if out.is_some() => match line {
                Some(line) => bar.suspend(|| eprintln!("{line}")),
                None => out = None,
            },
            line = next(&mut err), if err.is_some() => match line {
                Some(line) => bar.suspend(|| eprintln!("{line}")),
                None => err = None,
            },
            else => break,
        }
    }
    let status = child.wait().await;
    bar.finish_and_clear();
    status
}
