//! One suite of behaviour every backend must show, instantiated per backend,
//! on a clock the tests move by hand.

use super::*;
use paddock_core::ManualClock;
use std::sync::Arc;
use std::time::Duration;

/// Where the test clock starts, in milliseconds since the Unix epoch.
const START_MS: u64 = 1_750_000_000_000;

pub(crate) fn writer() -> Writer {
    Writer::new("tester", "run-1")
}

/// A clock standing at [`START_MS`] until a test advances it.
pub(crate) fn test_clock() -> Arc<ManualClock> {
    ManualClock::starting_at(from_unix_millis(START_MS))
}

/// A board on a test clock, and what must live as long as it.
struct Fixture {
    board: Blackboard,
    clock: Arc<ManualClock>,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new((board, dir): (Blackboard, Option<tempfile::TempDir>)) -> Self {
        let clock = test_clock();
        Fixture { board: board.with_clock(clock.clone()), clock, _dir: dir }
    }

    fn ns(&self, tenant: &str) -> Arc<Namespace> {
        self.board.namespace(tenant)
    }

    fn sweep(&self) -> usize {
        self.board.sweep_expired(self.board.now())
    }
}

fn names(keys: Vec<Arc<str>>) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

/// (revision, key, value, writer agent, writer run) of a change.
pub(crate) type Seen = (u64, String, Option<Vec<u8>>, String, String);

pub(crate) fn summary(changes: &[Change]) -> Vec<Seen> {
    changes
        .iter()
        .map(|c| {
            (
                c.revision,
                c.key.to_string(),
                c.value.as_deref().map(<[u8]>::to_vec),
                c.writer.agent.to_string(),
                c.writer.run.to_string(),
            )
        })
        .collect()
}

/// The change the host records when it removes the expired `key` at `revision`.
pub(crate) fn expiry(revision: u64, key: &str) -> Seen {
    (revision, key.to_string(), None, "paddock".to_string(), "ttl".to_string())
}

pub(crate) const MS: Duration = Duration::from_millis(1);

