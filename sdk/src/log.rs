//! Logging into the host's log, under the agent's name.

use crate::bindings::paddock::agent::log::{Level, log};

/// Logs a very detailed message.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Logs a detailed message.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Logs a normal message.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Logs that something looks wrong.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Logs that something failed.
pub fn error(message: &str) {
    log(Level::Error, message);
}
