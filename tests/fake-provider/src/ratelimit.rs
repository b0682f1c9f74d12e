//! Rate-limit and retry headers, in each dialect's names and formats.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};

use crate::behavior::{RateLimitHeaders, RetryAfter};
use crate::clock::Rfc3339;
use crate::record::Dialect;

/// Adds the rate-limit headers `dialect` sends; Gemini and Ollama send none.
pub(crate) fn insert(dialect: Dialect, limits: &RateLimitHeaders, now: SystemTime, headers: &mut HeaderMap) {
    match dialect {
        Dialect::OpenAi => {
            let reset = HeaderValue::from_str(&go_duration(limits.reset_ms)).expect("a Go duration is ASCII");
            put(headers, "x-ratelimit-limit-requests", limits.limit_requests.into());
            put(headers, "x-ratelimit-limit-tokens", limits.limit_tokens.into());
            put(headers, "x-ratelimit-remaining-requests", limits.remaining_requests.into());
            put(headers, "x-ratelimit-remaining-tokens", limits.remaining_tokens.into());
            put(headers, "x-ratelimit-reset-requests", reset.clone());
            put(headers, "x-ratelimit-reset-tokens", reset);
        }
        Dialect::Anthropic => {
            let at = Rfc3339::seconds_ceil(now + Duration::from_millis(limits.reset_ms));
            let reset = HeaderValue::from_str(&at.to_string()).expect("an RFC 3339 time is ASCII");
            put(headers, "anthropic-ratelimit-requests-limit", limits.limit_requests.into());
            put(headers, "anthropic-ratelimit-requests-remaining", limits.remaining_requests.into());
            put(headers, "anthropic-ratelimit-requests-reset", reset.clone());
            put(headers, "anthropic-ratelimit-tokens-limit", limits.limit_tokens.into());
            put(headers, "anthropic-ratelimit-tokens-remaining", limits.remaining_tokens.into());
            put(headers, "anthropic-ratelimit-tokens-reset", reset);
        }
        Dialect::Gemini | Dialect::Ollama => {}
    }
}

/// Adds the header form of a retry hint. Gemini's body hint adds none.
pub(crate) fn insert_retry_after(retry_after: &RetryAfter, now: SystemTime, headers: &mut HeaderMap) {
    let value = match *retry_after {
        RetryAfter::None | RetryAfter::GeminiRetryInfo { .. } => return,
        RetryAfter::Seconds(secs) => HeaderValue::from(secs),
        RetryAfter::HttpDate { secs_from_now } => {
            let date = httpdate::fmt_http_date(now + Duration::from_secs(secs_from_now));
            HeaderValue::from_str(&date).expect("an HTTP date is ASCII")
        }
        RetryAfter::Millis(ms) => {
            put(headers, "retry-after-ms", HeaderValue::from(ms));
            return;
        }
    };
    put(headers, "retry-after", value);
}

fn put(headers: &mut HeaderMap, name: &'static str, value: HeaderValue) {
    headers.insert(HeaderName::from_static(name), value);
}

/// Milliseconds as Go's `time.Duration` prints them, which OpenAI's reset
/// headers use: `20ms`, `1s`, `1.5s`, `6m0s`, `1h0m0s`.
pub(crate) fn go_duration(ms: u64) -> String {
    if ms < 1000 {
        return if ms == 0 { "0s".to_owned() } else { format!("{ms}ms") };
    }
    let (hours, minutes, seconds, millis) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut out = String::with_capacity(12);
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{seconds}");
    if millis > 0 {
        let fraction = format!("{millis:03}");
        let _ = write!(out, ".{}", fraction.trim_end_matches('0'));
    }
    out.push('s');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_match_go() {
        let cases = [
            (0, "0s"),
            (20, "20ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (1020, "1.02s"),
            (60_000, "1m0s"),
            (360_000, "6m0s"),
            (90_500, "1m30.5s"),
            (3_600_000, "1h0m0s"),
            (3_661_000, "1h1m1s"),
        ];
        for (ms, expected) in cases {
            assert_eq!(go_duration(ms), expected, "{ms} ms");
        }
    }
}
