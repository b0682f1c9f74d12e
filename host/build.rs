//! Embeds what `paddock new` copies into agents — each file of the contract
//! (`wit/`, with the WASI packages of `wit/deps/`), of the Rust SDK
//! (`sdk/src/`) and of the Python and JavaScript SDKs (`sdk/python/`,
//! `sdk/js/`, written beside the agent's app.py or app.js) — as the lists
//! `WIT_FILES`, `SDK_FILES`, `PYTHON_SDK_FILES` and `JS_SDK_FILES` of `(path
//! in the agent's folder, text)`, so a new WIT interface or SDK module needs
//! no line here or in `cli/new.rs`.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = String::new();
    // (list, folder, files' extension, where they go in the agent's folder)
    let lists = [
        ("WIT_FILES", "wit", "wit", "wit/"),
        ("SDK_FILES", "sdk/src", "rs", "sdk/src/"),
        ("PYTHON_SDK_FILES", "sdk/python", "py", ""),
        ("JS_SDK_FILES", "sdk/js", "js", ""),
    ];
    for (name, dir, extension, destination) in lists {
        let folder = root.join(dir);
        println!("cargo:rerun-if-changed={}", folder.display());
        let mut files = Vec::new();
        files_under(&folder, extension, &mut files);
        files.sort();
        writeln!(out, "const {name}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            let relative = path.strip_prefix(&folder).expect("under the folder").to_str().expect("a UTF-8 path");
            let absolute = path.canonicalize().expect("the file exists");
            writeln!(out, "    ({:?}, include_str!({:?})),", format!("{destination}{relative}"), absolute).unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}

/// Every file under `folder` (and its folders) whose name ends in `.extension`.
fn files_under(folder: &Path, extension: &str, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).unwrap_or_else(|e| panic!("{}: {e}", folder.display())) {
        let path = entry.expect("a readable folder").path();
        if path.is_dir() {
            files_under(&path, extension, files);
        } else if path.extension().is_some_and(|e| e == extension) {
            files.push(path);
        }
    }
}
