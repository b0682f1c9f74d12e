//! The `llm` interface across the sandbox boundary: a real guest calls
//! complete, stream and embed, and each provider adapter is held to the
//! real wire format of a fake server — replies, streams, usage, and each
//! error class mapped to the WIT error an agent can act on.

use crate::util::{fake_provider, output_json, plugin, run, runtime_with_plugins};
use paddock_fake_provider::{Behavior, FakeProvider, FakeToolCall, Fault, Finish, Reply, RetryAfter};
use paddock_test_guests::guests;
use serde_json::{Value, json};

/// A host whose route `r` goes to `fake` speaking `kind`, and the
/// `llm-client` guest granted that route.
fn host_for(dir: &std::path::Path, kind: &str, fake: &FakeProvider, extra: &str) -> paddock::runtime::Runtime {
    plugin(dir, "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\", \"e\"]\n");
    let toml = format!(
        "{}[routes.r]\nretries = 0\nbackoff-base = \"1ms\"\nrate-limit-wait = \"0s\"\nbreaker = {{ failures = 1000, min-calls = 1000 }}\ntargets = [{{ provider = \"p\", model = \"m-1\" }}]\n\
         [routes.e]\ntargets = [{{ provider = \"p\", model = \"embedder\" }}]\n\
         [prices.m-1]\ninput = 1.0\noutput = 2.0\n{extra}",
        fake_provider("p", kind, fake)
    );
    runtime_with_plugins(dir, &toml)
}

