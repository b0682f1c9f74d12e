//! Helpers: an HTTP client, and parsers for the wire formats written from
//! the specifications (not from the fake), so that a test fails when the
//! fake drifts from them.

use std::sync::Once;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub fn client() -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder().build().expect("a plain HTTP client builds")
}

/// A response read to its end (or to the error that ended it).
pub struct Read {
    pub status: u16,
    pub headers: HeaderMap,
    /// Each body chunk as it arrived, with the time since the request was sent.
    pub chunks: Vec<(Duration, Vec<u8>)>,
    /// The error that ended the body early, if one did.
    pub error: Option<reqwest::Error>,
}

impl Read {
    pub fn text(&self) -> String {
        String::from_utf8(self.chunks.iter().flat_map(|(_, c)| c.clone()).collect()).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text()).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }
}

pub async fn post(url: &str, body: &Value) -> Read {
    post_raw(url, body.to_string()).await
}

pub async fn post_raw(url: &str, body: String) -> Read {
    let started = Instant::now();
    let response = client()
        .post(url)
        .header("content-type", "application/json")
        .header("x-api-key", "sk-test")
        .body(body)
        .send()
        .await
        .expect("the fake answers");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    let mut stream = response.bytes_stream();
    let (mut chunks, mut error) = (Vec::new(), None);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => chunks.push((started.elapsed(), bytes.to_vec())),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Read { status, headers, chunks, error }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event: Option<String>,
    pub data: String,
}

/// Parses `text/event-stream` as the HTML specification does: lines end in
/// CRLF, LF or CR; a blank line dispatches; `data` lines join with LF.
pub fn sse(text: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let (mut event, mut data, mut has_data) = (None, String::new(), false);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in text.split('\n') {
        if line.is_empty() {
            if has_data {
                events.push(Event { event: event.take(), data: std::mem::take(&mut data) });
            }
            (event, has_data) = (None, false);
            continue;
        }
        let (field, value) = line.split_once(':').map_or((line, ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    events
}

/// The JSON of every data event, failing on any that does not parse.
pub fn sse_json(text: &str) -> Vec<Value> {
    sse(text).iter().map(|e| serde_json::from_str(&e.data).unwrap_or_else(|_| panic!("bad event {e:?}"))).collect()
}

/// Newline-delimited JSON.
pub fn ndjson(text: &str) -> Vec<Value> {
    text.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("bad line {line}"))).collect()
}

pub fn user(text: &str) -> Value {
    serde_json::json!([{"role": "user", "content": text}])
}
