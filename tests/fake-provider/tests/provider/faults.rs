//! Faults that shape a successful answer — stalls, cuts, malformed JSON,
//! late errors — in every dialect.

use std::time::{Duration, Instant};

use paddock_fake_provider::{Behavior, Dialect, FakeProvider, Fault, Reply};
use serde_json::{Value, json};

use crate::util::{Read, ndjson, post, sse, user};

const DIALECTS: [Dialect; 4] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini, Dialect::Ollama];

/// A streaming request in `dialect`.
async fn stream(provider: &FakeProvider, dialect: Dialect) -> Read {
    let base = provider.url();
    match dialect {
        Dialect::OpenAi => {
            post(&format!("{base}/v1/chat/completions"), &json!({"messages": user("hi"), "stream": true})).await
        }
        Dialect::Anthropic => {
            post(&format!("{base}/v1/messages"), &json!({"messages": user("hi"), "stream": true})).await
        }
        Dialect::Gemini => {
            let body = json!({"contents": [{"parts": [{"text": "hi"}]}]});
            post(&format!("{base}/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"), &body).await
        }
        Dialect::Ollama => post(&format!("{base}/api/chat"), &json!({"messages": user("hi")})).await,
    }
}

/// What a client of `dialect` makes of a (possibly partial) stream: the
/// text pieces, whether the terminator arrived, and the in-stream errors.
/// Objects that do not parse are counted, not fatal.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    pieces: Vec<String>,
    terminated: bool,
    errors: Vec<Value>,
    unparsable: usize,
}

fn seen(dialect: Dialect, text: &str) -> Seen {
    let mut seen = Seen::default();
    let objects: Vec<(Option<String>, String)> = match dialect {
        Dialect::Ollama => text.lines().map(|l| (None, l.to_owned())).collect(),
        _ => sse(text).into_iter().map(|e| (e.event, e.data)).collect(),
    };
    for (event, data) in objects {
        if data == "[DONE]" {
            seen.terminated = true;
            continue;
        }
        let Ok(value) = serde_json::from_str::<Value>(&data) else {
            seen.unparsable += 1;
            continue;
        };
        if value.get("error").is_some() || event.as_deref() == Some("error") {
            seen.errors.push(value);
            continue;
        }
        let piece = match dialect {
            Dialect::OpenAi => value["choices"][0]["delta"]["content"].as_str(),
            Dialect::Anthropic => value["delta"]["text"].as_str(),
            Dialect::Gemini => value["candidates"][0]["content"]["parts"][0]["text"].as_str(),
            Dialect::Ollama => value["message"]["content"].as_str(),
        };
        if let Some(piece) = piece.filter(|p| !p.is_empty()) {
            seen.pieces.push(piece.to_owned());
        }
        match dialect {
            Dialect::Anthropic if event.as_deref() == Some("message_stop") => seen.terminated = true,
            Dialect::Gemini if value["candidates"][0].get("finishReason").is_some() => seen.terminated = true,
            Dialect::Ollama if value["done"] == true => seen.terminated = true,
            _ => {}
        }
    }
    seen
}

fn pieces(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

/// A provider whose replies stream "abcdefgh" in four pieces.
async fn provider() -> FakeProvider {
    let provider = FakeProvider::start().await.unwrap();
    provider.set_default(Behavior::Reply(Reply { chunks: 4, ..Reply::text("abcdefgh") }));
    provider
}

/// A provider with `fault` scripted once per dialect.
async fn provider_with(fault: Fault) -> FakeProvider {
    let provider = provider().await;
    provider.push_many(DIALECTS.map(|_| Behavior::Fault(fault)));
    provider
}

#[tokio::test]
async fn a_plain_stream_ends_with_its_terminator_in_every_dialect() {
    let provider = provider().await;
    for dialect in DIALECTS {
        let read = stream(&provider, dialect).await;
        assert!(read.error.is_none(), "{dialect:?}");
        let seen = seen(dialect, &read.text());
        assert_eq!(
            seen,
            Seen { pieces: pieces(&["ab", "cd", "ef", "gh"]), terminated: true, ..Seen::default() },
            "{dialect:?}"
        );
    }
}

#[tokio::test]
async fn a_cut_stream_aborts_after_n_pieces_without_the_terminator() {
    let provider = provider_with(Fault::CutStream { after_chunks: 2 }).await;
    for dialect in DIALECTS {
        let read = stream(&provider, dialect).await;
        assert_eq!(read.status, 200);
        assert!(read.error.is_some(), "{dialect:?}: the client sees the body fail");
        let seen = seen(dialect, &read.text());
        assert_eq!(seen, Seen { pieces: pieces(&["ab", "cd"]), ..Seen::default() }, "{dialect:?}");
    }
}

#[tokio::test]
async fn a_cut_whole_body_is_half_the_json_then_an_error() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Fault(Fault::CutStream { after_chunks: 0 }));
    let read = post(&format!("{}/v1/messages", provider.url()), &json!({"messages": user("hi")})).await;
    assert_eq!(read.status, 200);
    assert!(read.error.is_some());
    let declared: usize = read.header("content-length").unwrap().parse().unwrap();
    assert_eq!(read.text().len(), declared / 2);
    assert!(serde_json::from_str::<Value>(&read.text()).is_err());
}

