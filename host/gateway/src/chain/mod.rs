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
        let s = &route.settings;
        let conversation = req.conversation.as_deref().map(|c| (&caller.tenant, c));
        let mut trail = Vec::new();
        let mut made = 0u32;
        let mut retries = 0u32;
        let mut waited = Duration::ZERO;
        let mut only_rate_limits = true;
        // Passes over the chain: a second one only after waiting out a short
        // Retry-After when every target was rate limited.
        loop {
            let order = route.order(
                req.estimated_input_tokens(),
                req.max_tokens.unwrap_or(DEFAULT_OUTPUT_ESTIMATE),
                conversation,
                &*self.clock,
                &self.metrics,
            );
            let mut soonest_retry: Option<Duration> = None;
            'targets: for index in order {
                let target = &route.targets[index];
                let mut tries = 0u32;
                loop {
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Err(self.timed_out(route, trail, s.timeout));
                    }
                    if made >= s.max_attempts {
                        break 'targets;
                    }
                    let now = self.clock.now();
                    if let Some(wait) = target.account.cooling(now) {
                        soonest_retry = Some(soonest_retry.map_or(wait, |w| w.min(wait)));
                        self.skip(
                            &mut trail,
                            target,
                            "cooling-down",
                            format!("rate limited for {}ms more", wait.as_millis()),
                        );
                        continue 'targets;
                    }
                    let ticket = match target.admit(now, &self.metrics) {
                        Ok(ticket) => ticket,
                        Err(wait) => {
                            only_rate_limits = false;
                            self.skip(
                                &mut trail,
                                target,
                                "circuit-open",
                                format!("circuit open for {}ms more", wait.as_millis()),
                            );
                            continue 'targets;
                        }
                    };
                    let held = Held { target, ticket, armed: true };
                    let budget = match ticket {
                        Ticket::Probe(_) => remaining.min(target.policy.breaker.probe_timeout),
                        Ticket::Normal => remaining,
                    };
                    made += 1;
                    let started = Instant::now();
                    let (result, meta) = call(target.clone(), budget).await;
                    let latency = started.elapsed();
                    let now = self.clock.now();
                    if let Some(room) = meta.headroom {
                        target.account.observe(room, target.policy.throttle_below, now);
                    }
                    let ticket = held.disarm();
                    match result {
                        Ok(value) => {
                            target.record(ticket, true, now, &self.metrics);
                            target.account.observe_latency(latency);
                            target.count_ok(latency);
                            tracing::debug!(route = %route.name, target = %target.label(), attempt = made, ms = latency.as_millis() as u64, "attempt ok");
                            trail.push(Attempt {
                                target: target.label().to_string(),
                                outcome: AttemptOutcome::Ok,
                                latency,
                            });
                            if let Some(conversation) = &req.conversation {
                                route.stick(&caller.tenant, conversation, index, now);
                            }
                            return Ok((value, target.clone(), trail));
                        }
                        Err(error) => {
                            if error.class.counts_against_target() {
                                target.record(ticket, false, now, &self.metrics);
                            } else {
                                target.release(ticket);
                            }
                            self.metrics.attempts.get_or_create(&target.labels(error.class.as_str())).inc();
                            self.metrics
                                .attempt_seconds
                                .get_or_create(&target.labels("error"))
                                .observe(latency.as_secs_f64());
                            tracing::warn!(route = %route.name, target = %target.label(), attempt = made, %error, "attempt failed");
                            trail.push(Attempt {
                                target: target.label().to_string(),
                                outcome: AttemptOutcome::Failed(error.clone()),
                                latency,
                            });
                            if error.class == ErrorClass::RateLimited {
                                let wait = error.retry_after.unwrap_or(DEFAULT_COOLDOWN);
                                target.account.cool_down(now, wait);
                                soonest_retry = Some(soonest_retry.map_or(wait, |w| w.min(wait)));
                                tracing::info!(route = %route.name, target = %target.label(), wait_ms = wait.as_millis() as u64, "failover after 429");
                                continue 'targets;
                            }
                            only_rate_limits = false;
                            if !error.class.is_retryable() {
                                let text = format!("{}: {error}", target.label());
                                let error = match error.class {
                                    ErrorClass::InvalidRequest => LlmError::InvalidRequest(text),
                                    ErrorClass::ContentFilter => LlmError::ContentFiltered(text),
                                    _ => LlmError::Unavailable(format!("{text} (not retried)")),
                                };
                                return Err(self.failed(route, error, trail));
                            }
                            tries += 1;
                            if tries > target.policy.retries {
                                continue 'targets;
                            }
                            let pause = full_jitter(s.backoff_base, s.backoff_max, retries);
                            retries += 1;
                            if Instant::now() + pause >= deadline {
                                continue 'targets;
                            }
                            tracing::debug!(route = %route.name, target = %target.label(), pause_ms = pause.as_millis() as u64, "backing off before retry");
                            tokio::time::sleep(pause).await;
                        }
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(route, trail, s.timeout));
            }
            // Targets were set aside by Retry-After. Waiting beats failing when
            // the wait is short: within rate-limit-wait in all, within the
            // deadline and the retry budget.
            let Some(wait) = soonest_retry else { break };
            if made >= s.max_attempts || waited + wait > s.rate_limit_wait || Instant::now() + wait >= deadline {
                if only_rate_limits {
                    return Err(self.failed(route, LlmError::RateLimited(wait), trail));
                }
                break;
            }
            tracing::info!(route = %route.name, wait_ms = wait.as_millis() as u64, "every target rate limited; waiting");
            tokio::time::sleep(wait).await;
            waited += wait;
        }
        let mut text = format!("every target of route {:?} failed", &*route.name);
        if made >= s.max_attempts {
            text.push_str(&format!(" within max-attempts ({})", s.max_attempts));
        }
        for (i, attempt) in trail.iter().enumerate() {
            text.push_str(&format!("; {}. {attempt}", i + 1));
        }
        Err(self.failed(route, LlmError::Unavailable(text), trail))
    }

    fn skip(&self, trail: &mut Vec<Attempt>, target: &RouteTarget, reason: &str, why: String) {
        tracing::info!(route = %target.route, target = %target.label(), reason, "target skipped");
        self.metrics.skips.get_or_create(&target.labels(reason)).inc();
        trail.push(Attempt {
            target: target.label().to_string(),
            outcome: AttemptOutcome::Skipped(why),
            latency: Duration::ZERO,
        });
    }

    fn timed_out(&self, route: &Route, trail: Vec<Attempt>, timeout: Duration) -> Failure {
        let mut text =
            format!("route {:?} gave no answer within its timeout of {}", &*route.name, paddock_core::Span(timeout));
        for (i, attempt) in trail.iter().enumerate() {
            text.push_str(&format!("; {}. {attempt}", i + 1));
        }
        self.failed(route, LlmError::Timeout(text), trail)
    }

    fn failed(&self, route: &Route, error: LlmError, trail: Vec<Attempt>) -> Failure {
        tracing::warn!(route = %route.name, %error, "llm call failed");
        Failure { error, trail }
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
