//! Outbound HTTP (`wasi:http`) by grant: the `fetcher` guest against a
//! server on 127.0.0.1 in this test. A granted host answers GET and POST; an
//! ungranted host, a redirect to one, and a name resolving to a loopback
//! address without the tenant's `http-private` are refused with exact texts;
//! a response over the cap is refused; an agent not asking for hosts sees no
//! `wasi:http` at all; a replay answers from the journal and sends nothing.

use crate::util::*;
use axum::routing::{get, post};
use paddock::journal::Tape;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A server on 127.0.0.1: `/hello` ("hi", counted), `/echo` (the body sent),
/// `/big` (8 KiB), `/redirect` (302 to `localhost`'s `/hello`); its port.
pub(crate) async fn server(hits: Arc<AtomicUsize>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hello = move || {
        hits.fetch_add(1, Ordering::SeqCst);
        async { "hi" }
    };
    let elsewhere = format!("http://localhost:{port}/hello");
    let app = axum::Router::new()
        .route("/hello", get(hello))
        .route("/echo", post(|body: String| async move { body }))
        .route("/big", get(|| async { "x".repeat(8192) }))
        .route(
            "/redirect",
            get(move || {
                let to = elsewhere.clone();
                async move { (axum::http::StatusCode::FOUND, [("location", to)]) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// `fetcher` asking for 127.0.0.1, `named` for localhost and `plain` for no
/// host, in tenant `acme` granting both hosts (and `private` more).
fn host(dir: &Path, private: &str) -> Runtime {
    host_granting(dir, "\"127.0.0.1\", \"localhost\"", private)
}

/// [`host`] with tenant `acme` granting `http`.
fn host_granting(dir: &Path, http: &str, private: &str) -> Runtime {
    plugin(dir, "fetcher", guests::FETCHER, "[capabilities]\nhttp = [\"127.0.0.1\"]\n");
    plugin(dir, "named", guests::FETCHER, "[capabilities]\nhttp = [\"localhost\"]\n");
    plugin(dir, "plain", guests::FETCHER, "");
    let config = format!(
        "[limits]\nmax-http-response-bytes = \"4KiB\"\n[tenants.acme]\nagents = [\"fetcher\", \"named\", \"plain\"]\n\
         http = [{http}]\nhttp-private = [{private}]\n"
    );
    runtime_with_plugins(dir, &config)
}

fn acme() -> RunOptions {
    RunOptions { tenant: Some("acme".into()), ..Default::default() }
}

async fn fetch(rt: &Runtime, agent: &str, input: Value) -> Value {
    output_json(&run_with(rt, agent, &input.to_string(), &acme()).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_host_answers_a_get_and_a_post_with_a_body() {
    let port = server(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let requests = json!([
        {"url": format!("http://127.0.0.1:{port}/hello")},
        {"method": "POST", "url": format!("http://127.0.0.1:{port}/echo"), "body": "ping ".repeat(600)},
    ]);
    let answers = fetch(&rt, "fetcher", json!({"requests": requests})).await;
    assert_eq!(answers[0], json!({"status": 200, "body": "hi", "location": null}));
    assert_eq!(answers[1], json!({"status": 200, "body": "ping ".repeat(600), "location": null}));
    let mut metrics = String::new();
    rt.metrics().render_into(&mut metrics);
    let counted = "paddock_agent_http_requests_total{tenant=\"acme\",outcome=\"2xx\"} 2";
    assert!(metrics.contains(counted), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ungranted_host_a_redirect_to_one_and_a_name_resolving_to_loopback_are_refused() {
    let port = server(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let not_granted = format!(
        "denied: host \"localhost:{port}\" is not granted to agent \"fetcher\" (its manifest's capabilities.http: 127.0.0.1)"
    );
    let elsewhere = json!({"url": format!("http://localhost:{port}/hello")});
    assert_eq!(fetch(&rt, "fetcher", json!({"requests": [elsewhere]})).await, json!([{"error": not_granted}]));

    let redirect = json!({"url": format!("http://127.0.0.1:{port}/redirect")});
    let followed = fetch(&rt, "fetcher", json!({"requests": [redirect], "follow": true})).await;
    assert_eq!(
        followed,
        json!([{"status": 302, "location": format!("http://localhost:{port}/hello")}, {"error": not_granted}]),
        "the redirect is a request of its own, checked as every one is"
    );

    let outcome = run_with(&rt, "named", &json!({"requests": [elsewhere]}).to_string(), &acme()).await;
    let answers = output_json(&outcome);
    let why = answers[0]["error"].as_str().unwrap();
    assert!(why.starts_with("denied: localhost resolves to "), "{why}");
    assert!(
        why.ends_with(
            ", which is a loopback address; only an address the tenant's http grant names, or a host its http-private names, may be reached there"
        ),
        "{why}"
    );
    assert!(outcome.logs.iter().any(|r| r.message == format!("http: internal error: {why}")), "{:?}", outcome.logs);

    let other = tempfile::tempdir().unwrap();
    let trusting = host(other.path(), "\"localhost\"");
    let answers = fetch(&trusting, "named", json!({"requests": [elsewhere]})).await;
    assert_eq!(answers[0], json!({"status": 200, "body": "hi", "location": null}), "http-private lets it through");

    // A manifest naming an address under a tenant's "*" does not make it explicit.
    let third = tempfile::tempdir().unwrap();
    let any = host_granting(third.path(), "\"*\"", "");
    let answers =
        fetch(&any, "fetcher", json!({"requests": [{"url": format!("http://127.0.0.1:{port}/hello")}]})).await;
    assert_eq!(
        answers[0]["error"],
        "denied: 127.0.0.1 is a loopback address; only an address the tenant's http grant names, or a host its http-private names, may be reached there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_cap_is_refused_and_an_agent_asking_for_no_host_sees_no_wasi_http() {
    let port = server(Arc::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let big = json!({"url": format!("http://127.0.0.1:{port}/big")});
    let outcome = run_with(&rt, "fetcher", &json!({"requests": [big]}).to_string(), &acme()).await;
    assert_eq!(output_json(&outcome), json!([{"error": "ErrorCode::HttpResponseBodySize(Some(4096))"}]));
    let noted = "http: HTTP response body size exceeds limit: 4096 bytes";
    assert!(outcome.logs.iter().any(|r| r.message == noted), "{:?}", outcome.logs);

    let refused = rt.load("plain").err().expect("an agent that asks for no host cannot import wasi:http").to_string();
    assert!(
        refused.contains("wasi:http is linked for an agent whose manifest asks for hosts in capabilities.http"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_answers_every_exchange_from_the_journal_and_sends_nothing() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = server(hits.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let requests = json!([
        {"url": format!("http://127.0.0.1:{port}/hello")},
        {"method": "POST", "url": format!("http://127.0.0.1:{port}/echo"), "body": "kept"},
        {"url": format!("http://localhost:{port}/hello")},
    ]);
    let input = json!({"requests": requests}).to_string();
    let recording = Tape::recording();
    let options = RunOptions { journal: Some(recording.clone()), ..acme() };
    let recorded = output_json(&run_with(&rt, "fetcher", &input, &options).await);
    assert_eq!((recorded[0]["body"].clone(), recorded[1]["body"].clone()), (json!("hi"), json!("kept")));
    assert!(recorded[2]["error"].as_str().unwrap().starts_with("denied: host \"localhost:"), "{recorded}");
    let entries = recording.entries();
    let calls: Vec<&str> = entries.iter().map(|e| e.call.as_str()).filter(|c| c.starts_with("http.")).collect();
    assert_eq!(calls, ["http.request", "http.request", "http.request"]);

    let options = RunOptions { journal: Some(Tape::replaying(entries.clone())), ..acme() };
    assert_eq!(output_json(&run_with(&rt, "fetcher", &input, &options).await), recorded);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only the recorded run reached the server");

    let other = json!({"requests": [{"url": format!("http://127.0.0.1:{port}/other")}]}).to_string();
    let replay = Tape::replaying(entries);
    let options = RunOptions { journal: Some(replay.clone()), ..acme() };
    let diverged = output_json(&run_with(&rt, "fetcher", &other, &options).await);
    assert!(diverged[0]["error"].as_str().unwrap().starts_with("replay diverged at call #"), "{diverged}");
    assert!(replay.divergence().is_some());
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
