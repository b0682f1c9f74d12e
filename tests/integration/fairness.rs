//! Fair CPU scheduling: one tenant's busy agents do not starve another's.

use crate::util::*;
use paddock::config::Requested;
use paddock::runtime::RunOptions;
use paddock_test_guests::guests;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The work of one of tenant A's jobs: `spin` stopped by its fuel, about
/// 45 ms of one core. Tenant B's job is twice that.
const A_FUEL: u64 = 2_000_000_000;

/// `spin` for `tenant`, stopped after `fuel`.
fn spin_for(tenant: &str, fuel: u64) -> RunOptions {
    RunOptions {
        tenant: Some(tenant.into()),
        overrides: Requested { fuel: Some(fuel), ..Requested::default() },
        ..RunOptions::default()
    }
}

// Left to tokio, 17 busy guests would share two workers evenly and B, with
// the most work, would finish last. With two slots shared between tenants,
// B computes on one slot while A's jobs take turns on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_job_finishes_before_most_of_another_tenants_sixteen_busy_jobs() {
    // Both named, so each has its own instance slots (unnamed tenants share one set).
    let rt = runtime(
        "[engine]\nmax-instances = 32\ncpu-slots = 2\n[tenants.a]\nagents = [\"*\"]\n[tenants.b]\nagents = [\"*\"]\n",
    );
    let spin = rt.load(guests::SPIN).expect("spin loads");
    let a_done = Arc::new(AtomicUsize::new(0));
    let a_jobs: Vec<_> = (0..16)
        .map(|_| {
            let (rt, spin, a_done) = (rt.clone(), spin.clone(), a_done.clone());
            tokio::spawn(async move {
                let outcome = rt.run(&spin, "{}", &spin_for("a", A_FUEL)).await.expect("options are valid");
                a_done.fetch_add(1, Ordering::SeqCst);
                outcome
            })
        })
        .collect();
    // B runs on a worker too: the test's own thread is not one.
    let b = tokio::spawn(async move {
        let outcome = rt.run(&spin, "{}", &spin_for("b", 2 * A_FUEL)).await.expect("options are valid");
        (outcome, a_done.load(Ordering::SeqCst))
    });
    let (b, a_done_before_b) = b.await.expect("B's job does not panic");
    assert_eq!(error_text(&b), format!("agent \"spin\" ran out of fuel (limit {})", 2 * A_FUEL));
    for job in a_jobs {
        let outcome = job.await.expect("A's job does not panic");
        assert_eq!(error_text(&outcome), format!("agent \"spin\" ran out of fuel (limit {A_FUEL})"));
    }
    assert!(a_done_before_b < 8, "B finished after {a_done_before_b} of A's 16 jobs");
}

// A share of 60 M fuel a minute is 1 M a second. Each run burns 5 M (well under
// a tick, so only its settlement charges it): 5 s of share. After 13 runs the
// tenant owes over a minute, and the next run, whose timeout is 1 s, is
// refused at once naming the share.
#[tokio::test]
async fn a_tenant_over_its_fuel_share_is_held_back_even_with_invocations_shorter_than_a_tick() {
    let rt = runtime(
        "[engine]\nmax-instances = 32\n[tenants.a]\nagents = [\"*\"]\nbudget = { fuel-per-minute = 60_000_000 }\n[tenants.b]\nagents = [\"*\"]\n",
    );
    let spin = rt.load(guests::SPIN).expect("spin loads");
    let short = |tenant: &str| RunOptions {
        overrides: Requested {
            timeout: Some(std::time::Duration::from_secs(1)),
            ..spin_for(tenant, 5_000_000).overrides
        },
        ..spin_for(tenant, 5_000_000)
    };
    let mut admitted = 0;
    let refusal = loop {
        let outcome = rt.run(&spin, "{}", &short("a")).await.unwrap();
        match outcome.result {
            Err(paddock::sandbox::InvokeError::Start { reason, .. }) => break reason,
            _ => admitted += 1,
        }
        assert!(admitted < 20, "the share never held");
    };
    assert_eq!(admitted, 13);
    assert!(
        refusal.starts_with("tenant \"a\" is over its fuel share (tenants.a.budget.fuel-per-minute = 60000000) for "),
        "{refusal}"
    );
    let other = rt.run(&spin, "{}", &short("b")).await.unwrap();
    assert!(is_limit(&other), "another tenant is not held back: {:?}", other.result);
}

// A flow's own step waits for a slot under its tenant's `max-concurrent` as
// long as it takes (`flows::steps_past_the_tenants_max_concurrent_wait...`).
// An item claimed from the queue every host shares runs on a worker every
// tenant's items need, so it waits only up to its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_claimed_from_the_shared_queue_waits_for_its_tenants_slot_only_up_to_its_timeout() {
    use paddock::flow::postgres::PostgresStore;
    use paddock::flow::{Flow, Flows, RunStatus, Start};
    let Some(pg) = paddock_postgres::testing::database("fair_claimed") else { return };
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "waiter", guests::FLOW_STEP, "");
    let rt =
        runtime_with_plugins(dir.path(), "[tenants.default]\nagents = [\"waiter\"]\nbudget = { max-concurrent = 1 }\n");
    let store = Arc::new(PostgresStore::open(pg).unwrap());
    // No worker here: the run's holder claims its own published items, as `paddock flow run` does.
    let flows = Flows::new(rt.clone(), store.clone()).with_work_queue(store);
    // The tenant's one slot, held for 3 s by a direct invocation.
    let agent = rt.load("waiter").unwrap();
    let holder = {
        let (rt, agent) = (rt.clone(), agent.clone());
        tokio::spawn(async move {
            let input = r#"{"name": "holder", "wait_ms": 3000, "output": "held"}"#;
            rt.run(&agent, input, &RunOptions { tenant: Some("default".into()), ..RunOptions::default() }).await
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.metrics().in_flight_total() < 1 {
        assert!(std::time::Instant::now() < deadline, "the holder never started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let spec = "[flow]\nname = \"fan\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input\"\ndo = \"item\"\n\
                [steps.item]\nagent = \"waiter\"\ntimeout = \"300ms\"\ninput = { name = \"{{item}}\", output = \"done\" }\n";
    let flow = Flow::parse(spec, "fan.toml").unwrap();
    let started = std::time::Instant::now();
    let report = flows.start(flow, "fan.toml", serde_json::json!(["a"]), Start::default()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.status, RunStatus::Failed);
    assert_eq!(
        report.error.as_deref(),
        Some(
            "main[0]/item: tenant \"default\" is at its max-concurrent of 1 running invocations \
             (tenants.default.budget.max-concurrent = 1); none ended within 300ms"
        )
    );
    assert!(took < std::time::Duration::from_millis(2500), "it gave up before the slot came free: {took:?}");
    assert!(!holder.is_finished(), "the slot was still held");
    assert!(holder.await.unwrap().unwrap().result.is_ok(), "the holder ran to its end");
}
