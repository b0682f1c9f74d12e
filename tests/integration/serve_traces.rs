//! Traces over OTLP/HTTP: a serving host exports the spans of a request —
//! HTTP, invocation, host calls, LLM call and attempt — to the collector
//! `[telemetry]` names, in the trace of the caller's `traceparent`, and sends
//! the last ones when it is stopped.

use crate::util::*;
use axum::extract::State;
use axum::routing::post;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// A collector: every span of every `POST /v1/traces` (OTLP JSON), flattened.
async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let receive = |State(spans): State<Arc<Mutex<Vec<Value>>>>, body: String| async move {
        let export: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not OTLP JSON ({e}): {body}"));
        let mut spans = spans.lock().unwrap();
        for resource in export["resourceSpans"].as_array().into_iter().flatten() {
            for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                for span in scope["spans"].as_array().into_iter().flatten() {
                    let mut span = span.clone();
                    span["resource"] = resource["resource"].clone();
                    spans.push(span);
                }
            }
        }
        axum::Json(json!({}))
    };
    let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), spans)
}

/// An attribute's value as JSON (`"simulated"`, `19`), whatever OTLP JSON
/// wraps it in (`{"stringValue": ...}`, `{"intValue": "19"}`).
fn attribute(span: &Value, key: &str) -> Option<Value> {
    let found = span["attributes"].as_array()?.iter().find(|a| a["key"] == key)?;
    let (kind, value) = found["value"].as_object()?.iter().next()?;
    Some(match (kind.as_str(), value.as_str()) {
        ("intValue", Some(text)) => json!(text.parse::<i64>().ok()?),
        _ => value.clone(),
    })
}

fn named<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["name"] == name).collect()
}

fn only<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    let found = named(spans, name);
    assert_eq!(found.len(), 1, "one {name:?} span, in {}", names(spans));
    found[0]
}

fn names(spans: &[Value]) -> String {
    spans.iter().map(|s| s["name"].as_str().unwrap_or("?")).collect::<Vec<_>>().join(", ")
}

/// Whether `span` is `ancestor` or below it.
fn descends(spans: &[Value], span: &Value, ancestor: &Value) -> bool {
    let mut at = span;
    for _ in 0..32 {
        if at["spanId"] == ancestor["spanId"] {
            return true;
        }
        match spans.iter().find(|s| s["spanId"] == at["parentSpanId"]) {
            Some(parent) => at = parent,
            None => return false,
        }
    }
    false
}

