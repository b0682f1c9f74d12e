//! A tenant flooding a real `paddock serve` with sleeping invocations takes
//! at most its share of the instance slots; another tenant's run is
//! admitted at once meanwhile.

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