#[tokio::test]
async fn a_stall_mid_stream_holds_the_rest_back() {
    let provider = provider_with(Fault::StallMidStream { after_chunks: 1, ms: 250 }).await;
    for dialect in [Dialect::OpenAi, Dialect::Ollama] {
        let read = stream(&provider, dialect).await;
        let early: Vec<u8> = read
            .chunks
            .iter()
            .filter(|(at, _)| *at < Duration::from_millis(200))
            .flat_map(|(_, c)| c.clone())
            .collect();
        let early = seen(dialect, std::str::from_utf8(&early).unwrap());
        assert_eq!(early.pieces, pieces(&["ab"]), "{dialect:?}: one piece before the stall");
        assert!(read.chunks.last().unwrap().0 >= Duration::from_millis(250), "{dialect:?}");
        assert_eq!(seen(dialect, &read.text()).pieces.len(), 4, "{dialect:?}: then the rest");
    }
}

#[tokio::test]
async fn a_stall_before_the_first_byte_delays_the_headers() {
    let provider = FakeProvider::start().await.unwrap();
    provider.push(Behavior::Fault(Fault::StallBeforeFirstByte { ms: 250 }));
    let started = Instant::now();
    let read = post(&format!("{}/v1/chat/completions", provider.url()), &json!({"messages": user("hi")})).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(read.json()["object"], "chat.completion");
    provider.push(Behavior::Reply(Reply { first_byte_delay_ms: 200, ..Reply::default() }));
    let started = Instant::now();
    post(&format!("{}/api/chat", provider.url()), &json!({"messages": user("hi")})).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn malformed_json_breaks_one_event_or_the_whole_body() {
    let provider = provider_with(Fault::MalformedJson).await;
    for dialect in DIALECTS {
        let read = stream(&provider, dialect).await;
        let seen = seen(dialect, &read.text());
        assert_eq!(seen.unparsable, 1, "{dialect:?}");
        assert_eq!((seen.pieces.len(), seen.terminated), (4, true), "{dialect:?}");
    }
    provider.push(Behavior::Fault(Fault::MalformedJson));
    let read = post(&format!("{}/v1/chat/completions", provider.url()), &json!({"messages": user("hi")})).await;
    assert_eq!(read.status, 200);
    assert!(read.error.is_none());
    assert!(serde_json::from_str::<Value>(&read.text()).is_err());
    assert!(read.text().starts_with("{\"id\":\"chatcmpl-"));
}

#[tokio::test]
async fn an_error_after_a_good_start_arrives_in_the_dialect_s_shape() {
    let provider = provider_with(Fault::ErrorEventAfterOk).await;
    for dialect in DIALECTS {
        let read = stream(&provider, dialect).await;
        assert_eq!(read.status, 200);
        assert!(read.error.is_none(), "{dialect:?}: the body ends cleanly");
        let seen = seen(dialect, &read.text());
        assert_eq!(seen.pieces, pieces(&["ab", "cd"]), "{dialect:?}");
        assert!(!seen.terminated, "{dialect:?}");
        assert_eq!(seen.errors.len(), 1, "{dialect:?}");
        let error = &seen.errors[0];
        match dialect {
            Dialect::OpenAi => assert_eq!(error["error"]["type"], "server_error"),
            Dialect::Anthropic => assert_eq!(error["error"]["type"], "overloaded_error"),
            Dialect::Gemini => assert_eq!(error["error"]["status"], "INTERNAL"),
            Dialect::Ollama => assert!(error["error"].is_string()),
        }
    }
    provider.push(Behavior::Fault(Fault::ErrorEventAfterOk));
    let text = stream(&provider, Dialect::Anthropic).await.text();
    assert!(text.contains("event: error\ndata: {"), "{text}");
    provider.push(Behavior::Fault(Fault::ErrorEventAfterOk));
    let body = ndjson(
        &post(&format!("{}/api/chat", provider.url()), &json!({"messages": user("hi"), "stream": false})).await.text(),
    );
    assert!(body[0]["error"].is_string(), "without a stream, the error object is the 200 body");
}

#[tokio::test]
async fn shutdown_ends_a_stalled_stream_at_once() {
    let provider = provider_with(Fault::StallMidStream { after_chunks: 1, ms: 60_000 }).await;
    let url = provider.url();
    let reader = tokio::spawn(async move {
        let read = post(&format!("{url}/v1/chat/completions"), &json!({"messages": user("hi"), "stream": true})).await;
        (read.error.is_some(), read.text())
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    provider.shutdown().await;
    let (failed, text) = tokio::time::timeout(Duration::from_secs(2), reader).await.expect("the stream ended").unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(failed, "the client sees the stream fail");
    assert!(!text.contains("[DONE]"));
}
