//! A response before it is sent: status, headers, and a body that is either
//! whole or a list of frames with waits between them, which may end by
//! aborting the connection.

use std::io;
use std::time::Duration;

use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::behavior::Fault;
use crate::state::{Closing, Shared};

/// How long a cut body waits before the abort. Without a wait the client
/// may not even get the headers; a client that reads keeps up well within it.
const FLUSH_BEFORE_CUT: Duration = Duration::from_millis(20);

/// A body cut into frames, each sent as its own chunk after its wait.
///
/// One buffer holds every frame; a frame is a slice of it, not an
/// allocation of its own.
pub(crate) struct Frames {
    buf: Vec<u8>,
    marks: Vec<Mark>,
    pending: Duration,
}

#[derive(Clone, Copy)]
struct Mark {
    end: usize,
    delay: Duration,
}

impl Frames {
    pub fn new() -> Frames {
        Frames { buf: Vec::with_capacity(1024), marks: Vec::with_capacity(12), pending: Duration::ZERO }
    }

    /// Writes one frame; it leaves after the pauses asked for since the last one.
    pub fn frame(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        write(&mut self.buf);
        self.marks.push(Mark { end: self.buf.len(), delay: std::mem::take(&mut self.pending) });
    }

    /// Makes the next frame wait `duration` longer.
    pub fn pause(&mut self, duration: Duration) {
        self.pending += duration;
    }
}

/// How a framed body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Like any response.
    Clean,
    /// By aborting the connection: no terminating chunk, so the client sees
    /// an error or an early end of the body.
    Abort,
}

pub(crate) enum Body {
    Whole(Vec<u8>),
    Framed {
        frames: Frames,
        ending: Ending,
        /// A `content-length` to promise, so that a cut body is visibly short.
        declared_len: Option<usize>,
    },
}

pub(crate) struct Plan {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: HeaderMap,
    pub first_byte_delay: Duration,
    pub body: Body,
}

impl Plan {
    pub fn whole(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Plan {
        Plan {
            status,
            content_type,
            headers: HeaderMap::new(),
            first_byte_delay: Duration::ZERO,
            body: Body::Whole(body),
        }
    }

    /// An error response with a JSON body.
    pub fn error(status: u16, content_type: &'static str, body: &Value) -> Plan {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Plan::whole(status, content_type, body.to_string().into_bytes())
    }

    pub fn framed(content_type: &'static str, frames: Frames, ending: Ending) -> Plan {
        Plan {
            body: Body::Framed { frames, ending, declared_len: None },
            ..Plan::whole(StatusCode::OK, content_type, Vec::new())
        }
    }

    /// A successful non-streaming body, shaped by a fault that lets the
    /// request succeed: cut after half its bytes, stalled in the middle,
    /// made invalid, or swapped for the dialect's error object (`late_error`).
    pub fn shaped(
        content_type: &'static str,
        body: Vec<u8>,
        fault: Option<&Fault>,
        late_error: impl FnOnce() -> Vec<u8>,
    ) -> Plan {
        let halves = |body: Vec<u8>, pause: Duration, ending: Ending| {
            let len = body.len();
            let mut frames = Frames { buf: body, marks: Vec::with_capacity(2), pending: Duration::ZERO };
            frames.marks.push(Mark { end: len / 2, delay: Duration::ZERO });
            if ending == Ending::Clean {
                frames.marks.push(Mark { end: len, delay: pause });
            }
            Plan {
                body: Body::Framed { frames, ending, declared_len: Some(len) },
                ..Plan::whole(StatusCode::OK, content_type, Vec::new())
            }
        };
        match fault {
            Some(Fault::CutStream { .. }) => halves(body, Duration::ZERO, Ending::Abort),
            Some(Fault::StallMidStream { ms, .. }) => halves(body, Duration::from_millis(*ms), Ending::Clean),
            Some(Fault::MalformedJson) => Plan::whole(StatusCode::OK, content_type, malformed(body)),
            Some(Fault::ErrorEventAfterOk) => Plan::whole(StatusCode::OK, content_type, late_error()),
            _ => Plan::whole(StatusCode::OK, content_type, body),
        }
    }

    pub fn into_response(self, shared: &Shared) -> Response {
        let mut headers = self.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        let body = match self.body {
            Body::Whole(body) => axum::body::Body::from(body),
            Body::Framed { frames, ending, declared_len } => {
                if let Some(len) = declared_len {
                    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
                }
                send(frames, ending, shared.closing())
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// A complete body that no JSON parser accepts: the closing brace becomes a
/// member without a value, so the length is plausible and only parsing fails.
fn malformed(mut body: Vec<u8>) -> Vec<u8> {
    if body.last() == Some(&b'}') {
        body.pop();
    }
    body.extend_from_slice(br#","truncated"}"#);
    body
}

/// The frames as a body that hyper sends chunk by chunk, waiting where asked.
fn send(frames: Frames, ending: Ending, closing: Closing) -> axum::body::Body {
    struct Sending {
        buf: Bytes,
        marks: std::vec::IntoIter<Mark>,
        start: usize,
        ending: Option<Ending>,
        closing: Closing,
    }
    let sending = Sending {
        buf: Bytes::from(frames.buf),
        marks: frames.marks.into_iter(),
        start: 0,
        ending: Some(ending),
        closing,
    };
    axum::body::Body::from_stream(futures_util::stream::unfold(sending, |mut s| async move {
        match s.marks.next() {
            Some(mark) => {
                if !mark.delay.is_zero() && !s.closing.pause(mark.delay).await {
                    s.marks = Vec::new().into_iter();
                    s.ending = None;
                    return Some((Err(io::Error::other("the fake provider is shutting down")), s));
                }
                let chunk = s.buf.slice(s.start..mark.end);
                s.start = mark.end;
                Some((Ok(chunk), s))
            }
            None => match s.ending.take() {
                Some(Ending::Abort) => {
                    // hyper drops the connection on a body error without
                    // flushing what it buffered; waiting first lets it flush.
                    s.closing.pause(FLUSH_BEFORE_CUT).await;
                    Some((Err(io::Error::other("the fake provider cut the body")), s))
                }
                Some(Ending::Clean) | None => None,
            },
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_bodies_do_not_parse() {
        let body = malformed(br#"{"ok":true}"#.to_vec());
        assert_eq!(body, br#"{"ok":true,"truncated"}"#);
        assert!(serde_json::from_slice::<Value>(&body).is_err());
    }
}
