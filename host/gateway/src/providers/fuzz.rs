//! Property tests of what providers send back: streams (framing and each
//! wire format's events), whole answers, error bodies and rate-limit
//! headers. Nothing a provider sends may panic the host, and a stream
//! decodes the same however the network cut it into chunks.

use super::{Decode, Framer, anthropic, gemini, ollama, openai};
use crate::error::ProviderError;
use crate::headroom::{self, Headroom};
use crate::types::Piece;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use std::time::{Duration, Instant, SystemTime};

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The wire formats that stream, by name (for messages).
const FORMATS: &[&str] = &["openai", "anthropic", "gemini", "ollama"];

fn decoder(format: &str) -> Box<dyn Decode> {
    match format {
        "openai" => Box::new(openai::Decoder::default()),
        "anthropic" => Box::new(anthropic::Decoder::default()),
        "gemini" => Box::new(gemini::Decoder::default()),
        _ => Box::new(ollama::Decoder::default()),
    }
}

/// A stream's outcome: the pieces decoded before the first error, and that error.
type Outcome = (Vec<Piece>, Option<ProviderError>);

/// Decodes `chunks` of a body in `format` as `Provider::stream` does: each
/// chunk framed, each frame decoded, the end checked.
fn decode<'a>(format: &str, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut decoder = decoder(format);
    let mut framer = Framer::new(decoder.framing());
    let mut pieces = Vec::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        let pushed = framer.push(chunk, &mut frames);
        for frame in frames.drain(..) {
            if let Err(e) = decoder.frame(frame, &mut pieces) {
                return (pieces, Some(e));
            }
        }
        if let Err(e) = pushed {
            return (pieces, Some(e));
        }
    }
    let finished = framer.finish(&mut frames);
    for frame in frames.drain(..) {
        if let Err(e) = decoder.frame(frame, &mut pieces) {
            return (pieces, Some(e));
        }
    }
    let end = finished.and_then(|()| decoder.end(&mut pieces));
    (pieces, end.err())
}

/// `body` cut at `cuts` (positions anywhere, even inside a character).
fn chunks<'a>(body: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
    at.sort_unstable();
    at.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([body.len()]) {
        out.push(&body[start..end]);
        start = end;
    }
    out
}

fn cuts() -> impl Strategy<Value = Vec<Index>> {
    prop::collection::vec(any::<Index>(), 0..12)
}

/// Strings a provider might send, odd ones among them.
fn words() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        1 => select(&["", "[DONE]", "data: x", "\n\n", "\r", "é🎉", "{\"a\":", "STOP", "SAFETY", "tool_use"][..]).prop_map(String::from),
    ]
    .boxed()
}

