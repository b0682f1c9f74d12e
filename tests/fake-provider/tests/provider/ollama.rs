use paddock_fake_provider::{Behavior, FakeProvider, FakeToolCall, Fault, RateLimitHeaders, Reply};
use serde_json::json;

use crate::util::{ndjson, post, user};

fn chat(provider: &FakeProvider) -> String {
    format!("{}/api/chat", provider.url())
}

#[tokio::test]
async fn chat_streams_ndjson_by_default_and_ends_with_done_and_counts() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_rate_limit(Some(RateLimitHeaders::default()));
    let read = post(&chat(&provider), &json!({"model": "llama3.2", "messages": user("why is the sky blue")})).await;
    assert_eq!((read.status, read.content_type()), (200, "application/x-ndjson"));
    assert!(read.headers.keys().all(|name| !name.as_str().contains("ratelimit")));
    let lines = ndjson(&read.text());
    let (last, partial) = lines.split_last().unwrap();
    assert_eq!(partial.len(), 4);
    assert!(
        partial.iter().all(|l| l["done"] == false && l["model"] == "llama3.2" && l["message"]["role"] == "assistant")
    );
    let text: String = partial.iter().map(|l| l["message"]["content"].as_str().unwrap()).collect();
    assert_eq!(text, "fake reply to: why is the sky blue");
    assert_eq!(last["done"], true);
    assert_eq!(last["done_reason"], "stop");
    assert_eq!(last["message"]["content"], "");
    assert_eq!((last["prompt_eval_count"].as_u64(), last["eval_count"].as_u64()), (Some(5), Some(8)));
    assert!(last["total_duration"].as_u64().unwrap() > 0);
    let created = last["created_at"].as_str().unwrap();
    assert!(created.len() == 30 && created.ends_with('Z') && &created[10..11] == "T", "{created}");
}

#[tokio::test]
async fn stream_false_returns_the_final_object_with_the_whole_message() {
    let provider = FakeProvider::start().await.unwrap();
    let request = json!({"messages": user("hi"), "stream": false, "options": {"num_predict": 2}});
    let read = post(&chat(&provider), &request).await;
    assert_eq!(read.content_type(), "application/json; charset=utf-8");
    let body = read.json();
    assert_eq!(body["done"], true);
    assert_eq!(body["message"]["content"], "fake reply");
    assert_eq!(body["done_reason"], "length");
    assert_eq!(body["model"], "llama3.2");
}

#[tokio::test]
async fn tool_calls_have_object_arguments() {
    let provider = FakeProvider::start().await.unwrap();
    let reply = Reply::tool_calls([FakeToolCall::new("get_weather", r#"{"city":"Tokyo"}"#)]);
    provider.push_many([Behavior::Reply(reply.clone()), Behavior::Reply(reply)]);
    let body = post(&chat(&provider), &json!({"messages": user("hi"), "stream": false})).await.json();
    assert_eq!(
        body["message"]["tool_calls"],
        json!([{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}])
    );
    let lines = ndjson(&post(&chat(&provider), &json!({"messages": user("hi")})).await.text());
    assert_eq!(lines[0]["message"]["tool_calls"][0]["function"]["arguments"], json!({"city": "Tokyo"}));
    assert_eq!(lines[0]["message"]["content"], "");
}

#[tokio::test]
async fn errors_are_an_error_string_with_a_status() {
    let provider = FakeProvider::start().await.unwrap();
    let cases = [
        (Fault::Status { code: 404 }, 404, "model \"qwen\" not found, try pulling it first"),
        (Fault::Status { code: 503 }, 503, "server busy, please try again.  maximum pending requests exceeded"),
        (Fault::InsufficientQuota, 402, ""),
        (Fault::Unauthorized, 401, "unauthorized"),
        (Fault::InvalidRequest, 400, "model is required"),
    ];
    for (fault, status, message) in cases {
        provider.push(Behavior::Fault(fault));
        let read = post(&chat(&provider), &json!({"model": "qwen", "messages": user("hi")})).await;
        assert_eq!(read.status, status, "{fault:?}");
        let error = read.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message) && !error.is_empty(), "{fault:?}: {error}");
    }
}

#[tokio::test]
async fn embed_returns_one_vector_per_input() {
    let provider = FakeProvider::start().await.unwrap();
    let body = post(&format!("{}/api/embed", provider.url()), &json!({"model": "all-minilm", "input": ["a", "b c"]}))
        .await
        .json();
    assert_eq!(body["model"], "all-minilm");
    assert_eq!(body["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(body["prompt_eval_count"], 3);
    assert!(!provider.requests()[0].stream, "embeddings never stream");
}
