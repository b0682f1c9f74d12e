//! How a provider attempt failed, sorted into the classes the resilience
//! policy acts on.

use std::fmt;
use std::time::Duration;

/// The kind of a failed attempt. The policy reads only this, never a status
/// code, so every adapter maps its provider's errors here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 429 or the provider's rate-limit error: fail over at once, and wait
    /// out Retry-After before trying this target again.
    RateLimited,
    /// The provider is overloaded (Anthropic 529, 503): retryable.
    Overloaded,
    /// A 5xx or an error event after the answer began: retryable.
    Server,
    /// No answer (or no next piece) within a timeout: retryable.
    Timeout,
    /// The connection failed or broke: retryable.
    Connection,
    /// The provider sent something we cannot read (malformed JSON, a stream
    /// that ended without its terminator): retryable.
    Malformed,
    /// The request itself is wrong: never retried.
    InvalidRequest,
    /// The key was refused: never retried.
    Auth,
    /// The provider refused the content: never retried.
    ContentFilter,
    /// The account has no credit (`insufficient_quota`): never retried.
    InsufficientQuota,
    /// A spend cap set at the provider was reached: never retried.
    SpendLimit,
    /// A per-day quota is used up: never retried.
    DailyQuota,
}

impl ErrorClass {
    /// Every class, in the order above.
    pub const ALL: [ErrorClass; 12] = [
        ErrorClass::RateLimited,
        ErrorClass::Overloaded,
        ErrorClass::Server,
        ErrorClass::Timeout,
        ErrorClass::Connection,
        ErrorClass::Malformed,
        ErrorClass::InvalidRequest,
        ErrorClass::Auth,
        ErrorClass::ContentFilter,
        ErrorClass::InsufficientQuota,
        ErrorClass::SpendLimit,
        ErrorClass::DailyQuota,
    ];

    /// Whether another attempt (after backoff) may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Overloaded
                | ErrorClass::Server
                | ErrorClass::Timeout
                | ErrorClass::Connection
                | ErrorClass::Malformed
        )
    }

    /// Whether the failure says the *target* is unhealthy (and so counts
    /// towards its circuit breaker) rather than the request being wrong or
    /// the target merely busy. An account out of credit stays broken for every
    /// request, so it counts too.
    pub fn counts_against_target(self) -> bool {
        self.is_retryable() || matches!(self, ErrorClass::Auth | ErrorClass::InsufficientQuota | ErrorClass::SpendLimit)
    }

    /// A short name for messages, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::RateLimited => "rate-limited",
            ErrorClass::Overloaded => "overloaded",
            ErrorClass::Server => "server-error",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Connection => "connection",
            ErrorClass::Malformed => "malformed",
            ErrorClass::InvalidRequest => "invalid-request",
            ErrorClass::Auth => "auth",
            ErrorClass::ContentFilter => "content-filter",
            ErrorClass::InsufficientQuota => "insufficient-quota",
            ErrorClass::SpendLimit => "spend-limit",
            ErrorClass::DailyQuota => "daily-quota",
        }
    }
}

/// A failed attempt against one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// What kind of failure.
    pub class: ErrorClass,
    /// The HTTP status, when there was one.
    pub status: Option<u16>,
    /// The provider's own message (never containing a key).
    pub message: String,
    /// How long the provider asked us to wait (Retry-After, retry-after-ms,
    /// Gemini `RetryInfo`).
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    /// An error of `class` with `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        ProviderError { class, status: None, message: message.into(), retry_after: None }
    }

    /// The same error with an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.class.as_str())?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, " [retry after {}ms]", wait.as_millis())?;
        }
        Ok(())
    }
}

/// Maps a status code with no more specific information to a class.
pub fn class_of_status(status: u16) -> ErrorClass {
    match status {
        429 => ErrorClass::RateLimited,
        401 | 403 => ErrorClass::Auth,
        408 => ErrorClass::Timeout,
        503 | 529 => ErrorClass::Overloaded,
        500..=599 => ErrorClass::Server,
        _ => ErrorClass::InvalidRequest,
    }
}

/// Cuts a provider's error text to something fit for a message: providers
/// sometimes return whole HTML pages.
pub fn excerpt(text: &str) -> String {
    const MAX: usize = 300;
    let text = text.trim();
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
