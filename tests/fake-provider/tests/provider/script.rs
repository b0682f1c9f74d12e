//! The script, chaos, the request log, the control API and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use paddock_fake_provider::{Behavior, Chaos, Dialect, FakeProvider, Fault, RateLimitHeaders, Reply};
use serde_json::{Value, json};

use crate::util::{client, post, post_raw, user};

fn chat(base: &str) -> String {
    format!("{base}/v1/chat/completions")
}

async fn reply_text(base: &str) -> (u16, String) {
    let read = post(&chat(base), &json!({"messages": user("hi")})).await;
    let text = read.json()["choices"][0]["message"]["content"].as_str().unwrap_or("").to_owned();
    (read.status, text)
}

#[tokio::test]
async fn the_script_is_first_in_first_out_then_the_default() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply::text("first")));
    provider.push_many([Behavior::Fault(Fault::Status { code: 500 }), Behavior::Reply(Reply::text("third"))]);
    let base = provider.url();
    assert_eq!(reply_text(&base).await, (200, "first".to_owned()));
    assert_eq!(reply_text(&base).await.0, 500);
    assert_eq!(reply_text(&base).await, (200, "third".to_owned()));
    assert_eq!(reply_text(&base).await, (200, "fake reply to: hi".to_owned()));
    provider.set_default(Behavior::Reply(Reply::text("new default")));
    assert_eq!(reply_text(&base).await, (200, "new default".to_owned()));
    provider.set_default(Behavior::Fault(Fault::Unauthorized));
    assert_eq!(reply_text(&base).await.0, 401);
}

#[tokio::test]
async fn the_script_is_shared_by_all_dialects() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push_many([Behavior::Fault(Fault::Status { code: 529 }), Behavior::Fault(Fault::Status { code: 503 })]);
    let anthropic = post(&format!("{}/v1/messages", provider.url()), &json!({"messages": user("hi")})).await;
    let ollama = post(&format!("{}/api/chat", provider.url()), &json!({"messages": user("hi")})).await;
    assert_eq!((anthropic.status, ollama.status), (529, 503));
}

#[tokio::test]
async fn requests_are_recorded_with_headers_body_stream_and_behavior() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Fault(Fault::InsufficientQuota));
    post(&format!("{}/v1/messages", provider.url()), &json!({"messages": user("hi"), "stream": true})).await;
    post(&format!("{}/api/chat", provider.url()), &json!({"messages": user("hi")})).await;
    let requests = provider.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(provider.request_count(), 2);
    let first = &requests[0];
    assert_eq!((first.dialect, first.path.as_str(), first.stream), (Dialect::Anthropic, "/v1/messages", true));
    assert_eq!(first.header("x-api-key"), Some("sk-test"));
    assert_eq!(first.body["messages"][0]["content"], "hi");
    assert_eq!(first.behavior, Behavior::Fault(Fault::InsufficientQuota));
    assert!(first.headers.iter().all(|(name, _)| name.chars().all(|c| !c.is_ascii_uppercase())));
    assert_eq!((requests[1].dialect, requests[1].stream), (Dialect::Ollama, true), "Ollama streams unless told not to");
    assert_eq!(requests[1].behavior, Behavior::default());
    assert!(requests[0].at <= requests[1].at);

    provider.clear();
    assert!(provider.requests().is_empty());
    assert_eq!(provider.request_count(), 0);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused_without_taking_the_script() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply::text("scripted")));
    let read = post_raw(&chat(&provider.url()), "{not json".to_owned()).await;
    assert_eq!(read.status, 400);
    assert_eq!(read.json()["error"]["type"], "invalid_request_error");
    assert_eq!(provider.requests()[0].body, json!("{not json"));
    assert_eq!(reply_text(&provider.url()).await.1, "scripted");
}

#[tokio::test]
async fn chaos_is_deterministic_for_a_seed() {
    let chaos = Chaos { seed: 7, fault_rate: 0.5, faults: vec![Fault::Status { code: 500 }, Fault::Unauthorized] };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let provider = FakeProvider::start().await.unwrap();
        // Requests before chaos is set do not shift its sequence.
        reply_text(&provider.url()).await;
        provider.set_chaos(Some(chaos.clone()));
        let mut statuses = Vec::new();
        for _ in 0..24 {
            statuses.push(reply_text(&provider.url()).await.0);
        }
        runs.push(statuses);
    }
    assert_eq!(runs[0], runs[1]);
    let expected: Vec<u16> = (0..24)
        .map(|i| match chaos.fault_for(i) {
            Some(Fault::Status { code }) => code,
            Some(Fault::Unauthorized) => 401,
            _ => 200,
        })
        .collect();
    assert_eq!(runs[0], expected);
    assert!(expected.contains(&200) && expected.contains(&500) && expected.contains(&401), "{expected:?}");
}

