//! Replaying a journal as a test case does: the calls that act on the world
//! (LLM, blackboard, agents, tools, approvals, HTTP) must come in the
//! recorded order, while the clock's readings and random numbers — which an
//! interpreter also draws while it starts, a number of times its version
//! decides — are answered from the recorded readings of the same call while
//! they line up, and by the real clock and random source past them.

use super::Entry;
use std::collections::{HashMap, VecDeque};

/// Whether `call` only reads the clock or draws random numbers.
pub fn is_ambient(call: &str) -> bool {
    matches!(call, "clock.wall" | "clock.monotonic") || call.starts_with("random.")
}

/// The ambient entries of a journal, by call, and where the others were.
#[derive(Debug)]
pub(crate) struct Ambient {
    /// The recorded answers of each ambient call, in order.
    queues: HashMap<String, VecDeque<Entry>>,
    /// The number (from 1, over the whole journal) of each other entry.
    numbers: Vec<usize>,
    /// How many entries the journal had.
    total: usize,
}

impl Ambient {
    /// Splits `entries`: the ambient ones into queues, the others returned in order.
    pub(crate) fn split(entries: Vec<Entry>) -> (Ambient, Vec<Entry>) {
        let total = entries.len();
        let mut ambient = Ambient { queues: HashMap::new(), numbers: Vec::new(), total };
        let mut effects = Vec::new();
        for (i, entry) in entries.into_iter().enumerate() {
            if is_ambient(&entry.call) {
                ambient.queues.entry(entry.call.clone()).or_default().push_back(entry);
            } else {
                ambient.numbers.push(i + 1);
                effects.push(entry);
            }
        }
        (ambient, effects)
    }

    /// The recorded answer of `call` with `request`, when the next one
    /// recorded for that call asked the same; taken, so the next asks the next.
    pub(crate) fn take(&mut self, call: &str, request: &serde_json::Value) -> Option<serde_json::Value> {
        let queue = self.queues.get_mut(call)?;
        match queue.front() {
            Some(entry) if entry.request == *request => queue.pop_front().map(|e| e.reply),
            _ => None,
        }
    }

    /// The number in the whole journal of the `index`th other entry (from 0);
    /// past the last, one past the journal's end.
    pub(crate) fn number(&self, index: usize) -> usize {
        self.numbers.get(index).copied().unwrap_or(self.total + 1)
    }
}