/// Stops the host with SIGTERM (it drains, then sends the spans still
/// queued) and returns every span the collector got.
async fn stop_and_collect(served: &mut Served, received: &Mutex<Vec<Value>>) -> Vec<Value> {
    let stopped = std::process::Command::new("kill").args(["-TERM", &served.child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    // Generous: under a loaded CI machine the drain and the last export to the
    // collector (served by this test's own runtime) once took more than 10 s.
    let exited = exit_of(&mut served.child, Duration::from_secs(45)).await;
    let log = std::fs::read_to_string(served.dir.join(SERVE_LOG)).unwrap_or_default();
    assert_eq!(exited, Some(0), "the host did not exit after SIGTERM; its log:\n{log}");
    let spans = received.lock().unwrap().clone();
    assert!(!spans.is_empty(), "no spans arrived; the host's log:\n{log}");
    assert!(spans.iter().all(|s| s["traceId"] == TRACE_ID), "a span outside the caller's trace: {spans:#?}");
    spans
}

fn telemetry(endpoint: &str) -> String {
    format!("[telemetry]\nendpoint = \"{endpoint}\"\nprotocol = \"http/json\"\nservice-name = \"paddock-test\"\n")
}

async fn exit_of(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let since = Instant::now();
    while since.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_from_the_callers_traceparent_down_to_each_llm_attempt() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let caps = "[capabilities]\nroutes = [\"fast\"]\nagents = [\"echo\"]\nblackboard = { read = [\"notes/\"], write = [\"notes/\"] }\n";
    plugin(&plugins, "prober", guests::PROBER, caps);
    plugin(&plugins, "echo", guests::ECHO, "");
    let config = format!("[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n{}", telemetry(&endpoint));
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let token = key(dir.path(), "default", "run");
    let mut served = serve(dir.path(), &["--log-format", "json"]);
    paddock::gateway::install_crypto();
    let ops = json!({ "ops": [
        { "op": "put", "key": "notes/a", "value": "1" },
        { "op": "llm", "route": "fast" },
        { "op": "call", "agent": "echo" },
    ]});
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/agents/prober/run", served.address))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let back = answer.headers()["traceparent"].to_str().unwrap().to_string();
    let body: Value = answer.json().await.unwrap();
    let output = body["output"].clone();
    assert!(output.as_array().unwrap().iter().all(|o| o.get("ok").is_some()), "every op worked: {output}");

    let spans = stop_and_collect(&mut served, &received).await;
    let http = only(&spans, "http");
    assert_eq!(http["parentSpanId"], CALLER_SPAN);
    assert_eq!(back, format!("00-{TRACE_ID}-{}-01", http["spanId"].as_str().unwrap()));
    assert_eq!(attribute(http, "http.route"), Some(json!("/v1/agents/{name}/run")));
    assert_eq!(attribute(http, "http.response.status_code"), Some(json!(200)));
    let service = http["resource"]["attributes"].as_array().unwrap().iter().find(|a| a["key"] == "service.name");
    assert_eq!(service.unwrap()["value"]["stringValue"], "paddock-test");

    let invokes = named(&spans, "invoke");
    assert_eq!(invokes.len(), 2, "the prober's and the echo it called: {}", names(&spans));
    let invoke = invokes.iter().find(|s| attribute(s, "agent") == Some(json!("prober"))).unwrap();
    assert_eq!(invoke["parentSpanId"], http["spanId"]);
    for (field, want) in [("tenant", json!("default")), ("outcome", json!("ok")), ("run", json!(body["run"]))] {
        assert_eq!(attribute(invoke, field), Some(want), "invoke.{field}");
    }
    assert!(attribute(invoke, "fuel").and_then(|f| f.as_i64()).is_some_and(|f| f > 0), "{invoke:#}");

    let llm = only(&spans, "llm");
    assert!(descends(&spans, llm, invoke) && llm["parentSpanId"] == invoke["spanId"], "{llm:#}");
    for (field, want) in
        [("route", json!("fast")), ("provider", json!("simulated")), ("outcome", json!("ok")), ("attempts", json!(1))]
    {
        assert_eq!(attribute(llm, field), Some(want), "llm.{field}: {llm:#}");
    }
    assert!(attribute(llm, "model").is_some_and(|m| m.as_str().is_some_and(|m| !m.is_empty())), "{llm:#}");
    for tokens in ["input_tokens", "output_tokens", "cost_micros"] {
        assert!(attribute(llm, tokens).is_some_and(|t| t.is_i64()), "llm.{tokens}: {llm:#}");
    }
    assert!(attribute(llm, "output_tokens").and_then(|t| t.as_i64()).is_some_and(|t| t > 0), "{llm:#}");
    let attempt = only(&spans, "llm.attempt");
    assert_eq!(attempt["parentSpanId"], llm["spanId"]);
    assert_eq!(
        (attribute(attempt, "provider"), attribute(attempt, "outcome")),
        (attribute(llm, "provider"), Some(json!("ok")))
    );
    assert_eq!(attribute(attempt, "output_tokens"), attribute(llm, "output_tokens"));

    // The prober's put, and the echo's (it writes echo/last), each under its own invocation.
    let put =
        |key: &str| *named(&spans, "blackboard.put").iter().find(|s| attribute(s, "key") == Some(json!(key))).unwrap();
    assert_eq!(
        (put("notes/a")["parentSpanId"].clone(), attribute(put("notes/a"), "outcome")),
        (invoke["spanId"].clone(), Some(json!("ok")))
    );
    let call = only(&spans, "agents.call");
    assert_eq!(
        (call["parentSpanId"].clone(), attribute(call, "agent")),
        (invoke["spanId"].clone(), Some(json!("echo")))
    );
    let echo = invokes.iter().find(|s| attribute(s, "agent") == Some(json!("echo"))).unwrap();
    assert_eq!(echo["parentSpanId"], call["spanId"]);
    assert_eq!(put("echo/last")["parentSpanId"], echo["spanId"]);
    assert_eq!(only(&spans, "blackboard.get")["parentSpanId"], echo["spanId"]);

    // The log still ties every line of the request to its http span.
    let log = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
    let lines: Vec<Value> =
        log.lines().filter(|l| l.starts_with('{')).filter_map(|l| serde_json::from_str(l).ok()).collect();
    let invocation = lines.iter().find(|l| l["target"] == "paddock::invoke" && l["agent"] == "prober").unwrap();
    assert!(invocation["span"]["request_id"].is_string(), "{invocation}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_telemetry_nothing_is_exported_and_no_traceparent_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let token = key(dir.path(), "default", "run");
    let served = serve(dir.path(), &[]);
    paddock::gateway::install_crypto();
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/agents/echo/run", served.address))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert!(answer.headers().get("traceparent").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_run_is_a_span_under_its_request_with_a_span_per_step_and_its_invocations_below() {
    let (endpoint, received) = collector().await;
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    let config =
        format!("[host]\nledger = \"memory\"\nplugin-state = \"memory\"\nflows = \"memory\"\n{}", telemetry(&endpoint));
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let flow = "[flow]\nname = \"greet\"\n[steps.main]\nkind = \"sequence\"\nsteps = [\"first\", \"second\"]\n\
                [steps.first]\nagent = \"step\"\ninput = { name = \"first\" }\n\
                [steps.second]\nagent = \"step\"\ninput = { name = \"second\" }\n";
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/greet.toml"), flow).unwrap();
    let token = key(dir.path(), "default", "operate");
    let mut served = serve(dir.path(), &[]);
    paddock::gateway::install_crypto();
    let answer = reqwest::Client::new()
        .post(format!("http://{}/v1/flows/greet/runs?wait=true", served.address))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200, "{}", answer.text().await.unwrap());

    let spans = stop_and_collect(&mut served, &received).await;
    let http = only(&spans, "http");
    let run = only(&spans, "flow.run");
    assert_eq!((run["parentSpanId"].clone(), attribute(run, "flow")), (http["spanId"].clone(), Some(json!("greet"))));
    let step =
        |name: &str| *named(&spans, "flow.step").iter().find(|s| attribute(s, "step") == Some(json!(name))).unwrap();
    let main = step("main");
    assert_eq!(
        (main["parentSpanId"].clone(), attribute(main, "kind")),
        (run["spanId"].clone(), Some(json!("sequence")))
    );
    for name in ["first", "second"] {
        let agent_step = step(name);
        assert_eq!(agent_step["parentSpanId"], main["spanId"], "{name}");
        assert_eq!(
            (attribute(agent_step, "kind"), attribute(agent_step, "outcome")),
            (Some(json!("agent")), Some(json!("ok")))
        );
        let invoke = named(&spans, "invoke").into_iter().find(|s| s["parentSpanId"] == agent_step["spanId"]);
        assert!(
            invoke.is_some_and(|i| attribute(i, "agent") == Some(json!("step"))),
            "no invoke under {name}: {}",
            names(&spans)
        );
    }
}
