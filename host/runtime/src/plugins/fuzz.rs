//! Property tests of [`Manifest::parse`]: no text makes it panic, every
//! refusal names the file, a refusal past TOML's own starts with a key the
//! manifest has, and what it accepts keeps the rules it documents.

use super::manifest::{Manifest, ManifestError};
use proptest::prelude::*;
use proptest::sample::select;
use std::path::{Component, Path};

const FILE: &str = "plugins/hello/agent.toml";

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn parse(text: &str) -> Result<Manifest, ManifestError> {
    Manifest::parse(text, Path::new(FILE))
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A string from `pool` (its first ones good, its last ones not), or now and then any string.
fn text(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    let good = &pool[..pool.len().div_ceil(2)];
    prop_oneof![
        12 => select(good).prop_map(quoted),
        4 => select(pool).prop_map(quoted),
        1 => any::<String>().prop_map(|s| quoted(&s)),
    ]
    .boxed()
}

fn strings(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop::collection::vec(text(pool), 0..3).prop_map(|v| format!("[{}]", v.join(", "))).boxed()
}

/// A value of another type than the key's, to be refused by TOML's reader.
fn stray() -> BoxedStrategy<String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ]
    .boxed()
}

/// `key = value` for each key of a table: the required ones (`true`)
/// nearly always, the others half the time, now and then of another type.
fn table(keys: Vec<(&'static str, bool, BoxedStrategy<String>)>) -> BoxedStrategy<Vec<(&'static str, String)>> {
    let parts: Vec<_> = keys
        .into_iter()
        .map(|(k, required, v)| {
            let value = prop_oneof![30 => v, 1 => stray()].prop_map(move |v| (k, v));
            prop::option::weighted(if required { 0.99 } else { 0.5 }, value)
        })
        .collect();
    parts.prop_map(|p| p.into_iter().flatten().collect()).boxed()
}

fn size() -> BoxedStrategy<String> {
    prop_oneof![
        3 => text(&["32MiB", "1 GiB", "64KB", "0", "99999999999GiB", "lots"]),
        1 => prop_oneof![Just(0u64), 1..u64::from(u32::MAX), Just(u64::MAX)].prop_map(|n| n.to_string()),
    ]
    .boxed()
}

/// A whole manifest, and its top-level keys and tables.
fn manifest() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    const LONG: &str = "a-very-long-name-a-very-long-name-a-very-long-name-abcdefghijklm";
    let top = table(vec![
        ("name", true, text(&["hello", "a", "planner-2", "Hello World", "2x", LONG])),
        ("version", true, text(&["0.1.0", "1.0.0-rc.1+build.5", "2.3.4", "1.0", "one", "01.0.0"])),
        ("description", false, text(&["greets", "", "é"])),
        ("component", true, text(&["target/hello.wasm", "../x/./y.wasm", "/abs/a.wasm", "a/../../b.wasm", ".", ""])),
    ]);
    let build = table(vec![
        ("command", true, text(&["cargo build", "make", "", "  "])),
        ("workdir", false, text(&["", "..", "sub/./dir"])),
    ]);
    let fuel = prop_oneof![8 => 1..1_000_000i64, 1 => Just(0i64), 1 => Just(-1i64), 1 => Just(i64::MAX)];
    let limits = table(vec![
        ("fuel", false, fuel.prop_map(|n| n.to_string()).boxed()),
        ("memory", false, size()),
        ("timeout", false, text(&["5s", "250ms", "1h", "0s", "soon", "584942417356y"])),
    ]);
    const ROUTE: &str = "a-route-name-that-is-far-too-long-to-be-a-route-name-at-all-really";
    let capabilities = table(vec![
        ("routes", false, strings(&["fast", "smart", "", ROUTE])),
        ("agents", false, strings(&["helper", "planner", "x", "Helper", "2x", ""])),
        ("approvals", false, any::<bool>().prop_map(|b| b.to_string()).boxed()),
        ("dirs", false, strings(&["/data", "/", "data", ""])),
    ]);
    let board = table(vec![
        ("read", false, strings(&["", "tasks/", "a/", "bad\u{1}"])),
        ("write", false, strings(&["", "out/"])),
    ]);
    let sections = (
        top,
        prop::option::weighted(0.5, build),
        prop::option::weighted(0.5, limits),
        prop::option::weighted(0.5, capabilities),
        prop::option::weighted(0.3, board),
    );
    sections.prop_map(|(top, build, limits, capabilities, board)| {
        let mut text = String::new();
        let mut keys: Vec<&'static str> = Vec::new();
        for (k, v) in &top {
            text.push_str(&format!("{k} = {v}\n"));
            keys.push(k);
        }
        for (name, fields) in
            [("build", build), ("limits", limits), ("capabilities", capabilities), ("capabilities.blackboard", board)]
        {
            let Some(fields) = fields else { continue };
            text.push_str(&format!("[{name}]\n"));
            keys.push(name.split('.').next().unwrap_or(name));
            for (k, v) in fields {
                text.push_str(&format!("{k} = {v}\n"));
            }
        }
        (text, keys)
    })
}

/// Whether `path` is folded as `resolve` promises: no `.`, and no `..`
/// after a folder it could have removed.
fn folded(path: &Path) -> bool {
    let parts: Vec<Component> = path.components().collect();
    parts.len() == 1 && parts[0] == Component::CurDir
        || parts.iter().all(|c| *c != Component::CurDir)
            && parts.windows(2).all(|w| !(matches!(w[0], Component::Normal(_)) && w[1] == Component::ParentDir))
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn any_text_is_parsed_or_refused_naming_the_file(text in any::<String>()) {
        if let Err(err) = parse(&text) {
            prop_assert_eq!(err.file.as_path(), Path::new(FILE));
            prop_assert!(!err.message.trim().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn a_manifest_is_refused_naming_its_key_or_accepted_within_its_rules(
        (text, keys) in manifest(),
        key_bytes in prop_oneof![Just(0u64), 1..16u64, Just(512u64)],
    ) {
        match parse(&text) {
            Err(err) => {
                prop_assert_eq!(err.file.as_path(), Path::new(FILE));
                let message = err.message.as_str();
                prop_assert!(!message.trim().is_empty());
                if !message.starts_with("TOML parse error") {
                    let key = message.split(['.', '[', ':', ' ']).next().unwrap_or_default();
                    prop_assert!(keys.contains(&key), "`{}` names no key of:\n{}", message, text);
                }
            }
            Ok(m) => {
                prop_assert!(paddock_core::names::validate_agent(&m.name).is_ok());
                prop_assert!(m.limits.fuel != Some(0) && m.limits.memory != Some(0));
                prop_assert!(m.limits.timeout.is_none_or(|t| !t.is_zero()));
                prop_assert!(m.capabilities.routes.iter().all(|r| (1..=64).contains(&r.len())));
                prop_assert!(m.capabilities.dirs.iter().all(|d| d.starts_with('/')));
                prop_assert!(folded(&m.component), "{}", m.component.display());
                prop_assert!(m.build.as_ref().is_none_or(|b| folded(&b.workdir) && !b.command.trim().is_empty()));
                if let Err(err) = m.check_key_prefixes(key_bytes) {
                    prop_assert!(err.message.starts_with("capabilities.blackboard."), "{}", err.message);
                }
            }
        }
    }
}