/// JSON with the field names the decoders read, and numbers at the edges.
fn wire_json() -> impl Strategy<Value = Value> {
    const KEYS: &[&str] = &[
        "choices",
        "delta",
        "content",
        "tool_calls",
        "index",
        "id",
        "function",
        "name",
        "arguments",
        "finish_reason",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "error",
        "type",
        "message",
        "content_block",
        "text",
        "partial_json",
        "stop_reason",
        "input_tokens",
        "output_tokens",
        "candidates",
        "parts",
        "functionCall",
        "args",
        "finishReason",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "thoughtsTokenCount",
        "done",
        "prompt_eval_count",
        "eval_count",
        "thought",
        "promptFeedback",
        "blockReason",
        "details",
        "@type",
        "retryDelay",
        "status",
        "code",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        prop_oneof![Just(u64::from(u32::MAX)), Just(u64::MAX), 0..10u64, any::<u64>()].prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        words().prop_map(Value::from),
        select(&["text_delta", "input_json_delta", "tool_use", "message_start", "error", "STOP", "SAFETY"][..])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(select(KEYS).prop_map(String::from), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A field of an OpenAI answer: absent (`None`) or a value of its usual
/// type; with `odd`, now and then any [`wire_json`] value in its place.
fn field(usual: BoxedStrategy<Option<Value>>, odd: bool) -> BoxedStrategy<Option<Value>> {
    match odd {
        false => usual,
        true => prop_oneof![3 => usual, 1 => wire_json().prop_map(Some)].boxed(),
    }
}

/// An object of the fields present.
fn object(fields: Vec<(&'static str, Option<Value>)>) -> Value {
    Value::Object(fields.into_iter().filter_map(|(k, v)| Some((k.to_string(), v?))).collect())
}

fn maybe<T: Strategy<Value = Value> + 'static>(value: T) -> BoxedStrategy<Option<Value>> {
    prop_oneof![1 => Just(None), 1 => Just(Some(Value::Null)), 4 => value.prop_map(Some)].boxed()
}

/// A whole OpenAI answer, each field of its usual type (or absent, or null),
/// or with `odd` now and then of any type.
fn openai_answer(odd: bool) -> impl Strategy<Value = Value> {
    let text = || words().prop_map(Value::from);
    let count = || prop_oneof![Just(u64::from(u32::MAX) + 1), 0..100u64, any::<u64>()].prop_map(Value::from);
    let function = (field(maybe(text()), odd), field(maybe(text()), odd))
        .prop_map(|(name, arguments)| object(vec![("name", name), ("arguments", arguments)]));
    let call = (field(maybe(text()), odd), field(maybe(function), odd))
        .prop_map(|(id, function)| object(vec![("id", id), ("type", Some("function".into())), ("function", function)]));
    let calls = prop::collection::vec(field(call.prop_map(Some).boxed(), odd), 0..3)
        .prop_map(|calls| Value::Array(calls.into_iter().map(|c| c.unwrap_or(Value::Null)).collect()));
    let message = (field(maybe(text()), odd), field(maybe(calls), odd)).prop_map(|(content, tool_calls)| {
        object(vec![("role", Some("assistant".into())), ("content", content), ("tool_calls", tool_calls)])
    });
    let reason = select(&["stop", "length", "tool_calls", "function_call", "content_filter", "other"][..]);
    let choice = (field(message.prop_map(Some).boxed(), odd), field(maybe(reason.prop_map(Value::from)), odd))
        .prop_map(|(message, finish)| {
            object(vec![("index", Some(0.into())), ("message", message), ("finish_reason", finish)])
        });
    let choices = prop::collection::vec(field(choice.prop_map(Some).boxed(), odd), 1..3)
        .prop_map(|c| Value::Array(c.into_iter().map(|c| c.unwrap_or(Value::Null)).collect()));
    let usage = (field(maybe(count()), odd), field(maybe(count()), odd)).prop_map(|(p, c)| {
        object(vec![("prompt_tokens", p), ("completion_tokens", c), ("total_tokens", Some(7.into()))])
    });
    let error = prop_oneof![3 => Just(None), 1 => Just(Some(Value::Null))].boxed();
    (field(error, odd), field(choices.prop_map(Some).boxed(), odd), field(maybe(usage), odd)).prop_map(
        |(error, choices, usage)| {
            object(vec![
                ("id", Some("chatcmpl-1".into())),
                ("object", Some("chat.completion".into())),
                ("error", error),
                ("choices", choices),
                ("usage", usage),
            ])
        },
    )
}

/// Usage as each wire format reports it, with counts at the edges of their types.
fn usage_json() -> impl Strategy<Value = Value> {
    let n = || prop_oneof![Just(0u64), Just(1), Just(u64::from(u32::MAX)), Just(u64::MAX), any::<u64>()];
    (select(FORMATS), n(), n(), n()).prop_map(|(format, a, b, c)| match format {
        "openai" => json!({"choices": [], "usage": {"prompt_tokens": a, "completion_tokens": b}}),
        "anthropic" => json!({"type": "message_delta", "usage": {"input_tokens": a, "output_tokens": b}}),
        "gemini" => json!({
            "candidates": [],
            "usageMetadata": {"promptTokenCount": a, "candidatesTokenCount": b, "thoughtsTokenCount": c},
        }),
        _ => json!({"done": true, "prompt_eval_count": a, "eval_count": b}),
    })
}

/// A body of events whose data is [`wire_json`] (or now and then not JSON),
/// framed as SSE (with event names) or as NDJSON lines.
fn wire_body() -> impl Strategy<Value = String> {
    let event = select(&["", "message_start", "content_block_delta", "message_stop", "error", "ping"][..]);
    let data = prop_oneof![
        8 => wire_json().prop_map(|v| v.to_string()),
        2 => usage_json().prop_map(|v| v.to_string()),
        1 => words(),
    ];
    let frame = (event, data, any::<bool>(), any::<bool>()).prop_map(|(event, data, sse, crlf)| {
        let nl = if crlf { "\r\n" } else { "\n" };
        match (sse, event) {
            (false, _) => format!("{data}{nl}"),
            (true, "") => format!("data: {data}{nl}{nl}"),
            (true, e) => format!("event: {e}{nl}data: {data}{nl}{nl}"),
        }
    });
    prop::collection::vec(frame, 0..8).prop_map(|f| f.concat())
}

/// A well-formed stream in `format`: its body, and the text it carries.
fn valid_stream(format: &'static str) -> impl Strategy<Value = (String, String)> {
    let texts = prop::collection::vec(words(), 0..6);
    let calls = prop::collection::vec((words(), words()), 0..3);
    (texts, calls, any::<bool>(), (any::<u32>(), any::<u32>())).prop_map(move |(texts, calls, crlf, usage)| {
        let nl = if crlf { "\r\n" } else { "\n" };
        let events = match format {
            "openai" => openai_events(&texts, &calls, usage),
            "anthropic" => anthropic_events(&texts, &calls, usage),
            "gemini" => gemini_events(&texts, &calls, usage),
            _ => ollama_events(&texts, &calls, usage),
        };
        let body: String = events
            .iter()
            .map(|(name, data)| match (format, name.as_str()) {
                ("ollama", _) => format!("{data}{nl}"),
                (_, "") => format!("data: {data}{nl}{nl}"),
                (_, ":") => format!(": ping{nl}{nl}"),
                (_, name) => format!("event: {name}{nl}data: {data}{nl}{nl}"),
            })
            .collect();
        (body, texts.concat())
    })
}

type Events = Vec<(String, String)>;

fn data(v: Value) -> (String, String) {
    (String::new(), v.to_string())
}

fn openai_events(texts: &[String], calls: &[(String, String)], (input, output): (u32, u32)) -> Events {
    let mut events = vec![(":".to_string(), String::new())];
    events.extend(texts.iter().map(|t| data(json!({"choices": [{"index": 0, "delta": {"content": t}}]}))));
    for (i, (name, args)) in calls.iter().enumerate() {
        let call = json!({"index": i, "id": format!("call_{i}"), "function": {"name": name, "arguments": args}});
        events.push(data(json!({"choices": [{"delta": {"tool_calls": [call]}}]})));
    }
    events.push(data(json!({"choices": [{"delta": {}, "finish_reason": "stop"}]})));
    events.push(data(json!({"choices": [], "usage": {"prompt_tokens": input, "completion_tokens": output}})));
    events.push((String::new(), "[DONE]".to_string()));
    events
}

fn anthropic_events(texts: &[String], calls: &[(String, String)], (input, output): (u32, u32)) -> Events {
    let event = |name: &str, v: Value| (name.to_string(), v.to_string());
    let mut events = vec![event("message_start", json!({"message": {"usage": {"input_tokens": input}}}))];
    events.push((":".to_string(), String::new()));
    for t in texts {
        events.push(event("content_block_delta", json!({"index": 0, "delta": {"type": "text_delta", "text": t}})));
    }
    for (i, (name, args)) in calls.iter().enumerate() {
        let block = json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": name});
        events.push(event("content_block_start", json!({"index": i + 1, "content_block": block})));
        let delta = json!({"type": "input_json_delta", "partial_json": args});
        events.push(event("content_block_delta", json!({"index": i + 1, "delta": delta})));
        events.push(event("content_block_stop", json!({"index": i + 1})));
    }
    events.push(event(
        "message_delta",
        json!({"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": output}}),
    ));
    events.push(event("message_stop", json!({})));
    events
}

fn gemini_events(texts: &[String], calls: &[(String, String)], (input, output): (u32, u32)) -> Events {
    let mut events: Events =
        texts.iter().map(|t| data(json!({"candidates": [{"content": {"parts": [{"text": t}]}}]}))).collect();
    for (name, args) in calls {
        let call = json!({"functionCall": {"name": name, "args": {"a": args}}});
        events.push(data(json!({"candidates": [{"content": {"parts": [call]}}]})));
    }
    let usage = json!({"promptTokenCount": input, "candidatesTokenCount": output});
    events.push(data(json!({"candidates": [{"finishReason": "STOP"}], "usageMetadata": usage})));
    events
}

fn ollama_events(texts: &[String], calls: &[(String, String)], (input, output): (u32, u32)) -> Events {
    let mut events: Events =
        texts.iter().map(|t| data(json!({"message": {"role": "assistant", "content": t}, "done": false}))).collect();
    for (name, args) in calls {
        let call = json!({"function": {"name": name, "arguments": {"a": args}}});
        events.push(data(json!({"message": {"tool_calls": [call]}, "done": false})));
    }
    events.push(data(json!({"done": true, "prompt_eval_count": input, "eval_count": output})));
    events
}

fn text_of(pieces: &[Piece]) -> String {
    pieces.iter().filter_map(|p| if let Piece::Text(t) = p { Some(t.as_str()) } else { None }).collect()
}

/// A body with bytes changed, removed or added at random places.
fn mutated(body: Vec<u8>, edits: Vec<(Index, u8, u8)>) -> Vec<u8> {
    let mut body = body;
    for (at, op, byte) in edits {
        let i = at.index(body.len() + 1);
        match op % 3 {
            0 if i < body.len() => body[i] = byte,
            1 if i < body.len() => {
                body.remove(i);
            }
            _ => body.insert(i, byte),
        }
    }
    body
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn any_bytes_decode_the_same_however_they_are_cut(
        format in select(FORMATS),
        body in prop::collection::vec(any::<u8>(), 0..512),
        cuts in cuts(),
    ) {
        prop_assert_eq!(decode(format, chunks(&body, &cuts)), decode(format, [body.as_slice()]));
    }

    #[test]
    fn events_of_any_shape_decode_the_same_however_they_are_cut(
        format in select(FORMATS),
        body in wire_body(),
        cuts in cuts(),
    ) {
        let body = body.as_bytes();
        let whole = decode(format, [body]);
        if let Some(e) = &whole.1 {
            prop_assert!(!e.to_string().is_empty());
        }
        prop_assert_eq!(decode(format, chunks(body, &cuts)), whole);
    }

    #[test]
    fn a_well_formed_stream_decodes_whole_and_the_same_however_it_is_cut(
        (format, (body, text)) in select(FORMATS).prop_flat_map(|f| (Just(f), valid_stream(f))),
        cuts in cuts(),
    ) {
        let whole = decode(format, [body.as_bytes()]);
        prop_assert_eq!(&whole.1, &None, "{}", body);
        prop_assert_eq!(whole.0.last(), Some(&Piece::Done));
        prop_assert_eq!(text_of(&whole.0), text);
        prop_assert_eq!(decode(format, chunks(body.as_bytes(), &cuts)), whole);
    }

    #[test]
    fn a_damaged_stream_decodes_the_same_however_it_is_cut(
        (format, (body, _)) in select(FORMATS).prop_flat_map(|f| (Just(f), valid_stream(f))),
        edits in prop::collection::vec((any::<Index>(), any::<u8>(), any::<u8>()), 1..4),
        cuts in cuts(),
    ) {
        let body = mutated(body.into_bytes(), edits);
        prop_assert_eq!(decode(format, chunks(&body, &cuts)), decode(format, [body.as_slice()]));
    }
}

/// An error body as providers shape them, with odd values in every field.
fn error_body() -> impl Strategy<Value = String> {
    let wait = prop_oneof![
        any::<f64>().prop_map(|f| format!("{f}s")),
        select(&["1.5s", "1e300s", "infs", "-infs", "NaNs", "-3s", "s", "30"][..]).prop_map(String::from),
    ];
    let detail = (
        select(&["type.googleapis.com/google.rpc.RetryInfo", "type.googleapis.com/google.rpc.QuotaFailure", ""][..]),
        wait,
        select(&["API_KEY_INVALID", "OTHER"][..]),
        select(&["GenerateRequestsPerDayPerProject", "x"][..]),
    )
        .prop_map(|(kind, wait, reason, quota)| {
            json!({"@type": kind, "retryDelay": wait, "reason": reason, "violations": [{"quotaId": quota}]})
        });
    let error = (
        select(&["insufficient_quota", "rate_limit_error", "billing_error", "invalid_request_error", ""][..]),
        select(&["RESOURCE_EXHAUSTED", "INVALID_ARGUMENT", "UNAVAILABLE", "content_filter", ""][..]),
        words(),
        prop::collection::vec(detail, 0..3),
    )
        .prop_map(|(kind, status, message, details)| {
            json!({"type": kind, "code": status, "status": status, "message": message, "details": details})
        });
    prop_oneof![error.prop_map(|e| json!({"error": e}).to_string()), wire_json().prop_map(|v| v.to_string()), words(),]
}

/// Values of the headers the gateway reads, odd ones among them.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(
            &[
                "1",
                "0",
                "100",
                "1.5",
                "1e300",
                "inf",
                "-inf",
                "NaN",
                "-1",
                "18446744073709551615",
                "6m0s",
                "1h2m3.5s",
                "99999999999999999999h",
                "1e308h",
                "20ms",
                "",
                "Wed, 21 Oct 2015 07:28:00 GMT",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "2999-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z",
            ][..]
        )
        .prop_map(String::from),
        "[ -~]{0,24}",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (any::<u64>(), select(&["h", "m", "s", "ms"][..])).prop_map(|(n, unit)| format!("{n}{unit}")),
    ]
}

