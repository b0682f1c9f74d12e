//! What only the store shared by hosts does: ring every host's bells, and
//! keep runs' events for any host to stream.

use super::PostgresStore;
use crate::hub::KEEP_EVENTS;
use crate::lease::lost;
use crate::store::*;
use crate::testing::{H, question, run};
use std::time::Duration;

/// Two hosts' stores on one fresh database.
fn two_hosts(name: &str) -> Option<(PostgresStore, PostgresStore)> {
    let pg = paddock_postgres::testing::database(name)?;
    Some((PostgresStore::open(pg.clone()).unwrap(), PostgresStore::open(pg).unwrap()))
}

/// Whether `bell` rings within `wait` of `write`.
async fn rings(bell: &crate::bells::Bell, wait: Duration, write: impl FnOnce()) -> bool {
    let next = bell.next();
    write();
    tokio::time::timeout(wait, next).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_a_cancel_and_events_written_through_one_host_ring_the_bells_of_another() {
    let Some((a, b)) = two_hosts("flow_bells") else { return };
    let bells = a.bells().unwrap();
    b.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    // Host A's listening connection opens on its own time: asked until it hears.
    let cancel = bells.bell("cancel r".into());
    let mut heard = false;
    for _ in 0..50 {
        if rings(&cancel, Duration::from_millis(200), || b.request_cancel("r", "ops").unwrap()).await {
            heard = true;
            break;
        }
    }
    assert!(heard, "host A hears host B's cancel request");
    assert_eq!(a.cancel_request("r").unwrap().as_deref(), Some("ops"));

    b.add_approval(&question("ap-1", "t", "Ship?", 1)).unwrap();
    let answer = bells.bell("answer ap-1".into());
    let other = bells.bell("answer ap-2".into());
    let next_other = other.next();
    let answered = rings(&answer, Duration::from_secs(5), || drop(b.answer("ap-1", "yes", "eve", 2).unwrap())).await;
    assert!(answered, "host A's waiter on ap-1 is rung");
    assert!(tokio::time::timeout(Duration::from_millis(100), next_other).await.is_err(), "ap-2 is not rung");

    let events = bells.bell("events r".into());
    let added = rings(&events, Duration::from_secs(5), || b.add_events("r", H, &["{}".into()]).unwrap()).await;
    assert!(added, "host A's follower of run r is rung");
    // A refused answer rings no one.
    let refused = rings(&answer, Duration::from_millis(300), || drop(b.answer("ap-1", "no", "mallory", 3))).await;
    assert!(!refused, "an answer refused (already answered) rings no bell");
}

#[test]
fn a_runs_events_are_numbered_on_from_the_last_whichever_host_adds_them_and_only_its_holder_adds_them() {
    let Some((a, b)) = two_hosts("flow_events") else { return };
    a.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    let before = a.tenant_bytes("t").unwrap();
    let texts = |from: usize, to: usize| (from..to).map(|n| format!("e{n}")).collect::<Vec<_>>();
    a.add_events("r", H, &texts(0, 3)).unwrap();
    b.add_events("r", H, &texts(3, 5)).unwrap();
    let numbered = |from: u64, to: u64| (from..to).map(|n| (n, format!("e{n}"))).collect::<Vec<_>>();
    assert_eq!(b.events("r", 0, 100).unwrap(), numbered(0, 5));
    assert_eq!(a.events("r", 3, 1).unwrap(), numbered(3, 4));
    assert_eq!(a.tenant_bytes("t").unwrap(), before + 10, "five events of 2 bytes are counted");

    // Another holder's events are refused, and nothing is added.
    assert_eq!(b.add_events("r", "h2", &texts(5, 6)), Err(lost("r", "h2", H)));
    assert_eq!(a.events("r", 5, 100).unwrap(), []);

    // A run keeps its last events; those it drops are no longer counted.
    let many: Vec<String> = (0..KEEP_EVENTS).map(|n| format!("{n:>6}")).collect();
    a.add_events("r", H, &many).unwrap();
    let kept = a.events("r", 0, 2).unwrap();
    assert_eq!(kept, [(5, format!("{:>6}", 0)), (6, format!("{:>6}", 1))], "the five oldest are dropped");
    assert_eq!(a.tenant_bytes("t").unwrap(), before + 6 * KEEP_EVENTS as u64);

    // Forgetting the run forgets its events.
    let mut done = run("r", "t", 1, RunStatus::Succeeded);
    done.updated_ms = 2;
    a.put_run(&done).unwrap();
    let cut = Cutoffs { runs_before_ms: 10, runs_per_tenant: 100, approvals_before_ms: 0, dead_before_ms: 0 };
    assert_eq!(a.prune(&cut).unwrap().runs, 1);
    assert_eq!((a.events("r", 0, 10).unwrap(), a.tenant_bytes("t").unwrap()), (vec![], 0));
}

#[test]
fn events_past_the_run_bound_are_refused_naming_the_bound_and_the_run_keeps_what_it_had() {
    let Some(pg) = paddock_postgres::testing::database("flow_event_bounds") else { return };
    let bounds = FlowBounds { run_bytes: 2_048, ..FlowBounds::default() };
    let store = PostgresStore::open(pg).unwrap().with_bounds(bounds);
    store.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    let kept = store.tenant_bytes("t").unwrap();
    let refused = store.add_events("r", H, &["x".repeat(2_048)]).unwrap_err();
    assert!(
        refused.starts_with("flow store: the run's events (2 KiB) would take run r to ")
            && refused.ends_with("past limits.max-run-bytes (2 KiB)"),
        "{refused}"
    );
    assert_eq!((store.events("r", 0, 10).unwrap(), store.tenant_bytes("t").unwrap()), (vec![], kept));
    store.add_events("r", H, &["fits".into()]).unwrap();
    assert_eq!(store.events("r", 0, 10).unwrap(), [(0, "fits".to_string())], "numbering starts where it was refused");
}
