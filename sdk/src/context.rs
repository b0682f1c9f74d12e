//! Where this invocation stands: its run and, inside a flow, its flow, step
//! and attempt.
//!
//! The host passes these as WASI environment variables, the only ones an agent
//! sees. Inside a flow step all of them are set; outside a flow only
//! `PADDOCK_RUN`, and `PADDOCK_IDEMPOTENCY_KEY` equal to it. An empty variable
//! reads as absent.
//!
//! ```no_run
//! use paddock_sdk::context;
//! let run = context::run().unwrap_or_else(|| "local".to_string());
//! if context::attempt() > 1 {
//!     // A retry, or a re-run after a crash: look for work already done under
//!     // context::idempotency_key() before doing it again.
//! }
//! # let _ = run;
//! ```

use std::env;

/// The run this invocation belongs to (`PADDOCK_RUN`): a flow run's id, or
/// the id of a plain run, shared by every agent that run calls.
pub fn run() -> Option<String> {
    var("PADDOCK_RUN")
}

/// The flow's name (`PADDOCK_FLOW`); `None` outside a flow.
pub fn flow() -> Option<String> {
    var("PADDOCK_FLOW")
}

/// The step instance's path in its flow (`PADDOCK_STEP`), e.g.
/// `main/execute[2]/execute-task`; `None` outside a flow.
pub fn step() -> Option<String> {
    var("PADDOCK_STEP")
}

/// The 1-based attempt of this step (`PADDOCK_ATTEMPT`): above 1 on a retry,
/// and when a step that a host crash interrupted runs again. 1 when absent
/// (outside a flow) or not a positive number.
pub fn attempt() -> u32 {
    parse_attempt(var("PADDOCK_ATTEMPT").as_deref())
}

/// A key that stays the same across the retries and crash re-runs of one step
/// instance (`PADDOCK_IDEMPOTENCY_KEY`, `<run>/<step path>` in a flow; the run
/// id outside one). Store it beside a side effect to recognise, on a later
/// attempt, work that is already done. `None` on a host that does not set it.
pub fn idempotency_key() -> Option<String> {
    var("PADDOCK_IDEMPOTENCY_KEY")
}

fn var(name: &str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse_attempt(text: Option<&str>) -> u32 {
    text.and_then(|t| t.trim().parse::<u32>().ok()).filter(|&n| n >= 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::parse_attempt;

    #[test]
    fn attempt_is_one_when_absent_or_not_a_positive_number() {
        for text in [None, Some(""), Some("0"), Some("-2"), Some("two")] {
            assert_eq!(parse_attempt(text), 1, "{text:?}");
        }
        assert_eq!(parse_attempt(Some("3")), 3);
    }
}