#[tokio::test]
async fn scripted_requests_bypass_chaos_and_do_not_advance_it() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_chaos(Some(Chaos { seed: 1, fault_rate: 1.0, faults: vec![Fault::Status { code: 503 }] }));
    provider.push(Behavior::Reply(Reply::text("scripted")));
    assert_eq!(reply_text(&provider.url()).await, (200, "scripted".to_owned()));
    assert_eq!(reply_text(&provider.url()).await.0, 503);
    provider.set_chaos(None);
    assert_eq!(reply_text(&provider.url()).await.0, 200);
}

#[tokio::test]
async fn many_concurrent_requests_are_all_served_and_counted() {
    let provider = FakeProvider::start().await.unwrap();
    let client = client();
    let requests = (0..256).map(|i| {
        let (client, url) = (client.clone(), chat(&provider.url()));
        async move {
            let body = json!({"messages": user(&format!("request {i}")), "stream": i % 2 == 0});
            let response = client.post(url).json(&body).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for (i, (status, body)) in results.iter().enumerate() {
        assert_eq!(*status, 200);
        let complete =
            if i % 2 == 0 { body.ends_with("data: [DONE]\n\n") } else { body.contains("fake reply to: request") };
        assert!(complete, "{body}");
    }
    assert_eq!(provider.request_count(), 256);
}

/// The control API, driven over HTTP as another process would.
async fn control(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, String) {
    let mut request = client().request(method, format!("{base}/_fake/{path}"));
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn drive_control_api(base: &str) {
    use reqwest::Method;
    let script = json!([
        {"kind": "fault", "fault": "rate-limited", "retry_after": {"seconds": 7}},
        {"kind": "reply", "text": "scripted"},
    ]);
    assert_eq!(control(base, Method::POST, "script", Some(script)).await.0, 204);
    let read = post(&chat(base), &json!({"messages": user("hi")})).await;
    assert_eq!((read.status, read.header("retry-after")), (429, Some("7")));
    assert_eq!(reply_text(base).await.1, "scripted");

    let default = json!({"kind": "reply", "text": "from default"});
    assert_eq!(control(base, Method::PUT, "default", Some(default)).await.0, 204);
    assert_eq!(reply_text(base).await.1, "from default");

    let limits = serde_json::to_value(RateLimitHeaders::default()).unwrap();
    assert_eq!(control(base, Method::PUT, "rate-limit", Some(limits)).await.0, 204);
    assert_eq!(post(&chat(base), &json!({})).await.header("x-ratelimit-limit-requests"), Some("500"));
    assert_eq!(control(base, Method::PUT, "rate-limit", Some(Value::Null)).await.0, 204);

    let chaos = json!({"seed": 3, "fault_rate": 1.0, "faults": [{"fault": "status", "code": 502}]});
    assert_eq!(control(base, Method::PUT, "chaos", Some(chaos)).await.0, 204);
    assert_eq!(reply_text(base).await.0, 502);
    assert_eq!(control(base, Method::PUT, "chaos", Some(Value::Null)).await.0, 204);

    let (status, body) = control(base, Method::GET, "requests", None).await;
    assert_eq!(status, 200);
    let requests: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0]["dialect"], "openai");
    assert_eq!(
        requests[0]["behavior"],
        json!({"kind": "fault", "fault": "rate-limited", "retry_after": {"seconds": 7}})
    );
    assert!(requests[0].get("at").is_none());
    let parsed: Vec<paddock_fake_provider::Recorded> = serde_json::from_str(&body).unwrap();
    assert_eq!(parsed[1].behavior, Behavior::Reply(Reply::text("scripted")));
    assert_eq!(control(base, Method::GET, "request-count", None).await.1, r#"{"count":5}"#);

    let (status, message) = control(base, Method::PUT, "default", Some(json!({"kind": "nonsense"}))).await;
    assert_eq!(status, 400);
    assert!(message.contains("PUT /_fake/default"), "{message}");

    assert_eq!(control(base, Method::POST, "clear", None).await.0, 204);
    assert_eq!(control(base, Method::GET, "requests", None).await.1, "[]");
}

#[tokio::test]
async fn the_control_api_scripts_and_inspects_over_http() {
    let provider = FakeProvider::start().await.unwrap();
    drive_control_api(&provider.url()).await;
}

#[tokio::test]
async fn the_binary_prints_its_address_and_serves_the_control_api() {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_paddock-fake-provider"))
            .args(["--port", "0"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base =
        line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("unexpected line {line:?}")).to_owned();
    assert!(base.starts_with("http://127.0.0.1:") && !base.ends_with(":0"), "{base}");
    drive_control_api(&base).await;
}

/// A child process killed when the test ends, even by a failed assertion.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
