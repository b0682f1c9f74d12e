//! The author's loop under `paddock dev`, as an author lives it: `paddock new
//! greeter`, `paddock dev greeter --input …`, then edits of the greeting
//! in the agent's main source. For each language: the first output (build,
//! first load and run of a new agent), and the time from an edit's write to
//! the new output on `dev`'s stdout (rebuild, reload, run), as median, min and
//! max of 7 edits. The release host and the toolchains `paddock new` uses; a
//! language whose toolchain is missing is reported as such.
//!
//! `cargo bench -p paddock --bench dev` (figures also in `target/dev-bench.json`);
//! `PADDOCK_BENCH_LANGS=rust,python` measures only those.

#[path = "common/report.rs"]
mod report;

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EDITS: usize = 7;

/// The source each language's greeting is in.
fn source(lang: &str) -> &'static str {
    match lang {
        "rust" => "src/lib.rs",
        "python" => "app.py",
        "javascript" => "app.js",
        _ => "src/agent.c",
    }
}

/// `paddock dev` and its stdout lines as they come; killed by its PID when dropped.
struct Dev {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl Dev {
    fn start(dir: &Path) -> Dev {
        let mut child = Command::new(env!("CARGO_BIN_EXE_paddock"))
            .current_dir(dir)
            .args(["dev", "greeter", "--input", r#"{"name":"ada"}"#])
            .env("PADDOCK_DATA_DIR", dir.join(".paddock"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("paddock dev starts");
        let (send, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).try_for_each(|l| send.send(l)));
        let log = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let (err, kept) = (child.stderr.take().expect("piped stderr"), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                kept.lock().push_str(&(line + "\n"));
            }
        });
        Dev { child, lines, log }
    }

    /// The first output line holding `text`, within `limit`.
    fn output_with(&self, text: &str, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(format!("no output with {text:?} within {limit:?}:\n{}", self.log.lock())),
            }
        }
    }

    /// Waits until `dev` says it watches, so an edit is seen.
    fn watching(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.log.lock().contains("[dev] watching greeter (") {
            if Instant::now() > deadline {
                return Err(format!("paddock dev does not watch:\n{}", self.log.lock()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

fn measure(lang: &str) -> Result<Value, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .map_err(|e| e.to_string())?;
    let made = Command::new(env!("CARGO_BIN_EXE_paddock"))
        .current_dir(dir.path())
        .args(["new", "greeter", "--lang", lang])
        .output()
        .map_err(|e| e.to_string())?;
    if !made.status.success() {
        return Err(String::from_utf8_lossy(&made.stderr).into_owned());
    }
    let started = Instant::now();
    let dev = Dev::start(dir.path());
    dev.output_with("Hello, ada!", Duration::from_secs(900))?;
    let first = started.elapsed();
    dev.watching()?;

    let file = dir.path().join("plugins/greeter").join(source(lang));
    let original = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    let mut edits = Vec::new();
    for i in 0..EDITS {
        let greeting = format!("Howdy{i}, ");
        let edited = original.replacen("Hello, ", &greeting, 1);
        // An editor's save: a new file renamed over the old one.
        let saved = file.with_extension("saving");
        std::fs::write(&saved, edited).map_err(|e| e.to_string())?;
        let started = Instant::now();
        std::fs::rename(&saved, &file).map_err(|e| e.to_string())?;
        dev.output_with(&format!("{greeting}ada!"), Duration::from_secs(300))?;
        edits.push(started.elapsed());
    }
    edits.sort();
    Ok(json!({
        "lang": lang,
        "first_output_ms": ms(first),
        "edit_to_output_ms": { "median": ms(edits[EDITS / 2]), "min": ms(edits[0]), "max": ms(edits[EDITS - 1]) },
    }))
}

fn main() {
    let langs = std::env::var("PADDOCK_BENCH_LANGS").unwrap_or_else(|_| "rust,python,javascript,c".into());
    let mut figures = Vec::new();
    for lang in langs.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        match measure(lang) {
            Ok(f) => {
                println!(
                    "{lang:>10}: first output {} ms; edit -> output median {} ms (min {}, max {}) over {EDITS} edits",
                    f["first_output_ms"],
                    f["edit_to_output_ms"]["median"],
                    f["edit_to_output_ms"]["min"],
                    f["edit_to_output_ms"]["max"]
                );
                figures.push(f);
            }
            Err(why) => {
                println!("{lang:>10}: not measured: {why}");
                figures.push(json!({ "lang": lang, "error": why }));
            }
        }
    }
    report::write("dev", &json!(figures));
}
