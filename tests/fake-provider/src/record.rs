//! The log of requests the fake received.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, Uri};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::behavior::Behavior;

/// How many requests the log keeps; older ones are dropped first. Enough for
/// any test, and a bound on memory during a long benchmark.
pub const LOG_CAPACITY: usize = 10_000;

/// The API family a request spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// OpenAI chat completions and embeddings (and servers that copy them).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini `generateContent` and embeddings.
    Gemini,
    /// Ollama `/api/chat` and `/api/embed`.
    Ollama,
}

/// One request as the fake received it, and what it did with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The dialect of the endpoint it reached.
    pub dialect: Dialect,
    /// Path and query, e.g. `/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse`.
    pub path: String,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The JSON body; a body that was not JSON is kept as a string.
    pub body: serde_json::Value,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// What the fake did.
    pub behavior: Behavior,
    /// When it arrived; not sent over the control API (a deserialized record gets the time of reading).
    #[serde(skip, default = "Instant::now")]
    pub at: Instant,
}

impl Recorded {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// A request as the hot path stores it: moved in whole, converted only when read.
pub(crate) struct Entry {
    pub dialect: Dialect,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
    pub stream: bool,
    pub behavior: Arc<Behavior>,
    pub at: Instant,
}

impl Entry {
    fn to_recorded(&self) -> Recorded {
        Recorded {
            dialect: self.dialect,
            path: self.uri.path_and_query().map_or_else(|| self.uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
                .collect(),
            body: self.body.clone(),
            stream: self.stream,
            behavior: Behavior::clone(&self.behavior),
            at: self.at,
        }
    }
}

/// The last [`LOG_CAPACITY`] requests.
///
/// A mutex, held only to push or pop one entry: the server has as many
/// workers as cores, so at most that many contend, for nanoseconds, against
/// tens of microseconds of HTTP work per request.
#[derive(Default)]
pub(crate) struct RequestLog {
    entries: Mutex<VecDeque<Entry>>,
}

impl RequestLog {
    pub fn push(&self, entry: Entry) {
        let evicted = {
            let mut entries = self.entries.lock();
            let evicted = if entries.len() >= LOG_CAPACITY { entries.pop_front() } else { None };
            entries.push_back(entry);
            evicted
        };
        // Dropping a body can take a while; not under the lock.
        drop(evicted);
    }

    pub fn snapshot(&self) -> Vec<Recorded> {
        self.entries.lock().iter().map(Entry::to_recorded).collect()
    }

    pub fn clear(&self) {
        let entries = std::mem::take(&mut *self.entries.lock());
        drop(entries);
    }
}
