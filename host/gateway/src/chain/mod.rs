//! The attempt loop: the resilience policy over one route's targets for one
//! request.

use super::breaker::Ticket;
use super::providers::Meta;
use super::quota::Caller;
use super::route::{DEFAULT_COOLDOWN, Route, RouteTarget};
use super::types::ChatRequest;
use super::{Attempt, AttemptOutcome, DEFAULT_OUTPUT_ESTIMATE, ErrorClass, Failure, Inner, LlmError, ProviderError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A breaker ticket that is handed back if the attempt is abandoned (the
/// agent's invocation ended mid-call), so a half-open slot is never leaked.
struct Held<'a> {
    target: &'a RouteTarget,
    ticket: Ticket,
    armed: bool,
}

impl Held<'_> {
    /// The attempt ended: the caller gives the verdict from here on.
    fn disarm(mut self) -> Ticket {
        self.armed = false;
        self.ticket
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.target.release(self.ticket);
        }
    }
}

/// One request's way through its route: what the attempt loop has spent and
/// seen so far.
struct Run<'a> {
    gateway: &'a Inner,
    route: &'a Route,
    caller: &'a Caller,
    req: &'a ChatRequest,
    deadline: Instant,
    /// Every attempt and skip, in order.
    trail: Vec<Attempt>,
    /// Attempts made over every target, against the route's max-attempts.
    made: u32,
    /// Backoffs taken over every target: the exponent of the next one.
    retries: u32,
    /// Time spent waiting out Retry-After between passes.
    waited: Duration,
    /// Whether every target so far was passed over for a rate limit (a 429,
    /// or cooling down after one): then the agent is told `rate-limited` and
    /// when to come back, not `unavailable`.
    only_rate_limits: bool,
    /// The shortest Retry-After of the targets set aside in this pass.
    soonest_retry: Option<Duration>,
    /// Targets passed over in this pass because their breaker refused.
    refused: Vec<usize>,
    /// Whether the request is in degraded mode: a pass ended unanswered
    /// with targets refused by their breakers, so those are tried anyway
    /// when enough of their recent calls succeeded (`panic-min-success`).
    degraded: bool,
}

/// How one target's turn ended.
enum Turn<T> {
    /// On to the next target.
    Next,
    /// The route's max-attempts is spent: no more attempts in this pass.
    Spent,
    /// The request is over: answered by this target, or failed.
    Over(Result<(T, Arc<RouteTarget>), LlmError>),
}

impl Inner {
    /// Runs the resilience policy over `route`'s targets, calling `call` for
    /// each attempt with the time it may take.
    pub(super) async fn chain<T, F, Fut>(
        &self,
        route: &Route,
        caller: &Caller,
        req: &ChatRequest,
        deadline: Instant,
        mut call: F,
    ) -> Result<(T, Arc<RouteTarget>, Vec<Attempt>), Failure>
    where
        F: FnMut(Arc<RouteTarget>, Duration) -> Fut,
        Fut: Future<Output = (Result<T, ProviderError>, Meta)>,
    {
        let mut run = Run::new(self, route, caller, req, deadline);
        // Passes over the chain: a second one only after waiting out a short
        // Retry-After when every target was rate limited.
        let error = loop {
            match run.pass(&mut call).await {
                Some(Ok((value, target))) => return Ok((value, target, run.trail)),
                Some(Err(error)) => break error,
                None => {}
            }
            if Instant::now() >= deadline {
                break run.timed_out();
            }
            // Targets were set aside by Retry-After. Waiting beats failing when
            // the wait is short: within rate-limit-wait in all, within the
            // deadline and the retry budget.
            let Some(wait) = run.soonest_retry else { break run.exhausted() };
            if !run.may_wait(wait) {
                break if run.only_rate_limits { LlmError::RateLimited(wait) } else { run.exhausted() };
            }
            tracing::info!(route = %route.name, wait_ms = wait.as_millis() as u64, "every target rate limited; waiting");
            tokio::time::sleep(wait).await;
            run.waited += wait;
        };
        Err(run.fail(error))
    }
}

