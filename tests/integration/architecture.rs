//! The layering of the workspace, checked on every test run so that no change
//! can quietly undo it: services depend on no wasmtime and on nothing above
//! them (Cargo's own dependency graph, read with `cargo metadata`), no crate
//! has an import circle between its top-level modules, and no source file
//! grows past 600 lines.
//!
//! The same checks run by hand with `cargo test -p paddock --test integration architecture`.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's crates from the bottom up: a crate may depend only on
/// crates of a lower layer. The services (every layer below the runtime)
/// must not reach wasmtime.
const LAYERS: &[&[&str]] = &[
    &["paddock-core", "paddock-postgres"],
    &["paddock-gateway", "paddock-blackboard", "paddock-journal", "paddock-toolchain", "paddock-keys", "paddock-tools"],
    &["paddock-quota"],
    &["paddock-tenants"],
    &["paddock-config"],
    &["paddock-runtime"],
    &["paddock-flow"],
    &["paddock"],
];
/// The first layer that may link wasmtime.
const RUNTIME_LAYER: usize = 5;
const WASMTIME: &[&str] = &["wasmtime", "wasmtime-wasi"];
const MAX_FILE_LINES: usize = 600;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ is inside the workspace").to_path_buf()
}

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&name))
}

/// Each package's name and the names of its normal (not dev, not build)
/// dependencies, as Cargo resolved them.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(workspace())
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "cargo metadata failed: {}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let names: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p["name"].as_str().expect("name")))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve.nodes") {
        let name = names[node["id"].as_str().expect("id")].to_string();
        let deps = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter(|d| d["dep_kinds"].as_array().expect("dep_kinds").iter().any(|k| k["kind"].is_null()))
            .map(|d| names[d["pkg"].as_str().expect("pkg")].to_string())
            .collect();
        graph.insert(name, deps);
    }
    graph
}

/// Everything `name` depends on, directly or not.
fn reach(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(next) = todo.pop() {
        for dep in graph.get(&next).into_iter().flatten() {
            if seen.insert(dep.clone()) {
                todo.push(dep.clone());
            }
        }
    }
    seen
}

#[test]
fn services_depend_on_no_wasmtime_and_on_no_crate_above_them() {
    let graph = dependency_graph();
    let mut wrong = Vec::new();
    for (layer, crates) in LAYERS.iter().enumerate() {
        for name in *crates {
            assert!(graph.contains_key(*name), "the workspace has no crate {name}");
            let reached = reach(&graph, name);
            if layer < RUNTIME_LAYER {
                for engine in WASMTIME.iter().filter(|w| reached.contains(**w)) {
                    wrong.push(format!("{name} depends on {engine}"));
                }
            }
            for dep in &graph[*name] {
                if layer_of(dep).is_some_and(|l| l >= layer) {
                    wrong.push(format!("{name} depends on {dep}, which is not below it"));
                }
                if dep.starts_with("paddock") && layer_of(dep).is_none() && dep != "paddock-sdk" {
                    wrong.push(format!(
                        "{name} depends on {dep}, which has no layer in tests/integration/architecture.rs"
                    ));
                }
            }
        }
    }
    assert_eq!(wrong, Vec::<String>::new());
}

/// The `src` folders of every crate of the host.
fn host_crates() -> Vec<PathBuf> {
    let host = workspace().join("host");
    let mut sources = vec![host.join("src")];
    for entry in std::fs::read_dir(&host).expect("host/ is readable") {
        let src = entry.expect("entry").path().join("src");
        if src.join("lib.rs").is_file() {
            sources.push(src);
        }
    }
    sources.sort();
    sources
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            if !matches!(path.file_name().and_then(|n| n.to_str()), Some("target" | ".git" | "node_modules")) {
                rust_files(&path, into);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The crate-local modules each top-level module of `src` names through `crate::`.
fn module_imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("src is readable") {
        let path = entry.expect("entry").path();
        let name = path.file_stem().and_then(|n| n.to_str()).expect("a file name").to_string();
        if name == "lib" || name == "main" || !(path.is_dir() || path.extension().is_some_and(|e| e == "rs")) {
            continue;
        }
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        let text: String = files.iter().map(|f| std::fs::read_to_string(f).expect("readable")).collect();
        let named: BTreeSet<String> = text
            .match_indices("crate::")
            .map(|(at, _)| {
                text[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>()
            })
            .filter(|m| *m != name)
            .collect();
        modules.entry(name).or_insert_with(BTreeSet::new).extend(named);
    }
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules.values_mut().for_each(|named| named.retain(|m| known.contains(m)));
    modules
}

/// A circle in `graph`, as the path that closes it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_top_level_modules() {
    let mut circles = Vec::new();
    for src in host_crates() {
        if let Some(circle) = find_circle(&module_imports(&src)) {
            circles.push(format!("{}: {}", src.display(), circle.join(" -> ")));
        }
    }
    assert_eq!(circles, Vec::<String>::new());
}

#[test]
fn the_circle_finder_names_the_modules_of_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("config", vec!["triggers"]), ("triggers", vec!["runtime"]), ("runtime", vec!["config"]), ("gateway", vec![])]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
            .collect();
    assert_eq!(find_circle(&graph).unwrap().join(" -> "), "config -> triggers -> runtime -> config");
    let acyclic: BTreeMap<String, BTreeSet<String>> =
        [("a".to_string(), ["b".to_string()].into()), ("b".to_string(), BTreeSet::new())].into();
    assert_eq!(find_circle(&acyclic), None);
}

#[test]
fn no_source_file_is_over_600_lines() {
    let root = workspace();
    let mut files = Vec::new();
    for dir in ["host", "sdk", "tests", "plugins"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 100, "found only {} Rust files under {}", files.len(), root.display());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let lines = std::fs::read_to_string(f).expect("readable").lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} has {lines} lines", f.strip_prefix(&root).unwrap().display()))
        })
        .collect();
    assert_eq!(long, Vec::<String>::new());
}
