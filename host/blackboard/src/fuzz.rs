//! Property tests of keys, prefixes and tenant scoping: no key makes the
//! board panic; a key is accepted exactly when it keeps the documented rule
//! (1 to `key_bytes` bytes, no control character; a prefix may be empty);
//! and no key, however written (`..`, NUL, look-alikes, another tenant's
//! name), reaches another tenant's entries — on both backends.

use crate::{Backend, Blackboard, BoardError, BoardLimits, MemoryBackend, RedbBackend, Writer};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestRunner;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Keys of every kind: any text, and the ones that try to escape a namespace.
fn key() -> impl Strategy<Value = String> {
    let tricky = select(
        &[
            "",
            "..",
            "../b/x",
            "/x",
            "b/x",
            "\0",
            "a\u{0}b",
            "tasks\n",
            "\u{7f}",
            "\u{85}",
            "ａ",
            "а",
            "\u{202e}x",
            "\u{feff}",
            "\u{200b}",
            "paddock.system/x",
            "*",
            "%2e%2e/x",
            "é",
        ][..],
    )
    .prop_map(String::from);
    prop_oneof![
        4 => any::<String>(),
        3 => tricky,
        1 => (select(&["x", "é", "🎉"][..]), 100..300usize).prop_map(|(s, n)| s.repeat(n)),
        1 => "[a-z./]{1,8}",
    ]
}

/// The rule a prefix keeps: at most `max` bytes and no control character.
fn prefix_rule(prefix: &str, max: u64) -> bool {
    prefix.len() as u64 <= max && !prefix.chars().any(char::is_control)
}

/// The rule a key keeps: a prefix's, and not empty.
fn key_rule(key: &str, max: u64) -> bool {
    !key.is_empty() && prefix_rule(key, max)
}

fn writer() -> Writer {
    Writer::new("fuzz", "run-1")
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn a_key_is_accepted_exactly_when_it_keeps_the_rule(
        key in key(),
        key_bytes in select(&[1u64, 8, 512][..]),
        ttl in prop::option::of(select(vec![Duration::ZERO, Duration::from_secs(60), Duration::from_secs(3600), Duration::MAX])),
    ) {
        let board = Blackboard::new(BoardLimits { key_bytes, ..BoardLimits::default() });
        let ns = board.namespace("acme");
        let written = match ttl {
            Some(ttl) => ns.put_expiring(&key, b"v", ttl, &writer()),
            None => ns.put(&key, b"v", &writer()),
        };
        match written {
            Err(BoardError::InvalidKey(why)) => {
                prop_assert!(!key_rule(&key, key_bytes) && !why.is_empty());
                prop_assert_eq!(ns.get(&key), Err(BoardError::InvalidKey(why)));
            }
            Err(BoardError::InvalidTtl { key: named, why }) => {
                prop_assert!(key_rule(&key, key_bytes) && !why.is_empty());
                prop_assert_eq!(&named, &key);
            }
            Err(other) => prop_assert!(false, "{:?} refused: {}", key, other),
            Ok(revision) => {
                prop_assert!(key_rule(&key, key_bytes));
                let entry = ns.get(&key).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(entry.map(|e| (e.revision, e.value.to_vec())), Some((revision, b"v".to_vec())));
                prop_assert_eq!(ns.list(&key, 10).map(|k| k.iter().any(|k| **k == *key)), Ok(true));
            }
        }
        let listed = ns.list(&key, 10);
        prop_assert_eq!(listed.is_ok(), prefix_rule(&key, key_bytes), "{:?}", listed);
        prop_assert_eq!(ns.changes_after(&key, 0).is_ok(), prefix_rule(&key, key_bytes));
    }
}

/// Writes `keys` in tenant `a` (with a ttl) and `b` (without), then checks
/// each sees its own keys only, before and after expired keys are swept.
fn tenants_stay_apart(board: &Blackboard, a: &str, b: &str, keys: &[String]) -> Result<(), TestCaseError> {
    let (na, nb) = (board.namespace(a), board.namespace(b));
    prop_assert_eq!(nb.revision(), Ok(0), "tenant {:?} starts empty", b);
    let mut own = BTreeSet::new();
    for k in keys {
        let wrote = na.put_expiring(k, b"a", Duration::from_secs(3600), &writer());
        prop_assert_eq!(wrote.is_ok(), key_rule(k, board.limits().key_bytes), "{:?}", wrote);
        if wrote.is_ok() {
            own.insert(k.clone());
        }
    }
    for k in keys {
        prop_assert_eq!(nb.get(k).ok().flatten(), None, "{:?} of {:?} is seen from {:?}", k, a, b);
    }
    prop_assert_eq!(nb.list("", 1000), Ok(Vec::new()));
    prop_assert_eq!(nb.changes_after("", 0), Ok(Vec::new()));
    for k in &own {
        prop_assert!(nb.put(k, b"b", &writer()).is_ok());
    }
    let listed = |ns: &crate::Namespace| -> BTreeSet<String> {
        ns.list("", 1000).unwrap_or_default().iter().map(|k| k.to_string()).collect()
    };
    prop_assert_eq!(listed(&na), own.clone());
    prop_assert_eq!(listed(&nb), own.clone());
    for k in &own {
        prop_assert_eq!(na.get(k).ok().flatten().map(|e| e.value.to_vec()), Some(b"a".to_vec()));
    }
    board.sweep_expired(board.now() + Duration::from_secs(7200));
    prop_assert_eq!(listed(&na), BTreeSet::new(), "{:?}'s keys expired", a);
    prop_assert_eq!(listed(&nb), own, "{:?}'s keys without a ttl stay", b);
    Ok(())
}

/// Two different tenant names (any text, each made unique to its case by
/// `case`) and keys to write in both.
fn two_tenants_and_keys() -> impl Strategy<Value = (String, String, Vec<String>)> {
    let tenant = prop_oneof![any::<String>(), select(&["", "a", "a\0", "a/", "b", ".."][..]).prop_map(String::from)];
    (tenant.clone(), tenant, prop::collection::vec(key(), 1..6)).prop_filter("two tenants", |(a, b, _)| a != b)
}

/// Runs the isolation property over `backend`, each case on tenants no
/// earlier case used.
fn isolation_over(backend: Arc<dyn Backend>, cases: u32) {
    let board = Blackboard::with_backend(BoardLimits { key_bytes: 64, ..BoardLimits::default() }, backend);
    let case = AtomicU64::new(0);
    let mut runner = TestRunner::new(proptest::test_runner::contextualize_config(config(cases)));
    let outcome = runner.run(&two_tenants_and_keys(), |(a, b, keys)| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        tenants_stay_apart(&board, &format!("{n}:{a}"), &format!("{n}:{b}"), &keys)
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn no_key_reaches_another_tenant_in_memory() {
    isolation_over(Arc::new(MemoryBackend::default()), 3000);
}

#[test]
fn no_key_reaches_another_tenant_in_the_durable_store() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let backend = RedbBackend::open(&dir.path().join("board.redb")).expect("a board file");
    isolation_over(Arc::new(backend), 300);
}