impl<'a> Run<'a> {
    fn new(gateway: &'a Inner, route: &'a Route, caller: &'a Caller, req: &'a ChatRequest, deadline: Instant) -> Self {
        Run {
            gateway,
            route,
            caller,
            req,
            deadline,
            trail: Vec::new(),
            made: 0,
            retries: 0,
            waited: Duration::ZERO,
            only_rate_limits: true,
            soonest_retry: None,
            refused: Vec::new(),
            degraded: false,
        }
    }

    /// One pass over the targets, in the order the route gives this request:
    /// how the request ended, or `None` when the pass did not end it.
    async fn pass<T, F, Fut>(&mut self, call: &mut F) -> Option<Result<(T, Arc<RouteTarget>), LlmError>>
    where
        F: FnMut(Arc<RouteTarget>, Duration) -> Fut,
        Fut: Future<Output = (Result<T, ProviderError>, Meta)>,
    {
        let req = self.req;
        let order = self.route.order(
            req.estimated_input_tokens(),
            req.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
            req.conversation.as_deref().map(|c| (&self.caller.tenant, c)),
            &*self.gateway.clock,
            &self.gateway.metrics,
        );
        self.soonest_retry = None;
        self.refused.clear();
        match self.turns(order, call).await {
            Turn::Over(end) => return Some(end),
            Turn::Spent => return None,
            Turn::Next => {}
        }
        if self.degraded || self.refused.is_empty() {
            return None;
        }
        // Unanswered, with targets refused by their breakers: rather than
        // fail, try those whose recent calls mostly still succeed, best first.
        self.degraded = true;
        let mut refused = std::mem::take(&mut self.refused);
        let rate = |i: usize| self.route.targets[i].recent_success().unwrap_or(1.0);
        refused.sort_by(|a, b| rate(*b).total_cmp(&rate(*a)));
        tracing::warn!(route = %self.route.name, targets = refused.len(), "no target admits: degraded mode");
        match self.turns(refused, call).await {
            Turn::Over(end) => Some(end),
            Turn::Spent | Turn::Next => None,
        }
    }

    /// The turns of the targets at `order`, until one ends the request or
    /// the attempts are spent (`Next`: every target had its turn).
    async fn turns<T, F, Fut>(&mut self, order: Vec<usize>, call: &mut F) -> Turn<T>
    where
        F: FnMut(Arc<RouteTarget>, Duration) -> Fut,
        Fut: Future<Output = (Result<T, ProviderError>, Meta)>,
    {
        for index in order {
            match self.turn(index, call).await {
                Turn::Next => {}
                end => return end,
            }
        }
        Turn::Next
    }

