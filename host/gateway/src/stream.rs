//! A streamed answer after its first piece: pieces handed out one by one
//! under the idle and total timeouts, usage taken from the provider's own
//! running totals, and the call recorded exactly once — at the end, on an
//! error, or when the agent drops the stream early.

use super::error::{ErrorClass, ProviderError};
use super::providers::Pieces;
use super::quota::Caller;
use super::record::Reserved;
use super::route::{Route, RouteTarget};
use super::types::{Finish, Piece, Reply, Tokens, ToolCall};
use super::{Attempt, Completion, Inner, LlmError, count_attempts};
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Reads pieces until the first one an agent can see (text or a tool call),
/// or the end of an empty answer. Errors here still allow a fallback.
pub(super) async fn first_piece(pieces: &mut Pieces) -> Result<VecDeque<Piece>, ProviderError> {
    let mut seen = VecDeque::new();
    while let Some(piece) = pieces.next().await {
        let piece = piece?;
        let visible = matches!(piece, Piece::Text(_) | Piece::ToolCall(_) | Piece::Done);
        seen.push_back(piece);
        if visible {
            return Ok(seen);
        }
    }
    Err(ProviderError::new(ErrorClass::Malformed, "stream ended before its first piece"))
}

/// A streamed answer.
pub struct ReplyStream {
    gateway: Arc<Inner>,
    route: Arc<Route>,
    target: Arc<RouteTarget>,
    caller: Caller,
    reservation: Option<Reserved>,
    started: Instant,
    deadline: Instant,
    buffered: VecDeque<Piece>,
    rest: Pieces,
    trail: Vec<Attempt>,
    text: String,
    tool_calls: Vec<ToolCall>,
    tokens: Option<Tokens>,
    finish: Finish,
    pieces: u64,
    ended: Option<Result<(), LlmError>>,
    /// The call's `llm` span, open until the stream ends.
    span: tracing::Span,
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyStream").field("target", &self.target.label()).field("pieces", &self.pieces).finish()
    }
}

impl ReplyStream {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        gateway: Arc<Inner>,
        route: Arc<Route>,
        target: Arc<RouteTarget>,
        caller: Caller,
        reservation: Reserved,
        started: Instant,
        deadline: Instant,
        buffered: VecDeque<Piece>,
        rest: Pieces,
        trail: Vec<Attempt>,
    ) -> Self {
        ReplyStream {
            gateway,
            route,
            target,
            caller,
            reservation: Some(reservation),
            started,
            deadline,
            buffered,
            rest,
            trail,
            text: String::new(),
            tool_calls: Vec::new(),
            tokens: None,
            finish: Finish::Stop,
            pieces: 0,
            ended: None,
            span: tracing::Span::current(),
        }
    }

    /// The next piece of text; `None` once the answer is complete. An error
    /// ends the stream (no fallback: the agent has already seen pieces), and
    /// `None` follows it.
    pub async fn next_text(&mut self) -> Option<Result<String, LlmError>> {
        if self.ended.is_some() {
            return None;
        }
        loop {
            let piece = match self.buffered.pop_front() {
                Some(piece) => Ok(Some(piece)),
                None => self.pull().await,
            };
            match piece {
                Ok(Some(Piece::Text(text))) => {
                    self.pieces += 1;
                    self.text.push_str(&text);
                    return Some(Ok(text));
                }
                Ok(Some(Piece::ToolCall(call))) => self.tool_calls.push(call),
                // Running totals: the latest replaces the earlier, never adds to them.
                Ok(Some(Piece::Tokens(tokens))) => self.tokens = Some(tokens),
                Ok(Some(Piece::Finish(finish))) => self.finish = finish,
                Ok(Some(Piece::Done)) | Ok(None) => {
                    self.end(Ok(()), "ok");
                    return None;
                }
                Err(error) => {
                    self.end(Err(error.clone()), error.kind());
                    return Some(Err(error));
                }
            }
        }
    }

    async fn pull(&mut self) -> Result<Option<Piece>, LlmError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let idle = self.target.policy.idle_timeout;
        let label = self.target.label();
        match tokio::time::timeout(remaining.min(idle), self.rest.next()).await {
            Ok(Some(Ok(piece))) => Ok(Some(piece)),
            Ok(None) => Ok(None),
            Ok(Some(Err(error))) => {
                let now = self.gateway.clock.now();
                if error.class.counts_against_target() {
                    self.target.record(super::breaker::Ticket::Normal, false, now, &self.gateway.metrics);
                }
                Err(match error.class {
                    ErrorClass::ContentFilter => LlmError::ContentFiltered(format!("{label}: {error}")),
                    _ => LlmError::Unavailable(format!(
                        "{label}: stream broke off after {} pieces: {error}",
                        self.pieces
                    )),
                })
            }
            Err(_) if idle < remaining => {
                let now = self.gateway.clock.now();
                self.target.record(super::breaker::Ticket::Normal, false, now, &self.gateway.metrics);
                Err(LlmError::Timeout(format!(
                    "{label}: no piece for {} (idle-timeout) after {} pieces",
                    paddock_core::Span(idle),
                    self.pieces
                )))
            }
            Err(_) => Err(LlmError::Timeout(format!(
                "route {:?} did not finish within its timeout of {}",
                &*self.route.name,
                paddock_core::Span(self.route.settings.timeout)
            ))),
        }
    }

    /// Provider attempts made before this one answered (skips not counted).
    pub fn attempts(&self) -> u32 {
        count_attempts(&self.trail)
    }

    /// Usage of the whole answer, once it is complete.
    pub fn usage(&self) -> Option<(Tokens, u64)> {
        let tokens = self.tokens?;
        matches!(self.ended, Some(Ok(()))).then(|| (tokens, self.cost(tokens)))
    }

    /// The whole answer, once it is complete.
    pub fn completion(&self) -> Option<Completion> {
        if !matches!(self.ended, Some(Ok(()))) {
            return None;
        }
        let tokens = self.tokens.unwrap_or_default();
        Some(Completion {
            reply: Reply {
                text: self.text.clone(),
                tool_calls: self.tool_calls.clone(),
                finish: self.finish,
                tokens: self.tokens,
            },
            provider: self.target.provider.name.clone(),
            model: self.target.model.clone(),
            attempts: count_attempts(&self.trail),
            tokens,
            cost_micros: self.cost(tokens),
            trail: self.trail.clone(),
        })
    }

    fn cost(&self, tokens: Tokens) -> u64 {
        self.target.price.map_or(0, |p| p.cost(tokens.input, tokens.output))
    }

    /// Records the call once. A stream cut short bills the tokens the
    /// provider reported so far, or, if it reported none, an estimate from
    /// the text received — it generated them either way.
    fn end(&mut self, result: Result<(), LlmError>, outcome: &str) {
        let Some(reservation) = self.reservation.take() else { return };
        let tokens = self.tokens.unwrap_or(Tokens { input: 0, output: (self.text.len() / 4) as u32 });
        self.ended = Some(result);
        let attempts = count_attempts(&self.trail);
        // The call's span, which this stream keeps open until its end.
        let _span = self.span.clone().entered();
        self.gateway.record(
            &self.caller,
            &self.route,
            Some(&self.target),
            attempts,
            self.started,
            tokens,
            outcome,
            true,
            reservation,
        );
    }
}

impl Drop for ReplyStream {
    fn drop(&mut self) {
        if self.reservation.is_some() {
            self.end(Err(LlmError::Unavailable("the agent dropped the stream before its end".into())), "cancelled");
        }
    }
}
