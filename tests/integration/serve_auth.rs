//! API keys on a real `paddock serve`: the tenant comes from the key, each
//! role may do what it may and no more, revoked and expired keys stop
//! working, and failed authentications are limited per source.

use crate::util::*;
use paddock_test_guests::guests;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GREET: &str = r#"
[flow]
name = "greet"
[steps.main]
agent = "step"
input = { name = "main", output = "hello {{input/who}}" }
"#;

/// Tenants `acme` and `globex` may run `step`; the flows folder holds `greet`.
fn setup(dir: &Path) {
    plugin(&dir.join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"acme\"\n\
         [tenants.acme]\nagents = [\"step\"]\n[tenants.globex]\nagents = [\"step\"]\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::create_dir_all(dir.join("flows")).unwrap();
    std::fs::write(dir.join("flows/greet.toml"), GREET).unwrap();
    paddock::gateway::install_crypto();
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(served: &Served) -> Client {
        Client { http: reqwest::Client::new(), base: format!("http://{}", served.address) }
    }

    /// `method path` with `token` (none when empty) and `body`: the status,
    /// the JSON body (null when it is not JSON) and the response's headers.
    async fn call(&self, method: Method, path: &str, token: &str, body: &str) -> (StatusCode, Value) {
        let (status, body, _) = self.call_with(method, path, token, body, &[]).await;
        (status, body)
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).body(body.to_string());
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }
}

