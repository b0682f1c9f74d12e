//! Encoding shared by the dialects: server-sent events, JSON lines, and ids
//! written straight into the output without a `String` of their own.

use std::fmt;

use serde::{Serialize, Serializer};

/// Appends `value` as JSON. Every payload here is a plain struct or
/// `serde_json::Value`, which cannot fail to serialize into a `Vec`.
pub(crate) fn write_json(buf: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(&mut *buf, value).expect("fake payloads always serialize");
}

pub(crate) fn to_json(value: &impl Serialize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(512);
    write_json(&mut buf, value);
    buf
}

/// `event: <name>`, `data: <json>`, blank line (Anthropic).
pub(crate) fn sse_event(buf: &mut Vec<u8>, event: &str, data: &impl Serialize) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(event.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    write_json(buf, data);
    buf.extend_from_slice(b"\n\n");
}

/// `data: <json>` and a blank line, with lines ending in `eol`.
pub(crate) fn sse_data(buf: &mut Vec<u8>, data: &impl Serialize, eol: &str) {
    buf.extend_from_slice(b"data: ");
    write_json(buf, data);
    buf.extend_from_slice(eol.as_bytes());
    buf.extend_from_slice(eol.as_bytes());
}

/// One line of newline-delimited JSON (Ollama).
pub(crate) fn json_line(buf: &mut Vec<u8>, data: &impl Serialize) {
    write_json(buf, data);
    buf.push(b'\n');
}

/// An id made of a prefix and the request's number, e.g. `chatcmpl-fake-7`.
#[derive(Clone, Copy)]
pub(crate) struct Id(pub &'static str, pub u64);

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.0, self.1)
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A tool call's id: the scripted one, or `<prefix><request>_<call>`.
#[derive(Clone, Copy)]
pub(crate) struct CallId<'a> {
    pub given: Option<&'a str>,
    pub prefix: &'static str,
    pub request: u64,
    pub call: usize,
}

impl fmt::Display for CallId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.given {
            Some(id) => f.write_str(id),
            None => write!(f, "{}{}_{}", self.prefix, self.request, self.call),
        }
    }
}

impl Serialize for CallId<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
