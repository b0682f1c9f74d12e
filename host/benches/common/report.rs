//! Where a load-generator bench leaves its figures: `target/<bench>-bench.json`.

use std::path::Path;

/// Writes `report` as pretty JSON to `target/<bench>-bench.json` and says where.
pub fn write(bench: &str, report: &serde_json::Value) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target/tmp has a parent");
    let path = target.join(format!("{bench}-bench.json"));
    let text = serde_json::to_string_pretty(report).expect("JSON values serialise");
    match std::fs::write(&path, text + "\n") {
        Ok(()) => eprintln!("wrote {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}
