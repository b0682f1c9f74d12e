//! Splits a streamed HTTP body into frames: server-sent events (OpenAI,
//! Anthropic, Gemini) or newline-delimited JSON (Ollama).

use crate::error::{ErrorClass, ProviderError};

/// The most one event (or line) may hold. Real events are a few KiB; this
/// stops a broken or hostile upstream from growing a buffer without end.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// How a body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `event:` / `data:` lines, an event ending at a blank line.
    Sse,
    /// One JSON document per line.
    Ndjson,
}

/// One event of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// The SSE event name (`message_start`…), empty when none was given.
    pub event: String,
    /// The data (SSE `data:` lines joined by newlines), or one NDJSON line.
    pub data: String,
}

/// Accumulates body bytes and hands out complete frames.
#[derive(Debug)]
pub struct Framer {
    framing: Framing,
    buf: Vec<u8>,
    event: String,
    data: Option<String>,
}

impl Framer {
    /// A framer for `framing`.
    pub fn new(framing: Framing) -> Self {
        Framer { framing, buf: Vec::new(), event: String::new(), data: None }
    }

    /// Adds `bytes` and appends every frame they complete to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Frame>) -> Result<(), ProviderError> {
        self.buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let line = &self.buf[start..end];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = std::str::from_utf8(line)
                .map_err(|_| ProviderError::new(ErrorClass::Malformed, "stream line is not UTF-8"))?
                .to_string();
            start = end + 1;
            self.line(&line, out)?;
        }
        self.buf.drain(..start);
        let pending = self.buf.len() + self.data.as_ref().map_or(0, String::len);
        if pending > MAX_FRAME_BYTES {
            return Err(ProviderError::new(
                ErrorClass::Malformed,
                format!("a stream event is over {} MiB", MAX_FRAME_BYTES >> 20),
            ));
        }
        Ok(())
    }

    /// The body ended: a last frame without its trailing newline is still a frame.
    pub fn finish(&mut self, out: &mut Vec<Frame>) -> Result<(), ProviderError> {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            let line = String::from_utf8(rest)
                .map_err(|_| ProviderError::new(ErrorClass::Malformed, "stream line is not UTF-8"))?;
            self.line(line.trim_end_matches('\r'), out)?;
        }
        self.line("", out)
    }

    fn line(&mut self, line: &str, out: &mut Vec<Frame>) -> Result<(), ProviderError> {
        match self.framing {
            Framing::Ndjson => {
                if !line.trim().is_empty() {
                    out.push(Frame { event: String::new(), data: line.to_string() });
                }
            }
            Framing::Sse => {
                if line.is_empty() {
                    if let Some(data) = self.data.take() {
                        out.push(Frame { event: std::mem::take(&mut self.event), data });
                    }
                    self.event.clear();
                    return Ok(());
                }
                if line.starts_with(':') {
                    return Ok(()); // a comment, used as keep-alive
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.event = value.to_string(),
                    "data" => match &mut self.data {
                        Some(data) => {
                            data.push('\n');
                            data.push_str(value);
                        }
                        None => self.data = Some(value.to_string()),
                    },
                    _ => {} // id, retry: not used by any provider we speak
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framing: Framing, chunks: &[&str]) -> Vec<Frame> {
        let mut framer = Framer::new(framing);
        let mut out = Vec::new();
        for chunk in chunks {
            framer.push(chunk.as_bytes(), &mut out).unwrap();
        }
        framer.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn sse_events_split_across_chunks_are_joined() {
        let out = frames(Framing::Sse, &["event: message_st", "art\ndata: {\"a\"", ":1}\n\n: ping\n\ndata: x\r\n\r\n"]);
        assert_eq!(
            out,
            vec![
                Frame { event: "message_start".into(), data: "{\"a\":1}".into() },
                Frame { event: String::new(), data: "x".into() }
            ]
        );
    }

    #[test]
    fn sse_multi_line_data_is_joined_with_newlines() {
        let out = frames(Framing::Sse, &["data: a\ndata: b\n\n"]);
        assert_eq!(out[0].data, "a\nb");
    }

    #[test]
    fn ndjson_last_line_without_newline_is_a_frame() {
        let out = frames(Framing::Ndjson, &["{\"a\":1}\n\n{\"b\"", ":2}"]);
        assert_eq!(out.iter().map(|f| f.data.as_str()).collect::<Vec<_>>(), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn endless_line_is_refused_at_the_frame_cap() {
        let mut framer = Framer::new(Framing::Ndjson);
        let chunk = vec![b'x'; 1 << 20];
        let mut out = Vec::new();
        let err = (0..9).find_map(|_| framer.push(&chunk, &mut out).err()).unwrap();
        assert_eq!(err.class, ErrorClass::Malformed);
        assert_eq!(err.message, "a stream event is over 8 MiB");
    }
}