/// `secrets.toml` in `dir`, holding key `main` (`sk-test-123`), readable by its owner alone.
fn write_secrets(dir: &std::path::Path) {
    let secrets = dir.join("secrets.toml");
    std::fs::write(&secrets, "main = \"sk-test-123\"\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

async fn client(rt: &paddock::runtime::Runtime, input: Value) -> Value {
    output_json(&run(rt, "client", &input.to_string()).await)
}

fn counted(text: &str) -> Behavior {
    Behavior::Reply(Reply {
        text: Some(text.into()),
        input_tokens: Some(11),
        output_tokens: Some(5),
        chunks: 3,
        ..Default::default()
    })
}

/// What each fault must look like to the agent, per dialect.
fn expected_errors(kind: &str) -> Vec<(Fault, &'static str, &'static str)> {
    let mut cases = vec![
        (Fault::Status { code: 500 }, "unavailable", "server-error (HTTP 500)"),
        (Fault::Status { code: 503 }, "unavailable", "overloaded (HTTP 503)"),
        (Fault::InvalidRequest, "invalid-request", "p/m-1: invalid-request (HTTP 400)"),
        // Gemini answers a bad key with 400 API_KEY_INVALID, the others with 401.
        (Fault::Unauthorized, "unavailable", if kind == "gemini" { "auth (HTTP 400)" } else { "auth (HTTP 401)" }),
        (Fault::ContentFilter, "content-filtered", "content-filter"),
        (Fault::MalformedJson, "unavailable", "malformed: answer is not JSON"),
    ];
    if kind == "anthropic" {
        cases.push((Fault::Status { code: 529 }, "unavailable", "overloaded (HTTP 529)"));
    }
    // Gemini's free tier runs out as a per-day quota.
    cases.push((
        Fault::InsufficientQuota,
        "unavailable",
        if kind == "gemini" { "daily-quota" } else { "insufficient-quota" },
    ));
    cases.push((Fault::SpendLimit, "unavailable", "spend-limit"));
    // Last: a 429 sets the target aside until Retry-After passes (Ollama sends
    // none, so the default wait of one second applies).
    let wait = if kind == "ollama" { "1000" } else { "3000" };
    cases.push((Fault::RateLimited { retry_after: RetryAfter::Seconds(3) }, "rate-limited", wait));
    cases
}

async fn conformance(kind: &str) {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host_for(dir.path(), kind, &fake, "");

    // A plain completion, with the provider's usage and the price table's cost.
    fake.push(counted("the quick brown fox"));
    let out = client(&rt, json!({"op": "complete", "route": "r", "prompt": "hi", "max_tokens": 50})).await;
    assert_eq!(
        out["ok"],
        json!({"text": "the quick brown fox", "provider": "p", "model": "m-1", "finish": "stop", "attempts": 1,
               "usage": {"input": 11, "output": 5, "cost_micros": 21}, "tool_calls": []}),
        "{kind}"
    );
    assert!(!out.to_string().contains("127.0.0.1"), "a guest never sees the provider's URL");

    // The same as a stream: pieces join to the text, usage is counted once.
    fake.push(counted("the quick brown fox"));
    let out = client(&rt, json!({"op": "stream", "route": "r", "prompt": "hi"})).await;
    let pieces: String = out["pieces"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert_eq!(pieces, "the quick brown fox", "{kind}: {out}");
    assert!(out["pieces"].as_array().unwrap().len() >= 2, "{kind}: streamed in pieces: {out}");
    assert_eq!(out["end"], Value::Null);
    assert_eq!(out["usage"], json!({"input": 11, "output": 5, "cost_micros": 21}), "{kind}");
    assert_eq!(out["response"]["text"], "the quick brown fox");
    assert_eq!(out["response"]["attempts"], 1);

    // Tool calls, whole and streamed.
    for op in ["complete", "stream"] {
        fake.push(Behavior::Reply(Reply {
            text: Some(String::new()),
            tool_calls: vec![FakeToolCall::new("weather", r#"{"city":"Oslo"}"#)],
            finish: Finish::ToolCalls,
            ..Default::default()
        }));
        let tools = json!([{"name": "weather", "description": "Weather by city", "parameters": r#"{"type":"object","properties":{"city":{"type":"string"}}}"#}]);
        let out = client(&rt, json!({"op": op, "route": "r", "prompt": "weather?", "tools": tools})).await;
        let response = if op == "complete" { &out["ok"] } else { &out["response"] };
        let call = &response["tool_calls"][0];
        assert_eq!(call["name"], "weather", "{kind} {op}: {out}");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({"city": "Oslo"}), "{kind} {op}");
        assert_eq!(response["finish"], "tool-calls", "{kind} {op}");
    }
    let sent = fake.requests().last().unwrap().body.to_string();
    assert!(sent.contains("Weather by city"), "{kind}: tools reach the provider: {sent}");

    // A stream that breaks after pieces reached the agent ends with an error.
    fake.push(Behavior::Fault(Fault::CutStream { after_chunks: 1 }));
    let out = client(&rt, json!({"op": "stream", "route": "r", "prompt": "hi"})).await;
    assert_eq!(out["pieces"].as_array().unwrap().len(), 1, "{kind}: {out}");
    assert_eq!(out["end"]["kind"], "unavailable", "{kind}: {out}");
    assert_eq!(out["response"], Value::Null);

    // Each error class, as the agent sees it.
    for (fault, wit_kind, text) in expected_errors(kind) {
        fake.push(Behavior::Fault(fault));
        let out = client(&rt, json!({"op": "complete", "route": "r", "prompt": "hi"})).await;
        assert_eq!(out["error"]["kind"], wit_kind, "{kind} {fault:?}: {out}");
        let message = out["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{kind} {fault:?}: {message:?} lacks {text:?}");
    }
}

#[tokio::test]
async fn openai_adapter_speaks_the_chat_completions_format() {
    conformance("openai").await;
}

#[tokio::test]
async fn anthropic_adapter_speaks_the_messages_format() {
    conformance("anthropic").await;
}

#[tokio::test]
async fn gemini_adapter_speaks_the_generate_content_format() {
    conformance("gemini").await;
}

#[tokio::test]
async fn ollama_adapter_speaks_the_api_chat_format() {
    conformance("ollama").await;
}

#[tokio::test]
async fn error_events_after_a_200_end_the_stream_as_unavailable() {
    for kind in ["openai", "anthropic", "gemini", "ollama"] {
        let fake = FakeProvider::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = host_for(dir.path(), kind, &fake, "");
        fake.push(Behavior::Fault(Fault::ErrorEventAfterOk));
        let out = client(&rt, json!({"op": "stream", "route": "r", "prompt": "hi"})).await;
        assert_eq!(out["end"]["kind"], "unavailable", "{kind}: {out}");
        assert!(!out["pieces"].as_array().unwrap().is_empty(), "{kind}: {out}");
    }
}

#[tokio::test]
async fn embeddings_come_back_one_vector_per_input() {
    for kind in ["openai", "gemini", "ollama"] {
        let fake = FakeProvider::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let rt = host_for(dir.path(), kind, &fake, "");
        let out = client(&rt, json!({"op": "embed", "route": "e", "inputs": ["a", "b", "c"]})).await;
        let vectors = out["ok"].as_array().unwrap_or_else(|| panic!("{kind}: {out}"));
        assert_eq!(vectors.len(), 3, "{kind}");
        assert!(vectors.iter().all(|v| !v.as_array().unwrap().is_empty()), "{kind}");
    }
}

#[tokio::test]
async fn keys_reach_the_provider_in_its_own_header_and_nowhere_else() {
    let cases = [
        ("openai", "", "authorization", "Bearer sk-test-123"),
        ("openai", "key-header = \"api-key\"\n", "api-key", "sk-test-123"),
        ("anthropic", "", "x-api-key", "sk-test-123"),
        ("gemini", "", "x-goog-api-key", "sk-test-123"),
    ];
    for (kind, extra, header, value) in cases {
        let fake = FakeProvider::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_secrets(dir.path());
        plugin(dir.path(), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\"]\n");
        // Continues the [host] table the helper opens.
        let toml = format!(
            "secrets = \"secrets.toml\"\n{}{extra}api-key-secret = \"main\"\n[routes.r]\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n",
            fake_provider("p", kind, &fake)
        );
        let rt = runtime_with_plugins(dir.path(), &toml);
        let out = client(&rt, json!({"op": "complete", "route": "r"})).await;
        assert!(!out.to_string().contains("sk-test"), "{out}");
        let seen = &fake.requests()[0].headers;
        assert!(seen.iter().any(|(k, v)| k == header && v == value), "{kind}: {seen:?}");
        assert!(format!("{:?}", rt.settings().gateway).contains("***"), "the key is masked in Debug output");
        assert!(!format!("{:?}", rt.settings().gateway).contains("sk-test-123"));
    }
}

#[tokio::test]
async fn a_route_the_manifest_does_not_ask_for_is_denied_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"fast\"]\n");
    let rt = runtime_with_plugins(dir.path(), "");
    let out = client(&rt, json!({"op": "complete", "route": "smart"})).await;
    assert_eq!(
        out["error"],
        json!({"kind": "denied", "message": "route \"smart\" is not granted to agent \"client\" (its manifest's capabilities.routes: fast)"})
    );
    let out = client(&rt, json!({"op": "embed", "route": "vectors"})).await;
    assert_eq!(out["error"]["kind"], "denied");
}

#[tokio::test]
async fn a_granted_route_the_operator_did_not_configure_answers_no_route_named() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"smart\"]\n");
    let toml = format!(
        "{}[routes.r]\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n",
        fake_provider("p", "openai", &fake)
    );
    let rt = runtime_with_plugins(dir.path(), &toml);
    let out = client(&rt, json!({"op": "complete", "route": "smart"})).await;
    assert_eq!(out["error"], json!({"kind": "denied", "message": "no route named \"smart\""}));
}

#[tokio::test]
async fn hello_gets_a_labelled_simulated_fact_on_the_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "hello", guests::HELLO, "[capabilities]\nroutes = [\"fast\"]\n");
    let rt = runtime_with_plugins(dir.path(), "");
    let out = output_json(&run(&rt, "hello", r#"{"name":"ada"}"#).await);
    assert_eq!(out["greeting"], "Hello, ada!");
    assert_eq!(out["fun_fact"]["error"], Value::Null, "{out}");
    assert_eq!(
        (out["fun_fact"]["provider"].as_str(), out["fun_fact"]["model"].as_str()),
        (Some("simulated"), Some("sim-fast"))
    );
    let text = out["fun_fact"]["text"].as_str().unwrap();
    assert!(text.starts_with("[simulated] "), "{text}");
    // Deterministic: the same prompt gives the same reply.
    let again = output_json(&run(&rt, "hello", r#"{"name":"ada"}"#).await);
    assert_eq!(again["fun_fact"]["text"], text);
}

#[tokio::test]
async fn a_stream_dropped_early_is_still_recorded_once() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rt = host_for(dir.path(), "openai", &fake, "");
    fake.push(Behavior::Reply(Reply { text: Some("a b c d e f".into()), chunks: 6, ..Default::default() }));
    let out = client(&rt, json!({"op": "stream", "route": "r", "drop_after": 2})).await;
    assert_eq!(out["pieces"].as_array().unwrap().len(), 2);
    let metrics = rt.gateway().metrics().render();
    assert!(metrics.contains("paddock_llm_calls_total{route=\"r\",outcome=\"cancelled\"} 1"), "{metrics}");
}

/// A listener on 127.0.0.1 that counts the connections made to it and
/// answers each with `answer`; its base URL and the count.
async fn answering(answer: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = stream.read(&mut buf).await;
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_provider_that_redirects_is_not_followed_so_its_key_never_reaches_another_host() {
    let (elsewhere, reached) = answering("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".into()).await;
    let redirect = format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/v1/messages\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    let (provider, asked) = answering(redirect).await;
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    plugin(dir.path(), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\"]\n");
    let toml = format!(
        "secrets = \"secrets.toml\"\n[providers.p]\nkind = \"anthropic\"\nbase-url = {provider:?}\napi-key-secret = \"main\"\n\
         [routes.r]\nretries = 0\ntargets = [{{ provider = \"p\", model = \"m\" }}]\n"
    );
    let rt = runtime_with_plugins(dir.path(), &toml);
    let out = client(&rt, json!({"op": "complete", "route": "r"})).await;
    let message = format!(
        "p/m: invalid-request (HTTP 307): redirected to {elsewhere}/v1/messages, which the gateway does not follow: \
         set the provider's base-url to where it points"
    );
    assert_eq!(out["error"], json!({"kind": "invalid-request", "message": message}));
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1, "one attempt at the provider");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "nothing sent where it pointed");
}
