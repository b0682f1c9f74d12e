//! Adversarial: reads a file inside its granted directory, then tries to get
//! out of it every way it can, and reports each attempt.
use paddock_sdk::{Agent, export_agent};
use serde_json::json;

fn attempt(f: impl FnOnce() -> std::io::Result<String>) -> serde_json::Value {
    match f() {
        Ok(text) => json!({ "ok": text }),
        Err(e) => json!({ "err": e.to_string() }),
    }
}

struct Escape;

impl Agent for Escape {
    fn run(_input: String) -> Result<String, String> {
        Ok(json!({
            "inside": attempt(|| std::fs::read_to_string("/data/inside.txt")),
            "dotdot": attempt(|| std::fs::read_to_string("/data/../secret.txt")),
            "absolute": attempt(|| std::fs::read_to_string("/etc/passwd")),
            "symlink": attempt(|| std::fs::read_to_string("/data/link-out/secret.txt")),
            "write": attempt(|| std::fs::write("/data/new.txt", b"x").map(|()| "written".to_string())),
            "cwd": attempt(|| std::fs::read_to_string("secret.txt")),
        })
        .to_string())
    }
}

export_agent!(Escape);
