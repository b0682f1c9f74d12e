use paddock_fake_provider::{Behavior, FakeProvider, FakeToolCall, Fault, Finish, RateLimitHeaders, Reply, RetryAfter};
use serde_json::{Value, json};

use crate::util::{post, sse, user};

fn messages(provider: &FakeProvider) -> String {
    format!("{}/v1/messages", provider.url())
}

#[tokio::test]
async fn plain_reply_is_a_message_with_content_blocks_and_usage() {
    let provider = FakeProvider::start().await.unwrap();
    let request =
        json!({"model": "claude-x", "max_tokens": 100, "system": "be brief", "messages": user("hello there")});
    let read = post(&messages(&provider), &request).await;
    assert_eq!((read.status, read.content_type()), (200, "application/json"));
    let body = read.json();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-x");
    assert!(body["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(body["content"], json!([{"type": "text", "text": "fake reply to: hello there"}]));
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["stop_sequence"].is_null());
    assert_eq!(body["usage"]["input_tokens"], 4);
    assert_eq!(body["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn stream_sends_the_real_event_sequence_with_cumulative_usage() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply { chunks: 2, output_tokens: Some(42), ..Reply::text("Hello world") }));
    let read = post(&messages(&provider), &json!({"messages": user("hi"), "stream": true})).await;
    assert_eq!(read.content_type(), "text/event-stream; charset=utf-8");
    let events = sse(&read.text());
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let data: Vec<Value> = events.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    for (event, data) in events.iter().zip(&data) {
        assert_eq!(data["type"], event.event.as_deref().unwrap(), "the data's type names its event");
    }
    let message = &data[0]["message"];
    assert_eq!((message["content"].clone(), message["stop_reason"].clone()), (json!([]), Value::Null));
    assert_eq!(
        (message["usage"]["input_tokens"].as_u64(), message["usage"]["output_tokens"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(data[1]["content_block"], json!({"type": "text", "text": ""}));
    let text: String = data[3..5].iter().map(|d| d["delta"]["text"].as_str().unwrap()).collect();
    assert_eq!(text, "Hello world");
    assert_eq!(data[3]["delta"]["type"], "text_delta");
    assert_eq!(data[6]["delta"]["stop_reason"], "end_turn");
    assert_eq!(data[6]["usage"]["output_tokens"], 42);
}

#[tokio::test]
async fn tool_use_streams_as_input_json_deltas_in_its_own_block() {
    let provider = FakeProvider::start().await.unwrap();
    let reply = Reply {
        text: Some("Let me check.".into()),
        tool_calls: vec![FakeToolCall::new("get_weather", r#"{"city": "Paris"}"#)],
        finish: Finish::ToolCalls,
        ..Reply::default()
    };
    provider.push_many([Behavior::Reply(reply.clone()), Behavior::Reply(reply)]);

    let body = post(&messages(&provider), &json!({"messages": user("weather")})).await.json();
    assert_eq!(body["stop_reason"], "tool_use");
    assert_eq!(body["content"][0], json!({"type": "text", "text": "Let me check."}));
    assert_eq!(body["content"][1]["type"], "tool_use");
    assert_eq!(body["content"][1]["input"], json!({"city": "Paris"}));
    assert!(body["content"][1]["id"].as_str().unwrap().starts_with("toolu_"));

    let read = post(&messages(&provider), &json!({"messages": user("weather"), "stream": true})).await;
    let data: Vec<Value> = sse(&read.text()).iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
    let tool_start = data.iter().find(|d| d["content_block"]["type"] == "tool_use").expect("a tool_use block");
    assert_eq!(tool_start["index"], 1);
    assert_eq!(tool_start["content_block"]["input"], json!({}));
    assert_eq!(tool_start["content_block"]["name"], "get_weather");
    let partial: String = data
        .iter()
        .filter(|d| d["delta"]["type"] == "input_json_delta" && d["index"] == 1)
        .map(|d| d["delta"]["partial_json"].as_str().unwrap())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), json!({"city": "Paris"}));
    let stops: Vec<u64> =
        data.iter().filter(|d| d["type"] == "content_block_stop").map(|d| d["index"].as_u64().unwrap()).collect();
    assert_eq!(stops, [0, 1]);
    assert_eq!(data[data.len() - 2]["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn stop_sequence_reports_the_request_s_sequence() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Reply(Reply { finish: Finish::StopSequence, ..Reply::text("done") }));
    let body = post(&messages(&provider), &json!({"messages": user("hi"), "stop_sequences": ["END"]})).await.json();
    assert_eq!((body["stop_reason"].as_str(), body["stop_sequence"].as_str()), (Some("stop_sequence"), Some("END")));
}

#[tokio::test]
async fn faults_answer_with_anthropic_error_types() {
    let provider = FakeProvider::start().await.unwrap();
    let cases = [
        (Fault::Status { code: 529 }, 529, "overloaded_error"),
        (Fault::Status { code: 500 }, 500, "api_error"),
        (Fault::Status { code: 413 }, 413, "request_too_large"),
        (Fault::RateLimited { retry_after: RetryAfter::Seconds(3) }, 429, "rate_limit_error"),
        (Fault::InsufficientQuota, 400, "invalid_request_error"),
        (Fault::SpendLimit, 400, "invalid_request_error"),
        (Fault::InvalidRequest, 400, "invalid_request_error"),
        (Fault::Unauthorized, 401, "authentication_error"),
        (Fault::ContentFilter, 400, "invalid_request_error"),
    ];
    for (fault, status, kind) in cases {
        provider.push(Behavior::Fault(fault));
        let read = post(&messages(&provider), &json!({"messages": user("hi"), "stream": true})).await;
        assert_eq!((read.status, read.content_type()), (status, "application/json"), "{fault:?}");
        let body = read.json();
        assert_eq!(body["type"], "error", "{fault:?}");
        assert_eq!(body["error"]["type"], kind, "{fault:?}");
        assert!(body["request_id"].as_str().unwrap().starts_with("req_"));
        let message = body["error"]["message"].as_str().unwrap();
        match fault {
            Fault::InsufficientQuota => assert!(message.contains("credit balance is too low"), "{message}"),
            Fault::SpendLimit => assert!(message.contains("specified API usage limits"), "{message}"),
            Fault::ContentFilter => assert!(message.contains("content filtering policy"), "{message}"),
            Fault::RateLimited { .. } => assert_eq!(read.header("retry-after"), Some("3")),
            _ => {}
        }
    }
}

#[tokio::test]
async fn rate_limit_headers_use_anthropic_names_and_rfc3339_resets() {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_rate_limit(Some(RateLimitHeaders { reset_ms: 90_000, ..RateLimitHeaders::default() }));
    let read = post(&messages(&provider), &json!({"messages": user("hi")})).await;
    assert_eq!(read.header("anthropic-ratelimit-requests-limit"), Some("500"));
    assert_eq!(read.header("anthropic-ratelimit-requests-remaining"), Some("499"));
    assert_eq!(read.header("anthropic-ratelimit-tokens-limit"), Some("30000"));
    assert_eq!(read.header("anthropic-ratelimit-tokens-remaining"), Some("29000"));
    assert_eq!(read.header("x-ratelimit-limit-requests"), None);
    let reset = read.header("anthropic-ratelimit-requests-reset").unwrap();
    assert_eq!(read.header("anthropic-ratelimit-tokens-reset"), Some(reset));
    let bytes = reset.as_bytes();
    assert_eq!(reset.len(), 20, "{reset}");
    assert!(
        bytes[4] == b'-' && bytes[7] == b'-' && bytes[10] == b'T' && bytes[13] == b':' && bytes[19] == b'Z',
        "{reset}"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ahead = unix_seconds(reset) - now;
    assert!((89..=91).contains(&ahead), "{reset} is {ahead}s ahead");
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (Howard Hinnant's `days_from_civil`).
fn unix_seconds(time: &str) -> u64 {
    let field = |range: std::ops::Range<usize>| time[range].parse::<u64>().unwrap();
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + field(17..19)
}
