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

/// Item `n` of fan-out `main` of run `r`.
fn item(n: usize) -> crate::work::WorkItem {
    crate::work::WorkItem {
        run: "r".into(),
        path: format!("main[{n}]/each"),
        group: "main".into(),
        step: "each".into(),
        input: format!("{n}"),
        item: Some(format!("[{n}, {n}]")),
        policy: "fail".into(),
        checkpoint: None,
        seq: n as u64,
    }
}

fn paths(items: &[crate::work::WorkItem]) -> Vec<&str> {
    items.iter().map(|i| i.path.as_str()).collect()
}

#[test]
fn hosts_claim_a_fan_outs_items_in_order_never_more_at_once_than_its_bound() {
    use crate::work::{WorkEnd, WorkQueue};
    let Some((a, b)) = two_hosts("flow_work_bound") else { return };
    a.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    a.publish("r", "main", 3, &(0..5).map(item).collect::<Vec<_>>()).unwrap();
    let first = a.claim_items("ha", 10, 2, None, &[]).unwrap();
    assert_eq!(paths(&first), ["main[0]/each", "main[1]/each"]);
    assert_eq!((first[0].input.as_str(), first[0].item.as_deref(), first[0].seq), ("0", Some("[0, 0]"), 0));
    let second = b.claim_items("hb", 10, 5, None, &[]).unwrap();
    assert_eq!(paths(&second), ["main[2]/each"], "the bound of 3 leaves room for one");
    assert_eq!(b.claim_items("hb", 10, 5, None, &[]).unwrap(), []);
    // Publishing again keeps what is claimed.
    a.publish("r", "main", 3, &(0..5).map(item).collect::<Vec<_>>()).unwrap();
    assert_eq!(b.claim_items("hb", 10, 5, None, &[]).unwrap(), []);

    // Only its holder ends an item; an end makes room, and the holder collects it once.
    assert!(!b.end_item("r", "main[0]/each", "hb", &WorkEnd::Settled).unwrap(), "not hb's");
    assert!(a.end_item("r", "main[0]/each", "ha", &WorkEnd::Settled).unwrap());
    let failed = WorkEnd::Failed { message: "boom".into(), leaf: None };
    assert!(b.end_item("r", "main[2]/each", "hb", &failed).unwrap());
    assert_eq!(paths(&b.claim_items("hb", 10, 5, None, &[]).unwrap()), ["main[3]/each", "main[4]/each"]);
    let mut ended = a.take_ended("r", "main").unwrap();
    ended.sort_by(|x, y| x.0.cmp(&y.0));
    let expected =
        vec![("main[0]/each".to_string(), WorkEnd::Settled, None), ("main[2]/each".to_string(), failed, None)];
    assert_eq!(ended, expected);
    assert_eq!(a.take_ended("r", "main").unwrap(), [], "taken once");
    assert_eq!(a.claim_items("ha", 10, 5, None, &["r".to_string()]).unwrap(), [], "a run skipped is not claimed");
}

#[test]
fn an_item_whose_claim_ran_out_goes_to_another_host_and_its_old_holder_can_no_longer_write_the_run() {
    use crate::work::{ITEM_LEASE, WorkEnd, WorkQueue};
    let Some((a, b)) = two_hosts("flow_work_lease") else { return };
    a.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    a.publish("r", "main", 8, &[item(0)]).unwrap();
    assert_eq!(paths(&b.claim_items("hb", 1_000, 1, None, &[]).unwrap()), ["main[0]/each"]);
    // Its holder (not the run's) may write the run's checkpoints while it holds the item.
    b.put_step("r", "hb", &crate::testing::step("main[0]/each", "1")).unwrap();
    assert!(b.renew_item("r", "main[0]/each", "hb", 2_000).unwrap());
    let expired = 2_000 + ITEM_LEASE.as_millis() as u64;
    assert_eq!(a.claim_items("hc", expired - 1, 1, None, &[]).unwrap(), [], "not before its claim ran out");
    let again = a.claim_items("hc", expired, 1, None, &[]).unwrap();
    assert_eq!(paths(&again), ["main[0]/each"]);
    assert_eq!(again[0].checkpoint.as_ref().map(|c| c.output.as_deref()), Some(Some("1")), "with its checkpoint");
    assert!(!b.renew_item("r", "main[0]/each", "hb", expired).unwrap());
    assert!(!b.end_item("r", "main[0]/each", "hb", &WorkEnd::Settled).unwrap());
    assert_eq!(b.put_step("r", "hb", &crate::testing::step("main[0]/each", "2")), Err(lost("r", "hb", H)));
    // Withdrawn, it is gone: its claim cannot be renewed or ended.
    a.withdraw("r", "main").unwrap();
    assert!(!a.renew_item("r", "main[0]/each", "hc", expired).unwrap());
    assert!(!a.end_item("r", "main[0]/each", "hc", &WorkEnd::Settled).unwrap());
    assert_eq!(a.claim_items("hc", u64::MAX / 2, 8, None, &[]).unwrap(), []);
}

#[test]
fn writes_counting_one_shared_bound_never_deadlock_whichever_rows_they_start_from() {
    let Some(pg) = paddock_postgres::testing::database("flow_lock_order") else { return };
    let bounds = FlowBounds { shared: true, ..FlowBounds::default() };
    let store = std::sync::Arc::new(PostgresStore::open(pg).unwrap().with_bounds(bounds));
    store.add_run(&run("r", "t", 1, RunStatus::Running)).unwrap();
    // A dead letter locks the counted rows first; a checkpoint locks its run's row first.
    let letters = {
        let store = store.clone();
        std::thread::spawn(move || {
            (0..300).map(|n| store.put_dead(&crate::testing::dead(&format!("d{}", n % 7), "t", n))).collect::<Vec<_>>()
        })
    };
    let steps: Vec<_> =
        (0..300).map(|n| store.put_step("r", H, &crate::testing::step(&format!("s{}", n % 7), "1"))).collect();
    let letters = letters.join().unwrap();
    let failed: Vec<&String> = steps.iter().chain(&letters).filter_map(|r| r.as_ref().err()).collect();
    assert!(failed.is_empty(), "{} writes failed, first: {:?}", failed.len(), failed.first());
}
