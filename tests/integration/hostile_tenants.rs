//! A tenant flooding a real `paddock serve` with sleeping invocations takes
//! at most its share of the instance slots; another tenant's run is
//! admitted at once meanwhile. A caller naming ever new tenants on a host
//! whose config names none gets no more of it than one tenant would.

use crate::util::{Served, key, plugin, serve};
use paddock_test_guests::guests;
use std::time::{Duration, Instant};

async fn run(served: &Served, token: &str, input: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/agents/step/run", served.address))
        .bearer_auth(token)
        .body(input.to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_sleeping_runs_takes_half_the_instance_slots_and_another_tenant_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ncode-cache = {cache:?}\n[engine]\nmax-instances = 8\n\
         [tenants.acme]\nagents = [\"step\"]\n[tenants.mallory]\nagents = [\"step\"]\n"
    );
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let (mallory, acme) = (key(dir.path(), "mallory", "run"), key(dir.path(), "acme", "run"));
    paddock::gateway::install_crypto();
    let served = serve(dir.path(), &[]);
    // Warm: the agent is loaded before the flood.
    assert_eq!(run(&served, &acme, r#"{"name": "warm"}"#).await.0, 200);

    // Twelve runs sleeping 1.5 s each; those past the share queue for a slot.
    let flood_started = Instant::now();
    let flood: Vec<_> = (0..12)
        .map(|i| {
            let (served, token) = (&served, &mallory);
            async move {
                let input = format!(r#"{{"name": "sleep-{i}", "wait_ms": 1500}}"#);
                run(served, token, &input).await
            }
        })
        .collect();
    let flooding = async {
        let answers = futures_util::future::join_all(flood).await;
        (answers, flood_started.elapsed())
    };
    let acme_run = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        let answer = run(&served, &acme, r#"{"name": "meanwhile"}"#).await;
        (answer, asked.elapsed())
    };
    let ((floods, flood_took), ((status, body), took)) = tokio::join!(flooding, acme_run);
    assert_eq!(status, 200, "acme is admitted while mallory floods: {body}");
    assert!(took < Duration::from_secs(2), "acme waited {took:?} for a slot");
    assert!(floods.iter().all(|(status, _)| *status == 200), "every queued run ran: {floods:?}");
    // Mallory held at most 4 of the 8 slots at once: three waves of 1.5 s.
    assert!(flood_took >= Duration::from_millis(4400), "mallory's 12 runs took only {flood_took:?}");
}

/// A request of `tenant` on a development host (`serve.auth = "none"`).
async fn as_tenant(request: reqwest::RequestBuilder, tenant: &str) -> (u16, serde_json::Value) {
    let response = request.header("x-paddock-tenant", tenant).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_not_named_in_config_share_one_set_of_bounds_however_many_names_a_caller_uses() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\ncode-cache = {cache:?}\n[engine]\nmax-instances = 4\n\
         [blackboard]\nmax-bytes = \"1KiB\"\n[serve]\nauth = \"none\"\nrequests-per-tenant = 30\n"
    );
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    paddock::gateway::install_crypto();
    let served = serve(dir.path(), &[]);
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", served.address);

    // Requests: 30 a second for all of them, not for each name.
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..60 {
        answers.push(as_tenant(client.get(url("/v1/board")), &format!("r{i}")).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let served_ok = answers.iter().filter(|(status, _)| *status == 200).count();
    let refill = (elapsed * 30.0).ceil() as usize + 1;
    assert!((30..=30 + refill).contains(&served_ok), "{served_ok} of 60 answered in {elapsed:.2} s");
    let (_, refused) = answers.iter().find(|(status, _)| *status == 429).expect("a request refused for the rate");
    let name = refused["error"]["message"].as_str().unwrap().split(' ').nth(1).unwrap().to_string();
    assert_eq!(
        refused["error"]["message"],
        format!(
            "tenant {name} is over serve.requests-per-tenant (30 a second), which every tenant not named in [tenants] share"
        )
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // The board: one 1 KiB quota for all of them.
    let put = |tenant: &'static str| as_tenant(client.put(url("/v1/board/keys/k")).body("v".repeat(300)), tenant);
    for tenant in ["b0", "b1", "b2"] {
        assert_eq!(put(tenant).await.0, 200, "{tenant}'s 301 bytes fit");
    }
    let (status, body) = put("b3").await;
    assert_eq!((status, body["error"]["kind"].as_str()), (507, Some("quota-exceeded")), "{body}");
    assert_eq!(
        body["error"]["message"],
        "quota exceeded: tenant \"b3\" and every other tenant not named in [tenants] together would hold 1204 bytes, over the limit of 1024 (blackboard.max-bytes)"
    );
    let (status, _) = as_tenant(client.delete(url("/v1/board/keys/k")), "b0").await;
    assert_eq!(status, 200);
    assert_eq!(put("b3").await.0, 200, "what b0 freed is room for b3");

    // Instance slots: the two of half of max-instances, for all of them
    // (the agent loaded first, so the sleepers take their slots at once).
    let warm = as_tenant(client.post(url("/v1/agents/step/run")).body(r#"{"name": "warm"}"#), "w").await;
    assert_eq!(warm.0, 200, "{}", warm.1);
    let sleeper = |tenant: String| {
        let request = client.post(url("/v1/agents/step/run")).body(r#"{"name": "s", "wait_ms": 1500}"#);
        async move { as_tenant(request, &tenant).await }
    };
    let third = async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let asked = Instant::now();
        let answer = as_tenant(client.post(url("/v1/agents/step/run")).body(r#"{"name": "t"}"#), "s2").await;
        (answer, asked.elapsed())
    };
    let (first, second, ((status, body), waited)) = tokio::join!(sleeper("s0".into()), sleeper("s1".into()), third);
    assert_eq!((first.0, second.0, status), (200, 200, 200), "{body}");
    assert!(waited >= Duration::from_millis(900), "s2 ran after {waited:?}, beside s0 and s1 at a shared cap of 2");
}
