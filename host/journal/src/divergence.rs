//! How a replay can differ from its journal, and the text that says so.

use std::fmt;

/// The most characters of a call's arguments a divergence quotes.
const QUOTED_CHARS: usize = 200;

/// The first call at which a replay differed from its journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// The number of the call, counted from 1 over the invocation's journaled calls.
    pub call: usize,
    /// How it differed.
    pub kind: DivergenceKind,
}

/// How a replayed call differed from the journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DivergenceKind {
    /// The agent made another call, or the same call with other arguments.
    Differs {
        /// What the agent called, e.g. `blackboard.get("plan")`.
        called: String,
        /// What the journal has in its place.
        recorded: String,
    },
    /// The agent made a call after the last one in the journal.
    Ended {
        /// What the agent called.
        called: String,
    },
    /// The agent made a call the journal could not hold: recording stopped
    /// at its size cap after call `after`.
    Truncated {
        /// What the agent called.
        called: String,
        /// The last call recorded.
        after: usize,
        /// The cap, in bytes of JSON.
        limit: usize,
    },
    /// The agent finished before using the whole journal.
    Unfinished {
        /// How many recorded calls it never made.
        remaining: usize,
        /// The first of them.
        next: String,
    },
    /// The agent finished at the call after which recording stopped at its
    /// cap: the recording made more calls.
    FinishedAtTruncation {
        /// The last call recorded.
        after: usize,
        /// The cap, in bytes of JSON.
        limit: usize,
    },
    /// The journal's answer is not of the type the call answers with (a
    /// journal edited, or recorded by another version of the host).
    Unreadable {
        /// The recorded call.
        recorded: String,
        /// Why its answer does not fit.
        error: String,
    },
}

impl std::error::Error for Divergence {}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.call;
        write!(f, "replay diverged at call #{n}: ")?;
        match &self.kind {
            DivergenceKind::Differs { called, recorded } => {
                write!(f, "the agent called {called} but the journal has {recorded}")
            }
            DivergenceKind::Ended { called } if n <= 1 => {
                write!(f, "the agent called {called} but the journal is empty")
            }
            DivergenceKind::Ended { called } => {
                write!(f, "the agent called {called} but the journal ends after call #{}", n - 1)
            }
            DivergenceKind::Truncated { called, after, limit } => write!(
                f,
                "the journal was truncated after call #{after} ({}); the agent called {called}",
                super::size(*limit)
            ),
            DivergenceKind::Unfinished { remaining, next } => {
                let s = if *remaining == 1 { "" } else { "s" };
                write!(f, "the agent finished, but the journal has {remaining} more call{s}, the next being {next}")
            }
            DivergenceKind::FinishedAtTruncation { after, limit } => write!(
                f,
                "the agent finished, but the journal was truncated after call #{after} ({}), so the recording made more calls",
                super::size(*limit)
            ),
            DivergenceKind::Unreadable { recorded, error } => {
                write!(f, "the journal's answer to {recorded} does not fit the call: {error}")
            }
        }
    }
}

/// `name(arguments)`, the arguments as JSON, cut to about 200 characters.
/// A request is the list of a call's arguments, so its brackets become the
/// call's parentheses.
pub(super) fn quote(call: &str, request: &serde_json::Value) -> String {
    let text = request.to_string();
    let inner = match request {
        serde_json::Value::Array(_) => &text[1..text.len() - 1],
        _ => &text,
    };
    match inner.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{call}({}…)", &inner[..cut]),
        None => format!("{call}({inner})"),
    }
}
