use paddock_fake_provider::{
    Behavior, Dialect, FakeProvider, FakeToolCall, Fault, RateLimitHeaders, Reply, RetryAfter,
};
use serde_json::{Value, json};

use crate::util::{client, post, sse_json};

fn url(provider: &FakeProvider, method: &str) -> String {
    format!("{}/v1beta/models/gemini-2.0-flash:{method}", provider.url())
}

fn contents(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}], "systemInstruction": {"parts": [{"text": "be kind"}]}})
}

#[tokio::test]
async fn generate_content_returns_a_candidate_with_usage_metadata() {
    let provider = FakeProvider::start().await.unwrap();
    let read = post(&url(&provider, "generateContent"), &contents("tell me a joke")).await;
    assert_eq!((read.status, read.content_type()), (200, "application/json; charset=UTF-8"));
    let body = read.json();
    let candidate = &body["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(candidate["content"]["parts"], json!([{"text": "fake reply to: tell me a joke"}]));
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(body["usageMetadata"], json!({"promptTokenCount": 6, "candidatesTokenCount": 7, "totalTokenCount": 13}));
    assert_eq!(body["modelVersion"], "gemini-2.0-flash");
}

#[tokio::test]
async fn sse_stream_uses_crlf_events_with_cumulative_usage_and_a_final_finish() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply { chunks: 4, output_tokens: Some(8), ..Reply::text("abcdefgh") }));
    let read = post(&url(&provider, "streamGenerateContent?alt=sse"), &contents("hi")).await;
    assert_eq!(read.content_type(), "text/event-stream");
    let text = read.text();
    assert!(text.starts_with("data: {") && text.ends_with("}\r\n\r\n"), "{text:?}");
    let events = sse_json(&text);
    assert_eq!(events.len(), 5);
    let streamed: String =
        events.iter().map(|e| e["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(streamed, "abcdefgh");
    let counts: Vec<u64> =
        events.iter().map(|e| e["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap()).collect();
    assert_eq!(counts, [2, 4, 6, 8, 8]);
    assert!(events.iter().all(|e| e["usageMetadata"]["promptTokenCount"] == 3));
    assert!(events[..4].iter().all(|e| e["candidates"][0].get("finishReason").is_none()));
    assert_eq!(events[4]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_streamed_json_array() {
    let provider = FakeProvider::start().await.unwrap();
    let read = post(&url(&provider, "streamGenerateContent"), &contents("hi")).await;
    assert_eq!(read.content_type(), "application/json; charset=UTF-8");
    let array = read.json();
    let items = array.as_array().expect("a JSON array");
    assert_eq!(items.len(), 5);
    assert_eq!(items[4]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn function_calls_are_parts_with_object_args() {
    let provider = FakeProvider::start().await.unwrap();
    let reply = Reply::tool_calls([FakeToolCall::new("lookup", r#"{"q": "rust"}"#)]);
    provider.push_many([Behavior::Reply(reply.clone()), Behavior::Reply(reply)]);
    let body = post(&url(&provider, "generateContent"), &contents("search")).await.json();
    assert_eq!(
        body["candidates"][0]["content"]["parts"],
        json!([{"functionCall": {"name": "lookup", "args": {"q": "rust"}}}])
    );
    assert_eq!(body["candidates"][0]["finishReason"], "STOP");
    let events = sse_json(&post(&url(&provider, "streamGenerateContent?alt=sse"), &contents("search")).await.text());
    assert_eq!(events[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"], json!({"q": "rust"}));
}

#[tokio::test]
async fn quota_faults_carry_retry_info_and_quota_failure_details() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push_many([
        Behavior::Fault(Fault::RateLimited { retry_after: RetryAfter::GeminiRetryInfo { secs: 17 } }),
        Behavior::Fault(Fault::InsufficientQuota),
    ]);
    let read = post(&url(&provider, "generateContent"), &contents("hi")).await;
    assert_eq!(read.status, 429);
    assert_eq!(read.header("retry-after"), None);
    let error = &read.json()["error"];
    assert_eq!((error["code"].as_u64(), error["status"].as_str()), (Some(429), Some("RESOURCE_EXHAUSTED")));
    let details = error["details"].as_array().unwrap();
    let retry = details.iter().find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo").unwrap();
    assert_eq!(retry["retryDelay"], "17s");

    let read = post(&url(&provider, "generateContent"), &contents("hi")).await;
    assert_eq!(read.status, 429);
    let details = read.json()["error"]["details"].clone();
    let quota = details
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure")
        .unwrap();
    assert_eq!(quota["violations"][0]["quotaId"], "GenerateRequestsPerDayPerProjectPerModel-FreeTier");
    assert_eq!(quota["violations"][0]["quotaDimensions"]["model"], "gemini-2.0-flash");
}

#[tokio::test]
async fn other_faults_use_google_status_names() {
    let provider = FakeProvider::start().await.unwrap();
    let cases = [
        (Fault::Status { code: 500 }, 500, "INTERNAL"),
        (Fault::Status { code: 503 }, 503, "UNAVAILABLE"),
        (Fault::InvalidRequest, 400, "INVALID_ARGUMENT"),
        (Fault::Unauthorized, 400, "INVALID_ARGUMENT"),
        (Fault::SpendLimit, 429, "RESOURCE_EXHAUSTED"),
    ];
    for (fault, status, name) in cases {
        provider.push(Behavior::Fault(fault));
        let read = post(&url(&provider, "streamGenerateContent?alt=sse"), &contents("hi")).await;
        assert_eq!(read.status, status, "{fault:?}");
        let error = &read.json()["error"];
        assert_eq!(
            (error["code"].as_u64(), error["status"].as_str()),
            (Some(u64::from(status)), Some(name)),
            "{fault:?}"
        );
        if fault == Fault::Unauthorized {
            assert_eq!(error["details"][0]["reason"], "API_KEY_INVALID");
        }
    }
}

#[tokio::test]
async fn a_blocked_prompt_is_a_200_with_prompt_feedback_and_no_candidates() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push_many([Behavior::Fault(Fault::ContentFilter), Behavior::Fault(Fault::ContentFilter)]);
    let read = post(&url(&provider, "generateContent"), &contents("hi")).await;
    assert_eq!(read.status, 200);
    let body = read.json();
    assert_eq!(body["promptFeedback"]["blockReason"], "SAFETY");
    assert!(body.get("candidates").is_none());
    let read = post(&url(&provider, "streamGenerateContent?alt=sse"), &contents("hi")).await;
    assert_eq!((read.status, read.content_type()), (200, "text/event-stream"));
    assert_eq!(sse_json(&read.text())[0]["promptFeedback"]["blockReason"], "SAFETY");
}

#[tokio::test]
async fn unknown_methods_are_404_and_leave_the_script_alone() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Fault(Fault::Unauthorized));
    let read = post(&url(&provider, "countTokens"), &contents("hi")).await;
    assert_eq!((read.status, read.json()["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
    assert_eq!(provider.request_count(), 0);
    assert_eq!(post(&url(&provider, "generateContent"), &contents("hi")).await.status, 400);
}

#[tokio::test]
async fn embeddings_single_and_batch() {
    let provider = FakeProvider::start().await.unwrap();
    let single = json!({"content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3});
    let body = post(&url(&provider, "embedContent"), &single).await.json();
    assert_eq!(body["embedding"]["values"].as_array().unwrap().len(), 3);
    let batch = json!({"requests": [
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "hello"}]}, "outputDimensionality": 3},
        {"model": "models/text-embedding-004", "content": {"parts": [{"text": "other"}]}},
    ]});
    let body = post(&url(&provider, "batchEmbedContents"), &batch).await.json();
    let embeddings = body["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(
        embeddings[0]["values"],
        json!(post(&url(&provider, "embedContent"), &single).await.json()["embedding"]["values"])
    );
    assert_eq!(embeddings[1]["values"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn api_keys_are_recorded_and_no_rate_limit_headers_are_sent() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_rate_limit(Some(RateLimitHeaders::default()));
    let response = client()
        .post(url(&provider, "generateContent?key=k-query"))
        .header("x-goog-api-key", "k-header")
        .json(&contents("hi"))
        .send()
        .await
        .unwrap();
    assert!(response.headers().keys().all(|name| !name.as_str().contains("ratelimit")));
    let recorded = &provider.requests()[0];
    assert_eq!(recorded.dialect, Dialect::Gemini);
    assert_eq!(recorded.header("x-goog-api-key"), Some("k-header"));
    assert!(recorded.path.ends_with(":generateContent?key=k-query"));
    assert!(!recorded.stream);
}
