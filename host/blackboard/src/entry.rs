//! What a board holds and what watchers see: entries with their writer and
//! times, changes, and the millisecond times stores keep.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who made a write: an agent, in one run. The tenant is implicit: it is the
/// namespace written to. Cheap to clone (two shared strings).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    /// The agent's name (`paddock-cli` from the command line).
    pub agent: Arc<str>,
    /// The run the write was part of.
    pub run: Arc<str>,
}

/// The agent recorded for the deletes the host makes when a ttl runs out.
pub const EXPIRY_AGENT: &str = "paddock";
/// The run recorded for those deletes.
pub const EXPIRY_RUN: &str = "ttl";

static EXPIRY_WRITER: LazyLock<Writer> = LazyLock::new(|| Writer::new(EXPIRY_AGENT, EXPIRY_RUN));

impl Writer {
    /// `agent` writing as part of `run`.
    pub fn new(agent: impl Into<Arc<str>>, run: impl Into<Arc<str>>) -> Self {
        Writer { agent: agent.into(), run: run.into() }
    }

    /// The writer of the host's removal of an expired key: `paddock`, run `ttl`.
    pub fn expiry() -> Self {
        EXPIRY_WRITER.clone()
    }
}

/// A stored value with its provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The bytes.
    pub value: Arc<[u8]>,
    /// Revision of the write that stored it.
    pub revision: u64,
    /// Who wrote it.
    pub writer: Writer,
    /// When it was written (to the millisecond).
    pub written_at: SystemTime,
    /// When it expires, if it was written with a ttl.
    pub expires_at: Option<SystemTime>,
}

impl Entry {
    /// Whether it has expired at `now_ms` (milliseconds since the Unix epoch).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at.is_some_and(|at| unix_millis(at) <= now_ms)
    }
}

/// One change, as seen by watchers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key changed.
    pub key: Arc<str>,
    /// The new value; `None` for a delete.
    pub value: Option<Arc<[u8]>>,
    /// The write's revision.
    pub revision: u64,
    /// Who made it; [`Writer::expiry`] when the host removed an expired key.
    pub writer: Writer,
}

impl Change {
    /// What it weighs against history and watch bounds: its key and value.
    pub fn bytes(&self) -> u64 {
        (self.key.len() + self.value.as_ref().map_or(0, |v| v.len())) as u64
    }
}

/// What a read found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A live entry.
    Found(Entry),
    /// No entry.
    Absent,
    /// An entry whose ttl ran out, not yet removed; it reads as absent.
    Expired {
        /// Its revision, for a removal conditional on it.
        revision: u64,
    },
}

/// Milliseconds since the Unix epoch (0 before it).
pub fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `millis` milliseconds after the Unix epoch.
pub fn from_unix_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(millis)
}
