//! The blackboard through real guests: per-tenant, with no lost updates.

use crate::util::*;
use paddock::runtime::RunOptions;
use paddock_test_guests::guests;

fn tenant(name: &str) -> RunOptions {
    RunOptions { tenant: Some(name.into()), ..Default::default() }
}

#[tokio::test]
async fn tenants_never_see_each_others_writes() {
    let rt = runtime("");
    let a = output_json(&run_with(&rt, guests::ECHO, r#""from a""#, &tenant("a")).await);
    let b = output_json(&run_with(&rt, guests::ECHO, r#""from b""#, &tenant("b")).await);
    assert_eq!((a["input"].as_str(), a["revision"].as_u64()), (Some("\"from a\""), Some(1)));
    assert_eq!((b["input"].as_str(), b["revision"].as_u64()), (Some("\"from b\""), Some(1)));
    let board = rt.blackboard();
    assert_eq!(&*board.namespace("a").get("echo/last").unwrap().unwrap().value, b"\"from a\"");
    assert_eq!(&*board.namespace("b").get("echo/last").unwrap().unwrap().value, b"\"from b\"");
}

#[tokio::test]
async fn a_bad_tenant_name_is_refused() {
    let rt = runtime("");
    let agent = rt.load(guests::ECHO).unwrap();
    let err = rt.run(&agent, "{}", &tenant("../other")).await.unwrap_err();
    assert_eq!(err.to_string(), "tenant name `../other` must be 1 to 64 of a-z, 0-9, '-' and '_'");
}

#[tokio::test]
async fn concurrent_compare_and_swap_increments_lose_no_update() {
    let rt = runtime("");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move { output_json(&run(&rt, guests::HELLO, r#"{"name":"ada"}"#).await) }));
    }
    let mut seen: Vec<u64> = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap()["visits"].as_u64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=32).collect::<Vec<u64>>(), "each run saw a distinct count");
    let stored = rt.blackboard().namespace("default").get("visits/ada").unwrap().unwrap();
    assert_eq!(&*stored.value, b"32");
}

#[tokio::test]
async fn the_get_benchmark_guest_reads_what_it_wrote_each_time() {
    let rt = runtime("");
    let out = output_json(&run(&rt, guests::BENCH_GET, r#"{"n":100}"#).await);
    assert_eq!(out["found"], 100);
    assert!(out["nanos"].as_u64().unwrap() > 0);
}
