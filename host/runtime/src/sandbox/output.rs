//! Captured stdout and stderr: each line goes to the agent's log, up to a cap.
//!
//! A guest that prints too much is not stopped — printing is not abuse — but
//! what is past the cap is dropped and the log says so once.

use crate::caps::CallContext;
use crate::caps::log::{Severity, Source};
use bytes::Bytes;
use parking_lot::Mutex;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// One captured stream (stdout or stderr) of one invocation.
#[derive(Clone)]
pub struct Capture {
    inner: Arc<Mutex<CaptureState>>,
}

struct CaptureState {
    call: Arc<CallContext>,
    source: Source,
    line: Vec<u8>,
    taken: u64,
    limit: u64,
    truncated: bool,
}

impl Capture {
    /// Captures `source` (stdout or stderr) of the invocation `call`.
    pub fn new(call: Arc<CallContext>, source: Source) -> Self {
        let limit = call.caps.output_bytes;
        Capture {
            inner: Arc::new(Mutex::new(CaptureState {
                call,
                source,
                line: Vec::new(),
                taken: 0,
                limit,
                truncated: false,
            })),
        }
    }

    /// Logs an unfinished last line, if any.
    pub fn finish(&self) {
        let mut state = self.inner.lock();
        if !state.line.is_empty() {
            let line = std::mem::take(&mut state.line);
            state.emit(&line);
        }
    }

    fn accept(&self, bytes: &[u8]) {
        let mut state = self.inner.lock();
        let room = state.limit.saturating_sub(state.taken) as usize;
        let kept = &bytes[..bytes.len().min(room)];
        state.taken += kept.len() as u64;
        for piece in kept.split_inclusive(|b| *b == b'\n') {
            if let Some(line) = piece.strip_suffix(b"\n") {
                state.line.extend_from_slice(line);
                let line = std::mem::take(&mut state.line);
                state.emit(&line);
            } else {
                state.line.extend_from_slice(piece);
            }
        }
        if kept.len() < bytes.len() && !state.truncated {
            state.truncated = true;
            let line = std::mem::take(&mut state.line);
            if !line.is_empty() {
                state.emit(&line);
            }
            let name = if state.source == Source::Stdout { "stdout" } else { "stderr" };
            let message =
                format!("{name} truncated: the agent wrote more than limits.max-output-bytes ({} bytes)", state.limit);
            state.call.log.push(Severity::Warn, Source::Host, message);
        }
    }
}

impl CaptureState {
    fn emit(&self, line: &[u8]) {
        let level = if self.source == Source::Stderr { Severity::Warn } else { Severity::Info };
        let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned();
        self.call.log.push(level, self.source, text);
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
