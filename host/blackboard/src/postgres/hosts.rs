//! Several hosts on one database: each a board with its own pool and
//! listener, as separate `paddock serve` processes would have.

use crate::conformance::writer;
use crate::{Blackboard, BoardError, BoardLimits, PostgresBackend};
use std::sync::Arc;
use std::time::Duration;

fn hosts(name: &str, n: usize) -> Option<Vec<Blackboard>> {
    let url = paddock_postgres::testing::database_url(name)?;
    let host = |_| {
        let pg = paddock_postgres::Postgres::connect(&paddock_postgres::Settings::new(&url)).unwrap();
        Blackboard::with_backend(BoardLimits::default(), Arc::new(PostgresBackend::open(pg).unwrap()))
    };
    Some((0..n).map(host).collect())
}

/// Adds one to `key` by compare-and-swap, retrying on conflict; the attempts it took.
fn increment(board: &Blackboard, key: &str) -> u32 {
    let ns = board.namespace("t");
    for attempt in 1.. {
        let (now, revision) = match ns.get(key).unwrap() {
            Some(e) => (String::from_utf8_lossy(&e.value).parse::<u64>().unwrap(), e.revision),
            None => (0, 0),
        };
        match ns.compare_and_swap(key, revision, (now + 1).to_string().as_bytes(), &writer()) {
            Ok(_) => return attempt,
            Err(BoardError::Conflict { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    unreachable!()
}

#[test]
fn compare_and_swap_increments_racing_from_three_hosts_all_count_and_revisions_stay_consecutive() {
    let Some(hosts) = hosts("cas_hosts", 3) else { return };
    const PER_WORKER: usize = 50;
    const WORKERS: usize = 4;
    std::thread::scope(|s| {
        for host in &hosts {
            for _ in 0..WORKERS {
                s.spawn(|| (0..PER_WORKER).map(|_| increment(host, "counter")).sum::<u32>());
            }
        }
    });
    let total = 3 * WORKERS * PER_WORKER;
    let ns = hosts[1].namespace("t");
    let counter = ns.get("counter").unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&counter.value), total.to_string());
    assert_eq!(counter.revision, total as u64, "one revision per successful swap, none skipped");
    let changes = ns.changes_after("", 0).unwrap();
    let revisions: Vec<u64> = changes.iter().map(|c| c.revision).collect();
    assert_eq!(revisions, (1..=total as u64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_on_one_host_sees_every_write_of_two_others_in_revision_order_without_a_gap() {
    let Some(hosts) = hosts("watch_hosts", 3) else { return };
    let hosts: Vec<Arc<Blackboard>> = hosts.into_iter().map(Arc::new).collect();
    const WRITES: u64 = 100;
    let watcher = hosts[0].namespace("t");
    let writers: Vec<_> = hosts[1..]
        .iter()
        .enumerate()
        .map(|(h, host)| {
            let host = host.clone();
            tokio::task::spawn_blocking(move || {
                let ns = host.namespace("t");
                for i in 0..WRITES {
                    ns.put(&format!("jobs/{h}/{i}"), b"x", &writer()).unwrap();
                }
            })
        })
        .collect();
    let (mut seen, mut after) = (Vec::new(), 0);
    while after < 2 * WRITES {
        let changes = watcher.watch("jobs/", after, Duration::from_secs(10)).await.unwrap();
        assert!(!changes.is_empty(), "woken within 10 s after revision {after}");
        for change in changes {
            assert_eq!(change.revision, after + 1, "no gap after {after}");
            after = change.revision;
            seen.push(change.key.to_string());
        }
    }
    for w in writers {
        w.await.unwrap();
    }
    for h in 0..2 {
        let mine: Vec<&String> = seen.iter().filter(|k| k.starts_with(&format!("jobs/{h}/"))).collect();
        let expected: Vec<String> = (0..WRITES).map(|i| format!("jobs/{h}/{i}")).collect();
        assert_eq!(mine, expected.iter().collect::<Vec<_>>(), "host {h}'s writes, in its order");
    }
}

#[test]
fn a_database_schema_newer_than_this_build_is_refused() {
    let Some(pg) = paddock_postgres::testing::database("board_newer") else { return };
    PostgresBackend::open(pg.clone()).unwrap();
    pg.run(|c| async move {
        c.execute("UPDATE paddock_schema SET version = 99 WHERE store = 'blackboard'", &[])
            .await
            .map_err(|e| paddock_postgres::describe(&e))
    })
    .unwrap();
    let Err(BoardError::Storage(e)) = PostgresBackend::open(pg) else { panic!("opened a newer schema") };
    assert!(e.contains("the blackboard tables are at schema version 99, newer than the 1 this paddock knows"), "{e}");
}
