//! Embeds what `paddock new` copies into every agent — each file of the
//! contract (`wit/`) and of the Rust SDK (`sdk/src/`) — as the lists
//! `WIT_FILES` and `SDK_FILES` of `(path in the agent's folder, text)`, so a
//! new WIT interface or SDK module needs no line here or in `cli/new.rs`.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = String::new();
    for (name, dir, extension) in [("WIT_FILES", "wit", "wit"), ("SDK_FILES", "sdk/src", "rs")] {
        let folder = root.join(dir);
        println!("cargo:rerun-if-changed={}", folder.display());
        let mut files: Vec<_> = std::fs::read_dir(&folder)
            .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
            .map(|entry| entry.expect("a readable folder").path())
            .filter(|path| path.extension().is_some_and(|e| e == extension))
            .collect();
        files.sort();
        writeln!(out, "const {name}: &[(&str, &str)] = &[").unwrap();
        for path in files {
            let file = path.file_name().and_then(|n| n.to_str()).expect("a UTF-8 file name");
            let absolute = path.canonicalize().expect("the file exists");
            writeln!(out, "    ({:?}, include_str!({:?})),", format!("{dir}/{file}"), absolute).unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let target = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded.rs");
    std::fs::write(target, out).expect("OUT_DIR is writable");
}