macro_rules! suite {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;

            /// `None` when the backend's server is missing outside CI (said why).
            fn fixture(limits: BoardLimits) -> Option<Fixture> {
                $make(limits).map(Fixture::new)
            }

            #[test]
            fn revisions_increase_by_one_per_write_and_record_writer_run_and_time() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(ns.put("a", b"1", &writer()), Ok(1));
                assert_eq!(ns.put("b", b"2", &writer()), Ok(2));
                f.clock.advance(5 * MS);
                assert_eq!(ns.put("a", b"3", &Writer::new("other", "run-2")), Ok(3));
                let e = ns.get("a").unwrap().unwrap();
                assert_eq!(
                    e,
                    Entry {
                        value: Arc::from(&b"3"[..]),
                        revision: 3,
                        writer: Writer::new("other", "run-2"),
                        written_at: from_unix_millis(START_MS + 5),
                        expires_at: None,
                    }
                );
                assert_eq!(ns.revision(), Ok(3));
            }

            #[test]
            fn compare_and_swap_refuses_a_stale_revision_with_the_current_one() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(ns.compare_and_swap("k", 0, b"x", &writer()), Ok(1));
                assert_eq!(ns.compare_and_swap("k", 0, b"y", &writer()), Err(BoardError::Conflict { current: 1 }));
                assert_eq!(ns.compare_and_swap("k", 1, b"y", &writer()), Ok(2));
                assert_eq!(ns.compare_and_swap("absent", 5, b"y", &writer()), Err(BoardError::Conflict { current: 0 }));
            }

            #[test]
            fn tenants_never_see_each_others_keys() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                f.ns("a").put("secret", b"1", &writer()).unwrap();
                let b = f.ns("b");
                for key in ["secret", "../a/secret", "/secret", "a/secret", "a:secret", "secret\u{200b}"] {
                    assert_eq!(b.get(key), Ok(None), "{key}");
                }
                assert!(b.list("", 10).unwrap().is_empty());
                assert!(b.changes_after("", 0).unwrap().is_empty());
                assert_eq!(b.put("secret", b"2", &writer()), Ok(1), "revisions are per tenant");
                assert_eq!(&*f.ns("a").get("secret").unwrap().unwrap().value, b"1");
            }

            #[test]
            fn keys_with_control_characters_or_over_the_limit_are_invalid() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(
                    ns.put("a\0b", b"", &writer()),
                    Err(BoardError::InvalidKey("a key must not contain control characters (found '\\0')".into()))
                );
                let long = "k".repeat(513);
                assert_eq!(
                    ns.get(&long),
                    Err(BoardError::InvalidKey("a key of 513 bytes is over the limit of 512 bytes".into()))
                );
                assert_eq!(ns.get(""), Err(BoardError::InvalidKey("a key must not be empty".into())));
            }

            #[test]
            fn value_over_the_limit_is_too_large_and_nothing_is_written() {
                let Some(f) = fixture(BoardLimits { value_bytes: 4, ..Default::default() }) else { return };
                let ns = f.ns("t");
                assert_eq!(ns.put("k", b"12345", &writer()), Err(BoardError::TooLarge { size: 5, limit: 4 }));
                assert_eq!(ns.revision(), Ok(0));
            }

            #[test]
            fn key_count_quota_names_tenant_and_limit_and_deletes_free_room() {
                let Some(f) = fixture(BoardLimits { max_keys: 1, ..Default::default() }) else { return };
                let ns = f.ns("acme");
                ns.put("a", b"", &writer()).unwrap();
                ns.put("a", b"again", &writer()).unwrap();
                assert_eq!(
                    ns.put("b", b"", &writer()),
                    Err(BoardError::QuotaExceeded(
                        "tenant \"acme\" holds 1 keys, the limit (blackboard.max-keys)".into()
                    ))
                );
                assert_eq!(ns.delete("a", &writer()), Ok(true));
                assert_eq!(ns.put("b", b"", &writer()), Ok(4));
            }

            #[test]
            fn byte_quota_counts_keys_and_values() {
                let Some(f) = fixture(BoardLimits { max_bytes: 10, ..Default::default() }) else { return };
                let ns = f.ns("acme");
                assert_eq!(ns.put("k", b"123456789", &writer()), Ok(1));
                assert_eq!(
                    ns.put("k", b"1234567890", &writer()),
                    Err(BoardError::QuotaExceeded(
                        "tenant \"acme\" would hold 11 bytes, over the limit of 10 (blackboard.max-bytes)".into()
                    ))
                );
                assert_eq!(ns.put("k", b"1", &writer()), Ok(2), "shrinking is always allowed");
            }

            #[test]
            fn tenants_with_shared_limits_hold_one_quota_together_and_a_delete_frees_it_for_all() {
                let Some(f) = fixture(BoardLimits { max_bytes: 20, max_keys: 4, shared: true, ..Default::default() })
                else {
                    return;
                };
                let own = BoardLimits { max_bytes: 20, ..Default::default() };
                let board = f.board.with_tenant_limits([("named".to_string(), own)].into());
                let (m1, m2, named) = (board.namespace("m1"), board.namespace("m2"), board.namespace("named"));
                assert_eq!(named.put("n", b"1234", &writer()), Ok(1), "counted in the total of every tenant");
                assert_eq!(m1.put("a", b"123456789", &writer()), Ok(1));
                assert_eq!(m2.put("b", b"1234", &writer()), Ok(1));
                let refused = |what: &str| {
                    Err(BoardError::QuotaExceeded(format!(
                        "tenant \"m2\" and every other tenant not named in [tenants] together {what}"
                    )))
                };
                assert_eq!(
                    m2.put("c", b"", &writer()),
                    refused("would hold 21 bytes, over the limit of 20 (blackboard.max-bytes)")
                );
                assert_eq!(
                    named.put("n2", b"123456789", &writer()),
                    Ok(2),
                    "a tenant with its own limits is held to them only"
                );
                assert_eq!(m1.delete("a", &writer()), Ok(true));
                assert_eq!(named.delete("n2", &writer()), Ok(true));
                assert_eq!(m2.put("c", b"1", &writer()), Ok(2));
                assert_eq!(m1.put("e", b"", &writer()), Ok(3));
                assert_eq!(m2.put("f", b"", &writer()), refused("hold 4 keys, the limit (blackboard.max-keys)"));
            }

            #[test]
            fn list_returns_prefix_matches_in_byte_order_and_pages() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                for k in ["task/3", "task/2", "task/1", "tasks", "other"] {
                    ns.put(k, b"", &writer()).unwrap();
                }
                assert_eq!(names(ns.list("task/", 10).unwrap()), ["task/1", "task/2", "task/3"]);
                assert_eq!(names(ns.list_after("task/", None, 2).unwrap()), ["task/1", "task/2"]);
                assert_eq!(names(ns.list_after("task/", Some("task/2"), 2).unwrap()), ["task/3"]);
                assert_eq!(names(ns.list("", 10).unwrap()), ["other", "task/1", "task/2", "task/3", "tasks"]);
            }

            #[test]
            fn delete_reports_whether_the_key_existed_and_is_watched() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put("k", b"v", &writer()).unwrap();
                assert_eq!(ns.delete("k", &writer()), Ok(true));
                assert_eq!(ns.delete("k", &writer()), Ok(false));
                assert_eq!(ns.get("k"), Ok(None));
                assert_eq!(
                    summary(&ns.changes_after("", 1).unwrap()),
                    [(2, "k".into(), None, "tester".into(), "run-1".into())]
                );
            }

            #[test]
            fn changes_come_in_revision_order_with_values_and_writers() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                for i in 0..5u8 {
                    ns.put(&format!("k{}", i % 2), &[i], &Writer::new("tester", format!("run-{i}"))).unwrap();
                }
                assert_eq!(
                    summary(&ns.changes_after("k1", 0).unwrap()),
                    [
                        (2, "k1".into(), Some(vec![1]), "tester".into(), "run-1".into()),
                        (4, "k1".into(), Some(vec![3]), "tester".into(), "run-3".into())
                    ]
                );
            }

            #[tokio::test]
            async fn watch_wakes_on_a_later_write_under_its_prefix_only() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                let watcher = {
                    let ns = ns.clone();
                    tokio::spawn(async move { ns.watch("jobs/", 0, Duration::from_secs(5)).await })
                };
                tokio::task::yield_now().await;
                ns.put("other", b"x", &writer()).unwrap();
                ns.put("jobs/1", b"y", &writer()).unwrap();
                let changes = watcher.await.unwrap().unwrap();
                assert_eq!(changes.len(), 1);
                assert_eq!((&*changes[0].key, changes[0].revision), ("jobs/1", 2));
            }

            #[tokio::test]
            async fn watch_times_out_empty() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                assert_eq!(f.ns("t").watch("", 0, Duration::from_millis(20)).await, Ok(vec![]));
            }

            #[test]
            fn a_watcher_behind_the_kept_history_is_told_it_lagged() {
                let Some(f) = fixture(BoardLimits { history: 2, ..Default::default() }) else { return };
                let ns = f.ns("t");
                for i in 0..5 {
                    ns.put(&format!("k{i}"), b"", &writer()).unwrap();
                }
                assert_eq!(ns.changes_after("", 1), Err(BoardError::Lagged { after: 1, resume_after: 5 }));
                assert_eq!(ns.changes_after("", 3).unwrap().len(), 2);
                assert_eq!(ns.changes_after("", 5).unwrap().len(), 0);
            }

            #[test]
            fn history_is_kept_within_history_bytes_and_the_newest_change_always() {
                let Some(f) = fixture(BoardLimits { history_bytes: 300, ..Default::default() }) else { return };
                let ns = f.ns("t");
                for _ in 0..5 {
                    ns.put("k", &[7; 100], &writer()).unwrap();
                }
                // Two changes of a 100-byte value fit in 300 bytes, three do not.
                assert_eq!(ns.changes_after("", 2), Err(BoardError::Lagged { after: 2, resume_after: 5 }));
                assert_eq!(ns.changes_after("", 3).unwrap().len(), 2);
                ns.put("k", &[7; 1000], &writer()).unwrap();
                assert_eq!(ns.changes_after("", 4), Err(BoardError::Lagged { after: 4, resume_after: 6 }));
                assert_eq!(summary(&ns.changes_after("", 5).unwrap())[0].0, 6, "the newest is kept, alone");
            }

            #[test]
            fn a_watch_answer_is_cut_at_watch_max_bytes_and_goes_on_from_there() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                let value = vec![1u8; 1 << 20];
                for i in 0..6 {
                    ns.put(&format!("k{i}"), &value, &writer()).unwrap();
                }
                // 3 × (1 MiB + 2) fit in WATCH_MAX_BYTES (4 MiB), a fourth does not.
                let first = ns.changes_after("", 0).unwrap();
                assert_eq!(first.iter().map(|c| c.revision).collect::<Vec<_>>(), [1, 2, 3]);
                let rest = ns.changes_after("", 3).unwrap();
                assert_eq!(rest.iter().map(|c| c.revision).collect::<Vec<_>>(), [4, 5, 6]);
            }

            #[test]
            fn an_entry_reads_absent_and_unlisted_once_its_ttl_runs_out_and_a_get_removes_it() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(ns.put_expiring("lease", b"x", 10 * MS, &writer()), Ok(1));
                assert_eq!(ns.put("keep", b"y", &writer()), Ok(2));
                f.clock.advance(9 * MS);
                let live = ns.get("lease").unwrap().unwrap();
                assert_eq!(live.expires_at, Some(from_unix_millis(START_MS + 10)));
                assert_eq!(names(ns.list("", 10).unwrap()), ["keep", "lease"]);
                f.clock.advance(MS);
                assert_eq!(names(ns.list("", 10).unwrap()), ["keep"]);
                assert_eq!(ns.revision(), Ok(2), "listing leaves removal to others");
                assert_eq!(ns.lookup("lease"), Ok(Lookup::Expired { revision: 1 }));
                assert_eq!(ns.get("lease"), Ok(None));
                assert_eq!(summary(&ns.changes_after("", 2).unwrap()), [expiry(3, "lease")]);
            }

            #[test]
            fn a_reap_removes_only_the_revision_it_saw_and_only_once_expired() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("k", b"1", 5 * MS, &writer()).unwrap();
                ns.put_expiring("k", b"2", 5 * MS, &writer()).unwrap();
                assert!(!ns.reap_expired("k", 2), "not expired yet");
                f.clock.advance(5 * MS);
                assert!(!ns.reap_expired("k", 1), "a stale revision");
                assert!(ns.reap_expired("k", 2));
                assert!(!ns.reap_expired("k", 2), "already gone");
                assert_eq!(ns.revision(), Ok(3));
            }

            #[test]
            fn compare_and_swap_sees_an_expired_key_as_absent_and_keeps_its_removal() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("a", b"", 10 * MS, &writer()).unwrap();
                ns.put_expiring("b", b"", 10 * MS, &writer()).unwrap();
                f.clock.advance(10 * MS);
                assert_eq!(ns.compare_and_swap("a", 0, b"mine", &writer()), Ok(4));
                assert_eq!(ns.compare_and_swap("b", 2, b"mine", &writer()), Err(BoardError::Conflict { current: 0 }));
                assert_eq!(ns.revision(), Ok(5), "the refused swap still removed the expired entry");
                assert_eq!(
                    summary(&ns.changes_after("", 2).unwrap()),
                    [
                        expiry(3, "a"),
                        (4, "a".into(), Some(b"mine".to_vec()), "tester".into(), "run-1".into()),
                        expiry(5, "b")
                    ]
                );
                assert_eq!(ns.get("a").unwrap().unwrap().expires_at, None, "the swap set no ttl");
            }

            #[test]
            fn deleting_an_expired_key_returns_false_and_publishes_its_expiry() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("k", b"", 10 * MS, &writer()).unwrap();
                f.clock.advance(10 * MS);
                assert_eq!(ns.delete("k", &writer()), Ok(false));
                assert_eq!(summary(&ns.changes_after("", 1).unwrap()), [expiry(2, "k")]);
            }

            #[test]
            fn a_plain_put_clears_the_ttl_and_a_new_ttl_replaces_the_old() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("a", b"", 10 * MS, &writer()).unwrap();
                ns.put("a", b"kept", &writer()).unwrap();
                ns.put_expiring("b", b"", 10 * MS, &writer()).unwrap();
                ns.put_expiring("b", b"", 100 * MS, &writer()).unwrap();
                f.clock.advance(50 * MS);
                assert_eq!(f.sweep(), 0);
                assert_eq!(ns.get("a").unwrap().map(|e| (e.revision, e.expires_at)), Some((2, None)));
                assert_eq!(ns.get("b").unwrap().map(|e| e.expires_at), Some(Some(from_unix_millis(START_MS + 100))));
                f.clock.advance(50 * MS);
                assert_eq!(f.sweep(), 1);
                assert_eq!((ns.get("a").unwrap().is_some(), ns.get("b").unwrap()), (true, None));
            }

            #[test]
            fn a_compare_and_swap_can_renew_a_lease_before_it_lapses() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(ns.compare_and_swap_expiring("lease", 0, b"me", 10 * MS, &writer()), Ok(1));
                f.clock.advance(8 * MS);
                assert_eq!(ns.compare_and_swap_expiring("lease", 1, b"me", 10 * MS, &writer()), Ok(2));
                f.clock.advance(8 * MS);
                assert_eq!(f.sweep(), 0);
                assert_eq!(ns.get("lease").unwrap().map(|e| e.revision), Some(2));
            }

            #[test]
            fn sweeping_removes_expired_entries_of_every_tenant_soonest_first() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("c", b"", 30 * MS, &writer()).unwrap();
                ns.put_expiring("a", b"", 10 * MS, &writer()).unwrap();
                ns.put_expiring("b", b"", 20 * MS, &writer()).unwrap();
                ns.put("d", b"", &writer()).unwrap();
                f.ns("u").put_expiring("x", b"", 20 * MS, &writer()).unwrap();
                f.clock.advance(25 * MS);
                assert_eq!(f.sweep(), 3);
                assert_eq!(summary(&ns.changes_after("", 4).unwrap()), [expiry(5, "a"), expiry(6, "b")]);
                assert_eq!(summary(&f.ns("u").changes_after("", 1).unwrap()), [expiry(2, "x")]);
                assert_eq!(names(ns.list("", 10).unwrap()), ["c", "d"]);
                f.clock.advance(5 * MS);
                assert_eq!(f.sweep(), 1);
                assert_eq!(f.sweep(), 0);
                assert_eq!(names(ns.list("", 10).unwrap()), ["d"]);
            }

            #[test]
            fn an_expired_entry_gives_its_quota_back_when_removed() {
                let Some(f) = fixture(BoardLimits { max_keys: 1, ..Default::default() }) else { return };
                let (swept, written) = (f.ns("swept"), f.ns("written"));
                for ns in [&swept, &written] {
                    ns.put_expiring("a", b"", 10 * MS, &writer()).unwrap();
                    assert!(matches!(ns.put("b", b"", &writer()), Err(BoardError::QuotaExceeded(_))));
                }
                f.clock.advance(10 * MS);
                assert_eq!(swept.reap_expired("a", 1), true);
                assert_eq!(swept.put("b", b"", &writer()), Ok(3));
                // No sweep ran: the refused write removes the expired entry itself, then succeeds.
                assert_eq!(written.put("b", b"", &writer()), Ok(3));
                assert_eq!(summary(&written.changes_after("", 1).unwrap())[0], expiry(2, "a"));
            }

            #[test]
            fn a_ttl_of_zero_or_over_365_days_is_denied_naming_the_key() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                assert_eq!(
                    ns.put_expiring("k", b"", Duration::ZERO, &writer()).map_err(|e| e.to_string()),
                    Err("invalid ttl for key \"k\": it must be at least 1ms, not 0s".into())
                );
                assert_eq!(
                    ns.put_expiring("k", b"", Duration::from_micros(500), &writer()).map_err(|e| e.to_string()),
                    Err("invalid ttl for key \"k\": it must be at least 1ms, not 500us".into())
                );
                assert_eq!(
                    ns.compare_and_swap_expiring("k", 0, b"", MAX_TTL + MS, &writer()).map_err(|e| e.to_string()),
                    Err("invalid ttl for key \"k\": 31536000001 ms is over the limit of 31536000000 ms (365 days)"
                        .into())
                );
                assert_eq!(ns.revision(), Ok(0));
                assert_eq!(ns.put_expiring("k", b"", MAX_TTL, &writer()), Ok(1));
            }

            #[tokio::test]
            async fn a_watcher_is_woken_by_the_removal_of_an_expired_key() {
                let Some(f) = fixture(BoardLimits::default()) else { return };
                let ns = f.ns("t");
                ns.put_expiring("jobs/1", b"", 10 * MS, &writer()).unwrap();
                let watcher = {
                    let ns = ns.clone();
                    tokio::spawn(async move { ns.watch("jobs/", 1, Duration::from_secs(5)).await })
                };
                tokio::task::yield_now().await;
                f.clock.advance(10 * MS);
                assert_eq!(f.sweep(), 1);
                assert_eq!(summary(&watcher.await.unwrap().unwrap()), [expiry(2, "jobs/1")]);
            }
        }
    };
}