fn error_of(body: &Value) -> (&str, &str) {
    (body["error"]["kind"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let (status, body) = api.call(Method::GET, "/v1/health", "", "").await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({ "status": "ok" })));
    for (method, path) in [
        (Method::POST, "/v1/agents/step/run"),
        (Method::GET, "/v1/plugins"),
        (Method::GET, "/metrics"),
        (Method::GET, "/v1/runs"),
        (Method::POST, "/v1/flows/greet/runs"),
        (Method::GET, "/v1/approvals"),
        (Method::GET, "/v1/dlq"),
    ] {
        let (status, body, headers) = api.call_with(method.clone(), path, "", "{}", &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert_eq!(error_of(&body), ("unauthenticated", "missing Authorization: Bearer <API key>"), "{path}");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    let (status, body) = api.call(Method::GET, "/v1/runs", "hunter2", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&body).1, "the bearer token is not a Paddock API key (pdk_...)");
    let real = key(dir.path(), "acme", "run");
    let forged = format!("{}{}", &real[..real.len() - 1], if real.ends_with('0') { '1' } else { '0' });
    let (status, body) = api.call(Method::GET, "/v1/runs", &forged, "").await;
    assert_eq!((status, error_of(&body).1), (StatusCode::UNAUTHORIZED, "unknown API key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_comes_from_the_key_and_never_from_a_header() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (acme, globex) = (key(dir.path(), "acme", "run"), key(dir.path(), "globex", "run"));
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let claim = [("x-paddock-tenant", "globex")];
    let (status, started, _) =
        api.call_with(Method::POST, "/v1/flows/greet/runs?wait=true", &acme, r#"{"who":"ada"}"#, &claim).await;
    assert_eq!((status, started["tenant"].as_str()), (StatusCode::OK, Some("acme")), "{started}");
    let run = started["run"].as_str().unwrap();
    let (_, mine) = api.call(Method::GET, "/v1/runs", &acme, "").await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    let (_, theirs) = api.call(Method::GET, "/v1/runs", &globex, "").await;
    assert_eq!(theirs.as_array().map(Vec::len), Some(0), "{theirs}");
    let (status, body) = api.call(Method::GET, &format!("/v1/runs/{run}"), &globex, "").await;
    assert_eq!((status, error_of(&body).0), (StatusCode::NOT_FOUND, "not-found"));
    let (status, _, _) =
        api.call_with(Method::GET, &format!("/v1/runs/{run}"), &globex, "", &[("x-paddock-tenant", "acme")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a header does not lend globex's key acme's runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_may_do_what_it_may_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let (run, operate, admin) =
        (key(dir.path(), "acme", "run"), key(dir.path(), "acme", "operate"), key(dir.path(), "acme", "admin"));
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let (status, body) = api.call(Method::POST, "/v1/agents/step/run", &run, r#"{"name":"x"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = api.call(Method::GET, "/v1/approvals", &run, "").await;
    assert_eq!(status, StatusCode::OK, "a run key sees its tenant's questions");
    let refusals = [
        (Method::POST, "/v1/approvals/ap-1", "answer approvals", "operate"),
        (Method::POST, "/v1/dlq/dl-1/retry", "retry dead letters", "operate"),
        (Method::DELETE, "/v1/dlq/dl-1", "drop dead letters", "operate"),
        (Method::GET, "/metrics", "read the host's metrics", "admin"),
    ];
    for (method, path, action, needed) in refusals {
        let (status, body) = api.call(method.clone(), path, &run, r#"{"option":"ship"}"#).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
        let message = format!("a run key may not {action}; that needs the {needed} role");
        assert_eq!(error_of(&body), ("forbidden", message.as_str()));
    }
    let (status, body) = api.call(Method::POST, "/v1/approvals/ap-1", &operate, r#"{"option":"ship"}"#).await;
    assert_eq!((status, error_of(&body).0), (StatusCode::NOT_FOUND, "not-found"), "operate passes the role check");
    let (status, _) = api.call(Method::GET, "/metrics", &operate, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, headers) = api.call_with(Method::GET, "/metrics", &admin, "", &[]).await;
    assert_eq!(status, StatusCode::OK);
    // prometheus-client writes OpenMetrics text, and says so.
    assert_eq!(headers["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_fails_within_a_second_and_an_expired_one_fails() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let token = key(dir.path(), "acme", "run");
    let short =
        TestCommand::new(dir.path(), &["keys", "create", "--tenant", "acme", "--role", "run", "--expires", "1s"])
            .run()
            .stdout
            .trim()
            .to_string();
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    assert_eq!(api.call(Method::GET, "/v1/runs", &token, "").await.0, StatusCode::OK);
    let id = token.split('_').nth(1).unwrap().to_string();
    let revoked = TestCommand::new(dir.path(), &["keys", "revoke", &id]).run();
    assert_eq!(
        (revoked.code, revoked.stdout.trim()),
        (0, format!("revoked key {id} (tenant acme, role run)").as_str())
    );
    let since = Instant::now();
    let body = loop {
        let (status, body) = api.call(Method::GET, "/v1/runs", &token, "").await;
        if status == StatusCode::UNAUTHORIZED {
            break body;
        }
        assert!(since.elapsed() < Duration::from_secs(1), "the revoked key still works after {:?}", since.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(error_of(&body).1, format!("API key {id} is revoked"));

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = api.call(Method::GET, "/v1/runs", &short, "").await;
    let short_id = short.split('_').nth(1).unwrap();
    assert_eq!(
        (status, error_of(&body).1),
        (StatusCode::UNAUTHORIZED, format!("API key {short_id} has expired").as_str())
    );
    let listed = TestCommand::new(dir.path(), &["keys", "list", "--json"]).run();
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(!listed.to_string().contains(token.rsplit('_').next().unwrap()), "a secret is listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_authentications_are_limited_per_source_and_good_keys_still_work() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let token = key(dir.path(), "acme", "run");
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let bad = format!("pdk_{}_{}", "0".repeat(16), "0".repeat(64));
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..40 {
        let (status, _, headers) = api.call_with(Method::GET, "/v1/runs", &bad, "", &[]).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = headers.get("retry-after").cloned();
        }
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses[..20], [401; 20], "the burst");
    assert!(statuses[20..].contains(&429), "{statuses:?}");
    assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
    assert_eq!(api.call(Method::GET, "/v1/runs", &token, "").await.0, StatusCode::OK, "a good key still works");
}

#[test]
fn keys_are_refused_for_a_tenant_the_host_does_not_have_and_a_bad_role() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let made = TestCommand::new(dir.path(), &["keys", "create", "--tenant", "initech", "--role", "run"]).run();
    assert_eq!(made.code, 2);
    assert!(made.stderr.starts_with("error: --tenant: "), "{}", made.stderr);
    assert!(made.stderr.contains("initech"), "{}", made.stderr);
    let made = TestCommand::new(dir.path(), &["keys", "create", "--tenant", "acme", "--role", "root"]).run();
    assert_eq!(made.code, 2);
    assert!(made.stderr.contains("unknown role \"root\": use run, operate or admin"), "{}", made.stderr);
    let listed = TestCommand::new(dir.path(), &["keys", "list"]).run();
    assert_eq!(listed.stdout.trim(), "no keys; make one with `paddock keys create --tenant NAME --role run`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_is_held_to_its_request_rate_and_other_keys_are_not() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), format!("{config}[serve]\nrequests-per-key = 5\n")).unwrap();
    let (busy, quiet) = (key(dir.path(), "acme", "run"), key(dir.path(), "acme", "run"));
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for _ in 0..10 {
        let (status, body) = api.call(Method::GET, "/v1/runs", &busy, "").await;
        statuses.push(status.as_u16());
        last = body;
    }
    assert_eq!(statuses[..5], [200; 5], "the burst");
    assert_eq!(statuses[9], 429, "{statuses:?}");
    let id = busy.split('_').nth(1).unwrap();
    let message = format!("API key {id} is over serve.requests-per-key (5 a second)");
    assert_eq!(error_of(&last), ("rate-limited", message.as_str()));
    assert_eq!(api.call(Method::GET, "/v1/runs", &quiet, "").await.0, StatusCode::OK, "another key of the tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_held_to_its_request_rate_across_its_keys_and_another_tenant_is_not() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), format!("{config}[serve]\nrequests-per-tenant = 6\n")).unwrap();
    let keys = [key(dir.path(), "acme", "run"), key(dir.path(), "acme", "run"), key(dir.path(), "acme", "run")];
    let other = key(dir.path(), "globex", "run");
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);
    let mut statuses = Vec::new();
    let mut last = Value::Null;
    for i in 0..12 {
        let (status, body) = api.call(Method::GET, "/v1/runs", &keys[i % 3], "").await;
        statuses.push(status.as_u16());
        last = body;
    }
    assert_eq!(statuses[..6], [200; 6], "the burst, over three keys");
    assert_eq!(statuses[11], 429, "{statuses:?}");
    assert_eq!(error_of(&last), ("rate-limited", "tenant acme is over serve.requests-per-tenant (6 a second)"));
    assert_eq!(api.call(Method::GET, "/v1/runs", &other, "").await.0, StatusCode::OK, "another tenant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_its_requests_in_flight_gets_429_and_another_tenant_is_answered_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    let limits = "[serve]\nconcurrent-per-tenant = 4\nconcurrent-per-key = 3\n";
    std::fs::write(dir.path().join("paddock.toml"), format!("{config}{limits}")).unwrap();
    let (first, second) = (key(dir.path(), "acme", "run"), key(dir.path(), "acme", "run"));
    let other = key(dir.path(), "globex", "run");
    let served = serve(dir.path(), &[]);
    let api = Arc::new(Client::new(&served));
    // Four requests that each wait 3 s in a host call: three on one key, one on another.
    let slow = r#"{"name": "slow", "wait_ms": 3000}"#;
    let mut waiting = Vec::new();
    for token in [&first, &first, &first, &second] {
        let (api, token) = (api.clone(), token.clone());
        waiting.push(tokio::spawn(async move { api.call(Method::POST, "/v1/agents/step/run", &token, slow).await.0 }));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, body) = api.call(Method::GET, "/v1/runs", &second, "").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let message = "tenant acme has 4 requests in flight, serve.concurrent-per-tenant (4); retry when one ends";
    assert_eq!(error_of(&body), ("rate-limited", message));
    let (status, _) = api.call(Method::POST, "/v1/agents/step/run", &other, r#"{"name": "quick"}"#).await;
    assert_eq!(status, StatusCode::OK, "another tenant is answered while acme waits");
    for w in waiting {
        assert_eq!(w.await.unwrap(), StatusCode::OK);
    }
    let (status, _) = api.call(Method::GET, "/v1/runs", &first, "").await;
    assert_eq!(status, StatusCode::OK, "a finished request frees its place");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_sees_only_the_agents_it_may_run_and_nothing_of_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    plugin(&dir.path().join("plugins"), "secret", guests::ECHO, "");
    let config = std::fs::read_to_string(dir.path().join("paddock.toml")).unwrap();
    let config =
        config.replace("[tenants.globex]\nagents = [\"step\"]", "[tenants.globex]\nagents = [\"step\", \"secret\"]");
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let (acme, globex, admin) =
        (key(dir.path(), "acme", "run"), key(dir.path(), "globex", "run"), key(dir.path(), "acme", "admin"));
    let served = serve(dir.path(), &[]);
    let api = Client::new(&served);

    // Another tenant's agent is answered as one that is not there.
    let absent = |name: &str, more: &str| format!("no agent named {name:?} for tenant \"acme\"{more}");
    for (name, more) in [("secret", ""), ("nothing", ""), ("secrets", ""), ("stepp", "; did you mean \"step\"?")] {
        let (status, body) = api.call(Method::POST, &format!("/v1/agents/{name}/run"), &acme, "{}").await;
        assert_eq!((status, error_of(&body)), (StatusCode::NOT_FOUND, ("not-found", absent(name, more).as_str())));
    }
    let (status, body) = api.call(Method::POST, "/v1/agents/secret/run", &globex, r#"{"n":1}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An output that is JSON comes as JSON, not as a string of it.
    assert_eq!(body["output"]["input"], r#"{"n":1}"#, "{body}");

    // The plugins each key's tenant may run; an admin key sees every one.
    for (token, expected) in
        [(&acme, vec!["step"]), (&globex, vec!["secret", "step"]), (&admin, vec!["secret", "step"])]
    {
        let (status, listed) = api.call(Method::GET, "/v1/plugins", token, "").await;
        assert_eq!(status, StatusCode::OK);
        let names: Vec<&str> = listed.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, expected);
    }
}
