use paddock_fake_provider::{Behavior, FakeProvider, FakeToolCall, Fault, Finish, RateLimitHeaders, Reply, RetryAfter};
use serde_json::json;

use crate::util::{post, sse, sse_json, user};

fn chat(provider: &FakeProvider) -> String {
    format!("{}/v1/chat/completions", provider.url())
}

#[tokio::test]
async fn plain_reply_is_a_chat_completion_quoting_the_last_user_message() {
    let provider = FakeProvider::start().await.unwrap();
    let read =
        post(&chat(&provider), &json!({"model": "gpt-4o", "messages": user("what is the capital of France")})).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.content_type(), "application/json");
    let body = read.json();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "gpt-4o");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "fake reply to: what is the capital of France");
    assert_eq!(choice["finish_reason"], "stop");
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(body["usage"], json!({"prompt_tokens": 6, "completion_tokens": 9, "total_tokens": 15}));
}

#[tokio::test]
async fn stream_is_sse_chunks_ending_in_done_with_a_usage_chunk_when_asked() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply { chunks: 3, ..Reply::text("one two three four five six") }));
    let request = json!({"messages": user("hi"), "stream": true, "stream_options": {"include_usage": true}});
    let read = post(&chat(&provider), &request).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.content_type(), "text/event-stream; charset=utf-8");
    let text = read.text();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let events = sse(&text);
    let chunks: Vec<_> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(&e.data).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: Vec<&str> = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content.concat(), "one two three four five six");
    assert_eq!(content.iter().filter(|c| !c.is_empty()).count(), 3);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null() && finish.get("usage").is_some(), "usage is null until the last chunk");
    let last = &chunks[chunks.len() - 1];
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], json!({"prompt_tokens": 1, "completion_tokens": 6, "total_tokens": 7}));
}