suite!(memory, |limits| Some((Blackboard::new(limits), None)));

suite!(redb, |limits| {
    let dir = tempfile::tempdir().unwrap();
    let backend = RedbBackend::open(&dir.path().join("board.redb")).unwrap();
    Some((Blackboard::with_backend(limits, Arc::new(backend)), Some(dir)))
});

suite!(sqlite, |limits| {
    let dir = tempfile::tempdir().unwrap();
    let backend = SqliteBackend::open(&dir.path().join("board.sqlite")).unwrap();
    Some((Blackboard::with_backend(limits, Arc::new(backend)), Some(dir)))
});

suite!(postgres, |limits| {
    let pg = paddock_postgres::testing::database("board")?;
    let backend = PostgresBackend::open(pg).unwrap();
    Some((Blackboard::with_backend(limits, Arc::new(backend)), None))
});

fn durable(path: &std::path::Path) -> Blackboard {
    Blackboard::with_backend(BoardLimits::default(), Arc::new(RedbBackend::open(path).unwrap()))
}

#[test]
fn a_board_file_of_record_format_1_is_upgraded_keeping_entries_and_history() {
    use ::redb::{Database, TableDefinition};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.redb");
    {
        // Format 1: revision, written-at, then one writer string; changes name the writer only.
        let text = |s: &str| [&(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat();
        let entry = [&1u64.to_le_bytes()[..], &START_MS.to_le_bytes(), &text("old-agent"), b"v"].concat();
        let change = [text("k"), text("old-agent"), vec![1], b"v".to_vec()].concat();
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut entries = txn.open_table(TableDefinition::<(&str, &str), &[u8]>::new("entries")).unwrap();
            entries.insert(("t", "k"), entry.as_slice()).unwrap();
            let mut history = txn.open_table(TableDefinition::<(&str, u64), &[u8]>::new("history")).unwrap();
            history.insert(("t", 1), change.as_slice()).unwrap();
            let mut totals = txn.open_table(TableDefinition::<&str, (u64, u64, u64)>::new("totals")).unwrap();
            totals.insert("t", (1, 1, 2)).unwrap();
        }
        txn.commit().unwrap();
    }
    let board = durable(&path);
    let ns = board.namespace("t");
    let old = Writer::new("old-agent", "");
    assert_eq!(
        ns.get("k").unwrap(),
        Some(Entry {
            value: Arc::from(&b"v"[..]),
            revision: 1,
            writer: old.clone(),
            written_at: from_unix_millis(START_MS),
            expires_at: None
        })
    );
    assert_eq!(
        summary(&ns.changes_after("", 0).unwrap()),
        [(1, "k".into(), Some(b"v".to_vec()), "old-agent".into(), "".into())]
    );
    assert_eq!(ns.put("k2", b"", &writer()), Ok(2));
    drop((ns, board));
    assert_eq!(durable(&path).namespace("t").get("k").unwrap().unwrap().writer, old, "upgraded once");
}

#[test]
fn opening_a_file_that_is_not_a_board_is_a_storage_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.redb");
    std::fs::write(&path, b"not a database at all, just some bytes that go on for a while").unwrap();
    match RedbBackend::open(&path) {
        Err(BoardError::Storage(why)) => assert!(why.starts_with(&path.display().to_string()), "{why}"),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("a junk file opened as a board"),
    }
}
