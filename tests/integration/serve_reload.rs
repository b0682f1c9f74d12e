//! `paddock.toml` re-read by a serving host (POST /v1/admin/reload, SIGHUP,
//! `paddock reload`) while clients keep invoking: routes and budgets switch
//! with no failed call, and a file that does not validate changes nothing.

use crate::util::*;
use paddock_fake_provider::FakeProvider;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `paddock.toml` with providers `a` and `b`, route `main` on `target`, and
/// tenant `beta`'s daily token budget.
fn config(a: &FakeProvider, b: &FakeProvider, target: &str, beta_tokens: &str) -> String {
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"acme\"\n\
         {}{}\
         [routes.main]\ntargets = [{{ provider = {target:?}, model = \"m\" }}]\n\
         [tenants.acme]\nagents = [\"prober\"]\nroutes = [\"main\"]\n\
         [tenants.beta]\nagents = [\"prober\"]\nroutes = [\"main\"]\nbudget = {{ tokens-per-day = {beta_tokens} }}\n",
        fake_provider("a", "openai", a),
        fake_provider("b", "openai", b),
    )
}

/// Invokes the prober once as `token`'s tenant, making one LLM call on
/// `main`: its answer (`{"ok": …}` or `{"err": …}`), or what went wrong.
async fn ask(http: &reqwest::Client, address: &str, token: &str) -> Result<Value, String> {
    let input = json!({ "ops": [{ "op": "llm", "route": "main" }] }).to_string();
    let response = http
        .post(format!("http://{address}/v1/agents/prober/run"))
        .bearer_auth(token)
        .body(input)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    Ok(body["output"][0].clone())
}

async fn reload(http: &reqwest::Client, address: &str, token: &str) -> (u16, Value) {
    let response = http.post(format!("http://{address}/v1/admin/reload")).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Waits until `fake` has answered more than `after` requests; how long that took.
async fn first_call_after(fake: &FakeProvider, after: u64) -> Duration {
    let started = Instant::now();
    while fake.request_count() <= after {
        assert!(started.elapsed() < Duration::from_secs(10), "no call reached the provider within 10 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

fn setup(dir: &Path, a: &FakeProvider, b: &FakeProvider) {
    plugin(&dir.join("plugins"), "prober", guests::PROBER, "[capabilities]\nroutes = [\"main\"]\n");
    std::fs::write(dir.join("paddock.toml"), config(a, b, "a", "1000000")).unwrap();
    paddock::gateway::install_crypto();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_under_eight_clients_switches_route_and_budget_with_no_failed_call() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (FakeProvider::start().await.unwrap(), FakeProvider::start().await.unwrap());
    setup(dir.path(), &a, &b);
    let (acme, beta, admin) =
        (key(dir.path(), "acme", "run"), key(dir.path(), "beta", "run"), key(dir.path(), "acme", "admin"));
    let served = serve(dir.path(), &[]);
    let http = reqwest::Client::new();
    assert!(ask(&http, &served.address, &beta).await.unwrap()["ok"].is_string(), "beta may spend before the reload");

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (http, address, token, stop) = (http.clone(), served.address.clone(), acme.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let (mut calls, mut failures) = (0u32, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                calls += 1;
                match ask(&http, &address, &token).await {
                    Ok(answer) if answer["ok"].is_string() => {}
                    Ok(answer) => failures.push(answer.to_string()),
                    Err(e) => failures.push(e),
                }
            }
            (calls, failures)
        }));
    }
    first_call_after(&a, 20).await;

    // Route `main` moves to `b`, and beta's budget drops under one call.
    std::fs::write(dir.path().join("paddock.toml"), config(&a, &b, "b", "1")).unwrap();
    let before = b.request_count();
    let (status, done) = reload(&http, &served.address, &admin).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["applied"], json!(["providers and routes", "tenants"]));
    assert_eq!(done["restart_needed"], json!([]));
    assert_eq!(done["routes"]["changed"], json!(["main"]));
    let switched = first_call_after(&b, before).await;
    assert!(switched < Duration::from_secs(1), "the new target served {switched:?} after the reload");
    // Calls that started on `a` finish there; none starts there after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_a = a.request_count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.request_count(), on_a, "no call went to the old target after the reload");
    let refused = ask(&http, &served.address, &beta).await.unwrap();
    let refused = refused["err"].as_str().unwrap_or_default();
    assert!(
        refused.starts_with("budget exceeded: tenant \"beta\" would go over its tokens-per-day budget"),
        "{refused}"
    );
    assert!(refused.contains("(tenants.beta.budget.tokens-per-day = 1)"), "{refused}");

    // A file that does not validate changes nothing, over HTTP or from the CLI.
    std::fs::write(dir.path().join("paddock.toml"), config(&a, &b, "a", "\"lots\"")).unwrap();
    let (status, refusal) = reload(&http, &served.address, &admin).await;
    assert_eq!(status, 422, "{refusal}");
    assert_eq!(refusal["error"]["kind"], "config");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains("paddock.toml") && message.contains("tokens-per-day"), "{message}");
    assert!(message.ends_with("; the settings in force keep serving"), "{message}");
    let cli = TestCommand::new(dir.path(), &["reload"]).run();
    assert_eq!(cli.code, 5, "{}", cli.stderr);
    assert!(cli.stderr.contains("tokens-per-day"), "{}", cli.stderr);
    let still = b.request_count();
    first_call_after(&b, still).await;
    assert_eq!(a.request_count(), on_a, "the refused file did not move the route back");

    // SIGHUP reads the file again: `main` back on `a`.
    std::fs::write(dir.path().join("paddock.toml"), config(&a, &b, "a", "1")).unwrap();
    signal(served.child.id(), "-HUP");
    let back = first_call_after(&a, on_a).await;
    assert!(back < Duration::from_secs(1), "SIGHUP's reload served within 1 s, not {back:?}");
    let cli = TestCommand::new(dir.path(), &["reload"]).run();
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert!(cli.stdout.ends_with(": nothing that applies while serving changed\n"), "{}", cli.stdout);

    stop.store(true, Ordering::Relaxed);
    let mut total = 0;
    for client in clients {
        let (calls, failures) = client.await.unwrap();
        assert_eq!(failures, Vec::<String>::new(), "no call failed across three reloads and a refused one");
        total += calls;
    }
    assert!(total > 100, "the clients kept invoking ({total} calls)");
    let log = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
    assert_eq!(log.matches("settings reloaded").count(), 3, "{log}");
    assert_eq!(log.matches("reload refused, the settings in force keep serving").count(), 1, "{log}");
}
