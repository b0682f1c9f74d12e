//! A pooled slot is handed back pristine: whatever one invocation wrote into
//! its linear memory (a data segment's byte, a zero page, pages it grew) or
//! its table, the next invocation in the same slot — another tenant's —
//! never sees. The engine keeps dirtied pages resident between invocations
//! and copies their initial contents back (`engine.keep-resident`), rather
//! than unmapping them; this holds that the copy is complete.
//!
//! The guest is written in WAT, since a Rust guest cannot set a table entry:
//! it reports what its instance found, then leaves its marks everywhere.

use crate::util::*;
use paddock::runtime::{RunOptions, Runtime};
use std::path::Path;

/// The `marks` guest: `run` answers four bytes — the data segment's byte at
/// 1024 (`c` as initialised), `'0' +` the byte at 40000 (a zero page),
/// `'0' +` the memory's size in pages (1), and whether table slot 1 is null
/// (`n`) or holds a function (`f`) — then writes `d` at 1024, 1 at 40000,
/// grows the memory by a page and writes into it, and sets table slot 1.
const MARKS: &str = r#"
(module
  (memory (export "memory") 1)
  (table $t 2 funcref)
  (elem declare func $f)
  (func $f)
  (data (i32.const 1024) "c")
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $at i32)
    (local.set $at
      (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
               (i32.sub (i32.const 0) (local.get 2))))
    (global.set $bump (i32.add (local.get $at) (local.get 3)))
    (local.get $at))
  (func (export "paddock:agent/agent@0.1.0#run") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2048) (i32.load8_u (i32.const 1024)))
    (i32.store8 (i32.const 2049) (i32.add (i32.const 48) (i32.load8_u (i32.const 40000))))
    (i32.store8 (i32.const 2050) (i32.add (i32.const 48) (memory.size)))
    (i32.store8 (i32.const 2051)
      (select (i32.const 110) (i32.const 102) (ref.is_null (table.get $t (i32.const 1)))))
    (i32.store8 (i32.const 1024) (i32.const 100))
    (i32.store8 (i32.const 40000) (i32.const 1))
    (drop (memory.grow (i32.const 1)))
    (i32.store8 (i32.const 70000) (i32.const 1))
    (table.set $t (i32.const 1) (ref.func $f))
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.store (i32.const 2068) (i32.const 2048))
    (i32.store (i32.const 2072) (i32.const 4))
    (i32.const 2064))
  (func (export "paddock:agent/agent@0.1.0#compensate") (param i32 i32) (result i32)
    (i32.store8 (i32.const 2064) (i32.const 0))
    (i32.const 2064)))
"#;

/// What a pristine instance of `marks` answers.
const PRISTINE: &str = "c01n";

/// `MARKS` as a component of `agent-world`, written to `dir/marks.wasm`.
fn marks_component(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("marks.wasm");
    std::fs::write(&path, agent_component(wat::parse_str(MARKS).expect("the WAT parses"))).unwrap();
    path
}

fn host(dir: &Path, keep_resident: &str) -> Runtime {
    let wasm = marks_component(dir);
    let plugins = dir.join("plugins");
    plugin(&plugins, "marks", wasm.to_str().unwrap(), "");
    let config = format!(
        "[engine]\nmax-instances = 2\nkeep-resident = {keep_resident:?}\n\
         [tenants.a]\nagents = [\"marks\"]\n[tenants.b]\nagents = [\"marks\"]\n"
    );
    runtime_with_plugins(&plugins, &config)
}

/// What `marks` answered.
fn found(outcome: &paddock::sandbox::Outcome) -> String {
    outcome.result.as_ref().unwrap_or_else(|e| panic!("marks runs: {e}")).clone()
}

fn tenant(name: &str) -> RunOptions {
    RunOptions { tenant: Some(name.into()), ..Default::default() }
}

/// Every invocation, one after another and two at a time, alternating
/// tenants, finds `marks` pristine.
async fn every_invocation_finds_a_pristine_slot(keep_resident: &str) {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), keep_resident);
    let mut seen = Vec::new();
    for i in 0..20 {
        let who = if i % 2 == 0 { "a" } else { "b" };
        seen.push(found(&run_with(&rt, "marks", "{}", &tenant(who)).await));
    }
    let (a, b) = (tenant("a"), tenant("b"));
    for _ in 0..10 {
        let (a, b) = tokio::join!(run_with(&rt, "marks", "{}", &a), run_with(&rt, "marks", "{}", &b));
        seen.extend([found(&a), found(&b)]);
    }
    assert_eq!(seen, vec![PRISTINE; 40], "engine.keep-resident = {keep_resident:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_tables_written_by_one_invocation_are_never_seen_by_the_next_in_its_slot() {
    every_invocation_finds_a_pristine_slot("1MiB").await;
    // Pages past what is kept resident are unmapped; those inside it copied back.
    every_invocation_finds_a_pristine_slot("16KiB").await;
    every_invocation_finds_a_pristine_slot("0").await;
}
