//! The journal of one invocation: every host call it made (LLM answers,
//! blackboard reads and writes, calls to other agents, approvals, the clock
//! and random numbers), in order, so that a replay can serve the same
//! answers without calling anything and report the first call that differs.
//!
//! A [`Tape`] records or replays; it is shared (by `Arc`) between the
//! invocation's capabilities and whoever runs it.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One host call and what the host answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The call, e.g. `llm.complete`, `blackboard.get`, `clock.now`.
    pub call: String,
    /// Its arguments.
    pub request: serde_json::Value,
    /// The host's answer.
    pub reply: serde_json::Value,
}

/// Records or replays the host calls of one invocation.
#[derive(Debug, Default)]
pub struct Tape {
    _private: (),
}

impl Tape {
    /// A tape that records every call.
    pub fn recording() -> Arc<Tape> {
        Arc::new(Tape::default())
    }

    /// A tape that answers each call from `entries`, in order, calling nothing.
    pub fn replaying(_entries: Vec<Entry>) -> Arc<Tape> {
        Arc::new(Tape::default())
    }

    /// The calls recorded so far.
    pub fn entries(&self) -> Vec<Entry> {
        Vec::new()
    }
}
