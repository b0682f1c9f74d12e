//! Why a blackboard operation was refused.

/// Why a blackboard operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BoardError {
    /// The key or prefix is not acceptable; the text says why.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The time-to-live is zero or over [`MAX_TTL`](crate::MAX_TTL).
    #[error("invalid ttl for key {key:?}: {why}")]
    InvalidTtl {
        /// The key written.
        key: String,
        /// What is wrong, with the limits.
        why: String,
    },
    /// Compare-and-swap found another revision (0 = absent).
    #[error("conflict: current revision is {current}")]
    Conflict {
        /// The key's revision now.
        current: u64,
    },
    /// The value is over the size limit.
    #[error("value of {size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The value's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The tenant's key count or byte total would be exceeded.
    #[error("quota exceeded: {0}")]
    QuotaExceeded(String),
    /// The store failed (I/O, a corrupt file); the text says how.
    #[error("storage failure: {0}")]
    Storage(String),
    /// The watcher fell behind the kept history.
    #[error("lagged: changes after revision {after} are no longer kept; resync and watch after {resume_after}")]
    Lagged {
        /// The cursor the watcher asked from.
        after: u64,
        /// The revision to resume watching after, once resynchronised.
        resume_after: u64,
    },
}
