//! The tenant's shared blackboard: raw bytes, and JSON values through serde.
//!
//! Every [`Entry`] and [`Change`] names its writer (agent) and run; an entry
//! written with [`put_expiring`] or [`compare_and_swap_expiring`] reads as
//! absent once its ttl (in milliseconds) runs out, and the host then publishes
//! its deletion as a change by writer `"paddock"`, run `"ttl"`.

use crate::bindings::paddock::agent::blackboard as raw;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;

pub use raw::{
    Change, Entry, Error, compare_and_swap, compare_and_swap_expiring, delete, get, list, put, put_expiring, watch,
};

/// A blackboard error, or a value that was not the JSON expected.
#[derive(Debug)]
pub enum JsonError {
    /// The blackboard refused.
    Board(Error),
    /// The stored value is not JSON of the expected shape.
    Decode {
        /// The key.
        key: String,
        /// The decoder's complaint.
        reason: String,
    },
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::Board(e) => write!(f, "blackboard: {}", describe(e)),
            JsonError::Decode { key, reason } => {
                write!(f, "blackboard key {key:?} does not hold the expected JSON: {reason}")
            }
        }
    }
}

impl std::error::Error for JsonError {}

impl From<Error> for JsonError {
    fn from(e: Error) -> Self {
        JsonError::Board(e)
    }
}

/// Says what a blackboard error means, in words.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Denied(why) => format!("denied: {why}"),
        Error::Conflict(current) => format!("conflict: the current revision is {current}"),
        Error::TooLarge(limit) => format!("too large: the limit is {limit} bytes"),
        Error::QuotaExceeded(why) => format!("quota exceeded: {why}"),
        Error::Lagged(resume) => format!("lagged: resynchronise, then watch after revision {resume}"),
        Error::Unavailable(why) => format!("unavailable: {why}"),
    }
}

/// Reads `key` as JSON; `None` when absent. Returns the value and its revision.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<(T, u64)>, JsonError> {
    match get(key)? {
        None => Ok(None),
        Some(entry) => serde_json::from_slice(&entry.value)
            .map(|v| Some((v, entry.revision)))
            .map_err(|e| JsonError::Decode { key: key.to_string(), reason: e.to_string() }),
    }
}

/// Writes `value` as JSON to `key`; returns the new revision.
pub fn put_json<T: Serialize>(key: &str, value: &T) -> Result<u64, JsonError> {
    let bytes =
        serde_json::to_vec(value).map_err(|e| JsonError::Decode { key: key.to_string(), reason: e.to_string() })?;
    Ok(put(key, &bytes)?)
}

/// Replaces `key`'s JSON value with `f(current)` using compare-and-swap,
/// retrying when another writer got there first, so no update is lost.
/// Returns the value written and its revision.
pub fn update_json<T, F>(key: &str, mut f: F) -> Result<(T, u64), JsonError>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> T,
{
    loop {
        let (current, revision) = match get_json::<T>(key)? {
            Some((value, revision)) => (Some(value), revision),
            None => (None, 0),
        };
        let next = f(current);
        let bytes =
            serde_json::to_vec(&next).map_err(|e| JsonError::Decode { key: key.to_string(), reason: e.to_string() })?;
        match compare_and_swap(key, revision, &bytes) {
            Ok(revision) => return Ok((next, revision)),
            Err(Error::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