    /// The turn of the `index`th target: attempts until it answers, fails
    /// for good, is set aside, or has used up its retries.
    async fn turn<T, F, Fut>(&mut self, index: usize, call: &mut F) -> Turn<T>
    where
        F: FnMut(Arc<RouteTarget>, Duration) -> Fut,
        Fut: Future<Output = (Result<T, ProviderError>, Meta)>,
    {
        let target = &self.route.targets[index];
        let mut tries = 0u32;
        loop {
            let remaining = self.deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Turn::Over(Err(self.timed_out()));
            }
            if self.made >= self.route.settings.max_attempts {
                return Turn::Spent;
            }
            let Some(ticket) = self.admit(index) else { return Turn::Next };
            let held = Held { target, ticket, armed: true };
            let budget = match ticket {
                Ticket::Probe(_) | Ticket::Degraded => remaining.min(target.policy.breaker.probe_timeout),
                Ticket::Normal => remaining,
            };
            self.made += 1;
            let started = Instant::now();
            let span = super::record::attempt_span(target, self.made);
            let (result, meta) = call(target.clone(), budget).instrument(span.clone()).await;
            span.record("outcome", result.as_ref().map_or_else(|e| e.class.as_str(), |_| "ok"));
            let latency = started.elapsed();
            let now = self.gateway.clock.now();
            if let Some(room) = meta.headroom {
                target.account.observe(room, target.policy.throttle_below, now);
            }
            let ticket = held.disarm();
            let error = match result {
                Ok(value) => {
                    self.answered(index, ticket, latency, now);
                    return Turn::Over(Ok((value, target.clone())));
                }
                Err(error) => error,
            };
            if let Some(end) = self.after_failure(target, ticket, error, latency, now) {
                return end;
            }
            tries += 1;
            let Some(pause) = self.backoff(target, tries) else { return Turn::Next };
            tokio::time::sleep(pause).await;
        }
    }

    /// A breaker ticket for the `index`th target, or `None` when it is set
    /// aside for now (cooling down after a 429, or its circuit open), a skip
    /// in the trail. In degraded mode a refusing breaker may still let it through.
    fn admit(&mut self, index: usize) -> Option<Ticket> {
        let target = &self.route.targets[index];
        let now = self.gateway.clock.now();
        if let Some(wait) = target.account.cooling(now) {
            self.note_retry(wait);
            self.skip(target, "cooling-down", format!("rate limited for {}ms more", wait.as_millis()));
            return None;
        }
        let wait = match target.admit(now, &self.gateway.metrics) {
            Ok(ticket) => return Some(ticket),
            Err(wait) => wait,
        };
        self.only_rate_limits = false;
        if !self.degraded {
            if target.policy.breaker.panic_min_success < 1.0 {
                self.refused.push(index);
            }
            self.skip(target, "circuit-open", format!("circuit open for {}ms more", wait.as_millis()));
            return None;
        }
        match target.admit_degraded(&self.gateway.metrics) {
            Ok(ticket) => Some(ticket),
            Err(rate) => {
                let floor = target.policy.breaker.panic_min_success;
                let why = format!(
                    "circuit open for {}ms more; {:.0}% of its last calls succeeded, under panic-min-success ({:.0}%)",
                    wait.as_millis(),
                    rate * 100.0,
                    floor * 100.0
                );
                self.skip(target, "circuit-open", why);
                None
            }
        }
    }

    fn skip(&mut self, target: &RouteTarget, reason: &str, why: String) {
        tracing::info!(route = %target.route, target = %target.label(), reason, "target skipped");
        self.gateway.metrics.skips.get_or_create(&target.labels(reason)).inc();
        self.trail.push(Attempt {
            target: target.label().to_string(),
            outcome: AttemptOutcome::Skipped(why),
            latency: Duration::ZERO,
        });
    }

    /// Remembers the soonest a target set aside by Retry-After comes back.
    fn note_retry(&mut self, wait: Duration) {
        self.soonest_retry = Some(self.soonest_retry.map_or(wait, |w| w.min(wait)));
    }

    /// Records the answer of the `index`th target: its breaker, latency and
    /// metrics, the trail, and the conversation that now sticks to it.
    fn answered(&mut self, index: usize, ticket: Ticket, latency: Duration, now: Instant) {
        let route = self.route;
        let target = &route.targets[index];
        target.record(ticket, true, now, &self.gateway.metrics);
        target.account.observe_latency(latency);
        target.count_ok(latency);
        tracing::debug!(route = %route.name, target = %target.label(), attempt = self.made, ms = latency.as_millis() as u64, "attempt ok");
        self.trail.push(Attempt { target: target.label().to_string(), outcome: AttemptOutcome::Ok, latency });
        if let Some(conversation) = &self.req.conversation {
            route.stick(&self.caller.tenant, conversation, index, now);
        }
    }

    /// Records a failed attempt on `target` (its breaker, metrics and the
    /// trail) and says how the turn ends: see [`Run::verdict`].
    fn after_failure<T>(
        &mut self,
        target: &RouteTarget,
        ticket: Ticket,
        error: ProviderError,
        latency: Duration,
        now: Instant,
    ) -> Option<Turn<T>> {
        let metrics = &self.gateway.metrics;
        if error.class.counts_against_target() {
            target.record(ticket, false, now, metrics);
        } else {
            target.release(ticket);
        }
        metrics.attempts.get_or_create(&target.labels(error.class.as_str())).inc();
        metrics.attempt_seconds.get_or_create(&target.labels("error")).observe(latency.as_secs_f64());
        target.hour.attempt(false, latency);
        tracing::warn!(route = %self.route.name, target = %target.label(), attempt = self.made, %error, "attempt failed");
        let verdict = self.verdict(target, &error, now);
        self.trail.push(Attempt {
            target: target.label().to_string(),
            outcome: AttemptOutcome::Failed(error),
            latency,
        });
        verdict
    }

    /// What follows a failed attempt: after a 429, the next target at once
    /// (this one cools down for its Retry-After); after an error no retry can
    /// fix, the end of the request; else `None`, as a retry may help.
    fn verdict<T>(&mut self, target: &RouteTarget, error: &ProviderError, now: Instant) -> Option<Turn<T>> {
        if error.class == ErrorClass::RateLimited {
            let wait = error.retry_after.unwrap_or(DEFAULT_COOLDOWN);
            target.account.cool_down(now, wait);
            target.hour.failover();
            self.note_retry(wait);
            tracing::info!(route = %self.route.name, target = %target.label(), wait_ms = wait.as_millis() as u64, "failover after 429");
            return Some(Turn::Next);
        }
        self.only_rate_limits = false;
        if error.class.is_retryable() {
            return None;
        }
        let text = format!("{}: {error}", target.label());
        Some(Turn::Over(Err(match error.class {
            ErrorClass::InvalidRequest => LlmError::InvalidRequest(text),
            ErrorClass::ContentFilter => LlmError::ContentFiltered(text),
            _ => LlmError::Unavailable(format!("{text} (not retried)")),
        })))
    }

    /// The pause before retrying `target` after its `tries`th retryable
    /// failure, or `None` when its retries are used up or the pause would
    /// end past the deadline.
    fn backoff(&mut self, target: &RouteTarget, tries: u32) -> Option<Duration> {
        if tries > target.policy.retries {
            return None;
        }
        let s = &self.route.settings;
        let pause = full_jitter(s.backoff_base, s.backoff_max, self.retries);
        self.retries += 1;
        if Instant::now() + pause >= self.deadline {
            return None;
        }
        tracing::debug!(route = %self.route.name, target = %target.label(), pause_ms = pause.as_millis() as u64, "backing off before retry");
        Some(pause)
    }

    /// Whether waiting `wait` for a rate-limited target keeps within the
    /// route's rate-limit-wait (over all waits), its max-attempts and the deadline.
    fn may_wait(&self, wait: Duration) -> bool {
        let s = &self.route.settings;
        self.made < s.max_attempts && self.waited + wait <= s.rate_limit_wait && Instant::now() + wait < self.deadline
    }

    /// The error of a request past its deadline, listing every attempt.
    fn timed_out(&self) -> LlmError {
        let (name, timeout) = (&*self.route.name, paddock_core::Span(self.route.settings.timeout));
        let mut text = format!("route {name:?} gave no answer within its timeout of {timeout}");
        self.list_trail(&mut text);
        LlmError::Timeout(text)
    }

    /// The error of a request no target answered, listing every attempt.
    fn exhausted(&self) -> LlmError {
        let s = &self.route.settings;
        let mut text = format!("every target of route {:?} failed", &*self.route.name);
        if self.made >= s.max_attempts {
            text.push_str(&format!(" within max-attempts ({})", s.max_attempts));
        }
        self.list_trail(&mut text);
        LlmError::Unavailable(text)
    }

    fn list_trail(&self, text: &mut String) {
        for (i, attempt) in self.trail.iter().enumerate() {
            text.push_str(&format!("; {}. {attempt}", i + 1));
        }
    }

    /// Ends the request with `error`, handing back the trail with it.
    fn fail(self, error: LlmError) -> Failure {
        tracing::warn!(route = %self.route.name, %error, "llm call failed");
        Failure { error, trail: self.trail }
    }
}

/// Exponential backoff with full jitter: a uniform pause in
/// `[0, min(max, base · 2^retry)]`. Full jitter spreads out the retries of
/// many callers that failed together, so they do not hit a recovering
/// provider in lock-step.
pub fn full_jitter(base: Duration, max: Duration, retry: u32) -> Duration {
    let ceiling = base.saturating_mul(1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX)).min(max);
    ceiling.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests;
