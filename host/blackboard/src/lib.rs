//! The blackboard: a versioned key-value board per tenant, with
//! compare-and-swap, prefix listing, watch cursors and keys that expire.
//!
//! Tenants are separate [`Namespace`]s, never prefixes of one key space: a
//! guest's key is looked up only inside its own tenant's map, so no key
//! string (`../x`, `/x`, NUL, look-alikes) can reach another tenant's data.
//! This crate knows nothing of wasmtime.
//!
//! Storage sits behind [`Backend`] / [`TenantStore`]: [`MemoryBackend`] (the
//! fast default for tests), [`RedbBackend`] (durable, in the data folder) and
//! [`PostgresBackend`] (one database several hosts share).
//! Checks on keys, sizes and time-to-live ([`Namespace`]), and the conflict
//! and quota rules of a write ([`plan_write`]), live here once so every
//! backend gives the same answers; one conformance suite runs against each.
//! Expiry is in `expiry.rs`.

mod board;
#[cfg(test)]
mod conformance;
mod durable;
mod entry;
mod error;
mod expiry;
#[cfg(test)]
mod fuzz;
mod latest;
mod memory;
mod metrics;
mod namespace;
mod plan;
mod postgres;
mod sql;
mod sqlite;
mod store;

pub use board::Blackboard;
pub use durable::RedbBackend;
pub use entry::{Change, EXPIRY_AGENT, EXPIRY_RUN, Entry, Lookup, Writer, from_unix_millis, unix_millis};
pub use error::BoardError;
pub use expiry::{MAX_TTL, SWEEP_EVERY, spawn_sweeper};
pub use memory::MemoryBackend;
pub use metrics::{BoardMetrics, OpLabels};
pub use namespace::Namespace;
pub use plan::{Totals, plan_shared, plan_write};
pub use postgres::PostgresBackend;
pub use sqlite::{LOOK_EVERY, SqliteBackend};
pub use store::{Backend, TenantStore, Write};

/// Most keys one `list` returns.
pub const LIST_MAX: usize = 1000;
/// Most changes one `watch` returns; the caller continues after the last one.
pub const WATCH_MAX: usize = 1000;
/// Most bytes (keys plus values) of the changes one `watch` returns, past the
/// first: an answer is built no bigger, however large the history.
pub const WATCH_MAX_BYTES: u64 = 4 << 20;

/// Limits of each tenant's board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoardLimits {
    /// Longest key or prefix, in bytes.
    pub key_bytes: u64,
    /// Largest value, in bytes.
    pub value_bytes: u64,
    /// Most keys a tenant may hold.
    pub max_keys: u64,
    /// Most bytes (keys plus values) a tenant may hold.
    pub max_bytes: u64,
    /// Changes kept for watchers; a watcher further behind gets `Lagged`.
    pub history: usize,
    /// Bytes (keys plus values) of the changes kept for watchers; the oldest
    /// go first past it, and the newest change is always kept.
    pub history_bytes: u64,
    /// Whether the key and byte counts come from the tenant's own policy
    /// (`tenants.NAME.blackboard`) rather than `[blackboard]`, for messages.
    pub per_tenant: bool,
    /// Whether `max_keys` and `max_bytes` bound every tenant of the backend
    /// together as well (the tenants `[tenants]` does not name share one
    /// quota), beside each tenant on its own.
    pub shared: bool,
}

impl Default for BoardLimits {
    fn default() -> Self {
        BoardLimits {
            key_bytes: 512,
            value_bytes: 1 << 20,
            max_keys: 100_000,
            max_bytes: 256 << 20,
            history: 4096,
            history_bytes: 16 << 20,
            per_tenant: false,
            shared: false,
        }
    }
}