#[tokio::test]
async fn without_include_usage_chunks_have_no_usage_field() {
    let provider = FakeProvider::start().await.unwrap();
    let read = post(&chat(&provider), &json!({"messages": user("hi"), "stream": true})).await;
    let events = sse(&read.text());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks = sse_json(&read.text().replace("data: [DONE]\n\n", ""));
    assert!(chunks.iter().all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
}

#[tokio::test]
async fn tool_calls_come_whole_or_as_indexed_deltas_that_reassemble() {
    let provider = FakeProvider::start().await.unwrap();
    let calls = [
        FakeToolCall::new("get_weather", r#"{"city":"Paris"}"#),
        FakeToolCall { id: Some("call_given".into()), ..FakeToolCall::new("get_time", r#"{"tz":"CET"}"#) },
    ];
    provider.push_many([Behavior::Reply(Reply::tool_calls(calls.clone())), Behavior::Reply(Reply::tool_calls(calls))]);

    let body = post(&chat(&provider), &json!({"messages": user("weather?")})).await.json();
    let message = &body["choices"][0]["message"];
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert!(message["content"].is_null());
    assert_eq!(message["tool_calls"][0]["type"], "function");
    assert_eq!(
        message["tool_calls"][0]["function"],
        json!({"name": "get_weather", "arguments": r#"{"city":"Paris"}"#})
    );
    assert!(message["tool_calls"][0]["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(message["tool_calls"][1]["id"], "call_given");

    let read = post(&chat(&provider), &json!({"messages": user("weather?"), "stream": true})).await;
    let text = read.text();
    let chunks = sse_json(text.strip_suffix("data: [DONE]\n\n").unwrap());
    let mut assembled = vec![(String::new(), String::new(), String::new()); 2];
    for delta in chunks.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array()) {
        let i = delta[0]["index"].as_u64().unwrap() as usize;
        if let Some(id) = delta[0]["id"].as_str() {
            assembled[i].0 = id.to_owned();
        }
        if let Some(name) = delta[0]["function"]["name"].as_str() {
            assembled[i].1 = name.to_owned();
        }
        assembled[i].2 += delta[0]["function"]["arguments"].as_str().unwrap();
    }
    assert_eq!(assembled[0].1, "get_weather");
    assert_eq!(assembled[0].2, r#"{"city":"Paris"}"#);
    assert_eq!((assembled[1].0.as_str(), assembled[1].2.as_str()), ("call_given", r#"{"tz":"CET"}"#));
    assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn a_token_cap_cuts_the_text_and_finishes_with_length() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_default(Behavior::Reply(Reply::text("a b c d e f")));
    let body = post(&chat(&provider), &json!({"messages": user("hi"), "max_completion_tokens": 3})).await.json();
    assert_eq!(body["choices"][0]["message"]["content"], "a b c");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    let body = post(&chat(&provider), &json!({"messages": user("hi"), "max_tokens": 10})).await.json();
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    provider.set_default(Behavior::Reply(Reply { finish: Finish::ContentFilter, ..Reply::text("x") }));
    let body = post(&chat(&provider), &json!({"messages": user("hi")})).await.json();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
}

#[tokio::test]
async fn azure_and_self_hosted_prefixes_reach_the_same_handlers() {
    let provider = FakeProvider::start().await.unwrap();
    let url = format!("{}/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", provider.url());
    assert_eq!(post(&url, &json!({"messages": user("hi")})).await.json()["object"], "chat.completion");
    let url = format!("{}/openai/deployments/emb/embeddings?api-version=2024-10-21", provider.url());
    assert_eq!(post(&url, &json!({"input": "hi"})).await.json()["object"], "list");
    let requests = provider.requests();
    assert_eq!(requests[0].path, "/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
    let missing = post(&format!("{}/v2/unknown", provider.url()), &json!({})).await;
    assert_eq!(missing.status, 404);
    assert_eq!(provider.request_count(), 2, "a miss is not a provider request");
}

#[tokio::test]
async fn embeddings_are_stable_unit_vectors_as_floats_or_base64() {
    let provider = FakeProvider::start().await.unwrap();
    let url = format!("{}/v1/embeddings", provider.url());
    let body =
        post(&url, &json!({"model": "text-embedding-3-small", "input": ["hello world", "bye"], "dimensions": 4}))
            .await
            .json();
    assert_eq!(body["object"], "list");
    assert_eq!(body["model"], "text-embedding-3-small");
    assert_eq!(body["usage"], json!({"prompt_tokens": 3, "total_tokens": 3}));
    let first: Vec<f64> = serde_json::from_value(body["data"][0]["embedding"].clone()).unwrap();
    assert_eq!((body["data"][1]["index"].as_u64(), body["data"][0]["object"].as_str()), (Some(1), Some("embedding")));
    assert_eq!(first.len(), 4);
    assert!((first.iter().map(|v| v * v).sum::<f64>() - 1.0).abs() < 1e-4);
    let again = post(&url, &json!({"input": "hello world", "dimensions": 4})).await.json();
    assert_eq!(again["data"][0]["embedding"], body["data"][0]["embedding"]);
    let encoded =
        post(&url, &json!({"input": "hello world", "dimensions": 4, "encoding_format": "base64"})).await.json();
    assert_eq!(encoded["data"][0]["embedding"].as_str().unwrap().len(), 24, "16 bytes of f32 in base64");
}

#[tokio::test]
async fn faults_answer_with_openai_statuses_and_error_bodies() {
    let provider = FakeProvider::start().await.unwrap();
    let cases: Vec<(Fault, u16, serde_json::Value, Option<&str>)> = vec![
        (
            Fault::RateLimited { retry_after: RetryAfter::Seconds(7) },
            429,
            json!("rate_limit_exceeded"),
            Some("requests"),
        ),
        (Fault::InsufficientQuota, 429, json!("insufficient_quota"), Some("insufficient_quota")),
        (Fault::SpendLimit, 429, json!("billing_hard_limit_reached"), Some("insufficient_quota")),
        (Fault::InvalidRequest, 400, json!("invalid_value"), Some("invalid_request_error")),
        (Fault::Unauthorized, 401, json!("invalid_api_key"), Some("invalid_request_error")),
        (Fault::ContentFilter, 400, json!("content_filter"), None),
        (Fault::Status { code: 500 }, 500, json!(null), Some("server_error")),
        (Fault::Status { code: 502 }, 502, json!(502), Some("cf_bad_gateway")),
        (Fault::Status { code: 503 }, 503, json!(null), Some("server_error")),
    ];
    for (fault, status, code, kind) in cases {
        provider.push(Behavior::Fault(fault));
        let read = post(&chat(&provider), &json!({"messages": user("hi"), "stream": true})).await;
        assert_eq!(read.status, status, "{fault:?}");
        assert_eq!(read.content_type(), "application/json", "{fault:?}");
        let error = &read.json()["error"];
        assert_eq!(error["code"], code, "{fault:?}: {error}");
        assert_eq!(error["type"].as_str(), kind, "{fault:?}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{fault:?}");
    }
}

#[tokio::test]
async fn retry_hints_use_the_header_asked_for() {
    let provider = FakeProvider::start().await.unwrap();
    let rate_limited = |retry_after| Behavior::Fault(Fault::RateLimited { retry_after });
    provider.push_many([
        rate_limited(RetryAfter::Seconds(7)),
        rate_limited(RetryAfter::HttpDate { secs_from_now: 30 }),
        rate_limited(RetryAfter::Millis(1500)),
        rate_limited(RetryAfter::None),
    ]);
    let request = json!({"messages": user("hi")});
    let read = post(&chat(&provider), &request).await;
    assert_eq!(read.header("retry-after"), Some("7"));
    assert!(read.json()["error"]["message"].as_str().unwrap().contains("Please try again in 7s."));

    let read = post(&chat(&provider), &request).await;
    let date = httpdate::parse_http_date(read.header("retry-after").unwrap()).expect("an IMF-fixdate");
    let ahead = date.duration_since(std::time::SystemTime::now()).unwrap().as_secs();
    assert!((28..=30).contains(&ahead), "{ahead}s ahead");

    let read = post(&chat(&provider), &request).await;
    assert_eq!((read.header("retry-after-ms"), read.header("retry-after")), (Some("1500"), None));

    let read = post(&chat(&provider), &request).await;
    assert_eq!((read.status, read.header("retry-after"), read.header("retry-after-ms")), (429, None, None));
}

#[tokio::test]
async fn rate_limit_headers_use_openai_names_and_go_durations() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_rate_limit(Some(RateLimitHeaders {
        limit_requests: 500,
        remaining_requests: 499,
        limit_tokens: 30_000,
        remaining_tokens: 29_000,
        reset_ms: 360_000,
    }));
    provider.push(Behavior::Fault(Fault::RateLimited { retry_after: RetryAfter::None }));
    for status in [429, 200] {
        let read = post(&chat(&provider), &json!({"messages": user("hi")})).await;
        assert_eq!(read.status, status);
        assert_eq!(read.header("x-ratelimit-limit-requests"), Some("500"));
        assert_eq!(read.header("x-ratelimit-remaining-requests"), Some("499"));
        assert_eq!(read.header("x-ratelimit-limit-tokens"), Some("30000"));
        assert_eq!(read.header("x-ratelimit-remaining-tokens"), Some("29000"));
        assert_eq!(read.header("x-ratelimit-reset-requests"), Some("6m0s"));
        assert_eq!(read.header("x-ratelimit-reset-tokens"), Some("6m0s"));
        assert_eq!(read.header("anthropic-ratelimit-requests-limit"), None);
    }
    provider.set_rate_limit(None);
    let read = post(&chat(&provider), &json!({"messages": user("hi")})).await;
    assert_eq!(read.header("x-ratelimit-limit-requests"), None);
}