fn headers() -> impl Strategy<Value = HeaderMap> {
    const NAMES: &[&str] = &[
        "retry-after",
        "retry-after-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ];
    // A whole reading (limit, remaining, reset) of one limit, low or not.
    let reading = (any::<bool>(), select(&["requests", "tokens"][..]), 0..100u64, 0..100u64, header_value()).prop_map(
        |(openai, dim, limit, left, reset)| {
            let name = |part: &str| match openai {
                true => format!("x-ratelimit-{part}-{dim}"),
                false => format!("anthropic-ratelimit-{dim}-{part}"),
            };
            vec![(name("limit"), limit.to_string()), (name("remaining"), left.to_string()), (name("reset"), reset)]
        },
    );
    let single = (select(NAMES).prop_map(String::from), header_value()).prop_map(|pair| vec![pair]);
    prop::collection::vec(prop_oneof![single, reading], 0..6).prop_map(|groups| {
        groups
            .into_iter()
            .flatten()
            .filter_map(|(name, value)| {
                Some((HeaderName::from_bytes(name.as_bytes()).ok()?, HeaderValue::from_str(&value).ok()?))
            })
            .collect()
    })
}

/// The longest wait the gateway takes from a provider (see `headroom`).
const MOST: Duration = headroom::MAX_PROVIDER_WAIT;

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn an_openai_answer_read_from_its_bytes_is_the_answer_read_as_a_value(json in prop_oneof![
        openai_answer(true).boxed(),
        wire_json().boxed(),
        usage_json().boxed(),
    ]) {
        if let Some(direct) = openai::plain_reply(json.to_string().as_bytes()) {
            prop_assert_eq!(Some(direct), openai::reply(&json).ok());
        }
    }

    #[test]
    fn an_openai_answer_of_the_usual_types_is_read_from_its_bytes(json in openai_answer(false)) {
        prop_assert!(openai::plain_reply(json.to_string().as_bytes()).is_some(), "not read: {}", json);
    }

    #[test]
    fn any_whole_answer_is_read_or_refused_with_a_message(json in prop_oneof![wire_json(), usage_json()]) {
        for result in [openai::reply(&json), anthropic::reply(&json), gemini::reply(&json), ollama::reply(&json)] {
            if let Err(e) = result {
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }

    #[test]
    fn any_error_body_is_classified_with_a_wait_the_clock_can_hold(status in 100..600u16, body in error_body()) {
        for e in [
            openai::error(status, &body),
            anthropic::error(status, &body),
            gemini::error(status, &body),
            ollama::error(status, &body),
        ] {
            prop_assert!(!e.to_string().is_empty());
            prop_assert!(e.retry_after.is_none_or(|w| w <= MOST), "{:?}", e.retry_after);
        }
    }

    #[test]
    fn any_rate_limit_headers_give_waits_the_clock_can_hold(headers in headers(), threshold in 0.0..1.0f64) {
        let wall = SystemTime::now();
        let wait = headroom::retry_after(&headers, wall);
        prop_assert!(wait.is_none_or(|w| w <= MOST), "{:?}", wait);
        if let Some(h) = Headroom::from_headers(&headers, wall) {
            for r in [h.requests, h.tokens].into_iter().flatten() {
                prop_assert!(r.reset_in.is_none_or(|w| w <= MOST), "{:?}", r.reset_in);
            }
            let _ = h.low_until(threshold, Instant::now());
        }
    }
}
