//! What a serving host logs: one JSON object a line, the HTTP request and the
//! invocation it caused tied together by the request id.

use crate::util::*;
use paddock_test_guests::guests;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_carry_the_request_id_into_the_invocation() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let token = key(dir.path(), "default", "run");
    let served = serve(dir.path(), &["--log-format", "json"]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/agents/echo/run", served.address);
    let named = client.post(&url).bearer_auth(&token).header("x-request-id", "req-42").body("{}").send().await.unwrap();
    assert_eq!(named.status().as_u16(), 200);
    assert_eq!(named.headers()["x-request-id"], "req-42");
    let unnamed = client.post(&url).bearer_auth(&token).body("{}").send().await.unwrap();
    let made = unnamed.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");

    let key_id = token.split('_').nth(1).unwrap();
    let of = |lines: &[Value], target: &str| {
        lines.iter().find(|l| l["target"] == target && l["span"]["request_id"] == "req-42").cloned()
    };
    let since = Instant::now();
    let (http, invoke) = loop {
        let text = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if let (Some(h), Some(i)) = (of(&lines, "paddock::http"), of(&lines, "paddock::invoke")) {
            assert!(lines.iter().all(|l| l["timestamp"].is_string()), "a line without a time");
            break (h, i);
        }
        assert!(since.elapsed() < Duration::from_secs(5), "no request and invocation lines for req-42 in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((http["method"].as_str(), http["path"].as_str()), (Some("POST"), Some("/v1/agents/echo/run")));
    assert_eq!((http["status"].as_u64(), http["span"]["tenant"].as_str()), (Some(200), Some("default")));
    assert_eq!(http["span"]["key"].as_str(), Some(key_id));
    assert_eq!((invoke["agent"].as_str(), invoke["outcome"].as_str()), (Some("echo"), Some("ok")));
    assert_eq!(invoke["tenant"].as_str(), Some("default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_invocations_and_requests_by_tenant_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let (run, admin) = (key(dir.path(), "default", "run"), key(dir.path(), "default", "admin"));
    let served = serve(dir.path(), &[]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.address);
    for _ in 0..3 {
        let r = client.post(format!("{base}/v1/agents/echo/run")).bearer_auth(&run).body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let unauthenticated = client.get(format!("{base}/v1/runs")).send().await.unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let text = client.get(format!("{base}/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has(r#"paddock_invocations_total{tenant="default",agent="echo",outcome="ok"} 3"#), "{text}");
    assert!(text.contains(r#"paddock_invocation_seconds_count{tenant="default",agent="echo"} 3"#), "{text}");
    assert!(text.contains(r#"paddock_fuel_consumed_total{tenant="default",agent="echo"} "#), "{text}");
    let ran =
        r#"paddock_http_requests_total{route="/v1/agents/{name}/run",method="POST",status="200",tenant="default"} 3"#;
    assert!(has(ran), "{text}");
    assert!(has(r#"paddock_http_requests_total{route="/v1/runs",method="GET",status="401",tenant=""} 1"#), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "one end mark, at the end");
    assert!(text.ends_with("# EOF\n"));
}
