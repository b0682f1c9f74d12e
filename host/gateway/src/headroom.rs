//! Rate-limit headroom read from a provider's response headers, so a target
//! near its limit is passed over *before* it answers 429.
//!
//! OpenAI-style servers send `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`
//! (resets as Go durations, `6m0s`); Anthropic sends
//! `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}` (resets as
//! RFC 3339 times). Gemini and Ollama send none, and are never throttled this way.

use reqwest::header::{HeaderMap, HeaderName};
use std::time::{Duration, Instant, SystemTime};

/// One limit's headers: its size, what is left of it, when it resets.
type LimitHeaders = [HeaderName; 3];

/// OpenAI's.
static OPENAI_REQUESTS: LimitHeaders = [
    HeaderName::from_static("x-ratelimit-limit-requests"),
    HeaderName::from_static("x-ratelimit-remaining-requests"),
    HeaderName::from_static("x-ratelimit-reset-requests"),
];
static OPENAI_TOKENS: LimitHeaders = [
    HeaderName::from_static("x-ratelimit-limit-tokens"),
    HeaderName::from_static("x-ratelimit-remaining-tokens"),
    HeaderName::from_static("x-ratelimit-reset-tokens"),
];

/// Anthropic's.
static ANTHROPIC_REQUESTS: LimitHeaders = [
    HeaderName::from_static("anthropic-ratelimit-requests-limit"),
    HeaderName::from_static("anthropic-ratelimit-requests-remaining"),
    HeaderName::from_static("anthropic-ratelimit-requests-reset"),
];
static ANTHROPIC_TOKENS: LimitHeaders = [
    HeaderName::from_static("anthropic-ratelimit-tokens-limit"),
    HeaderName::from_static("anthropic-ratelimit-tokens-remaining"),
    HeaderName::from_static("anthropic-ratelimit-tokens-reset"),
];

/// How long a low reading holds when the provider gave no reset time.
const HOLD_WITHOUT_RESET: Duration = Duration::from_secs(1);

/// The longest wait or reset time taken from a provider's answer. Rate-limit
/// windows are at most a day; a longer one is a provider's mistake (or
/// hostile), and added to the clock it could overflow it.
pub const MAX_PROVIDER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// `secs` seconds that a provider asked for as a wait: none when negative
/// (or NaN), at most [`MAX_PROVIDER_WAIT`].
pub fn provider_wait(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.0).min(MAX_PROVIDER_WAIT.as_secs_f64()))
}

/// What is left of one limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Remaining {
    /// Left in this window.
    pub remaining: u64,
    /// The window's limit.
    pub limit: u64,
    /// When the window resets, if the provider said.
    pub reset_in: Option<Duration>,
}

impl Remaining {
    /// The fraction left (1.0 when the limit is zero or unknown).
    pub fn fraction(&self) -> f64 {
        if self.limit == 0 { 1.0 } else { self.remaining as f64 / self.limit as f64 }
    }
}

/// A target's headroom as its last response reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Headroom {
    /// Requests.
    pub requests: Option<Remaining>,
    /// Tokens.
    pub tokens: Option<Remaining>,
}

impl Headroom {
    /// Reads the headers of a response; `None` when it carries none.
    pub fn from_headers(headers: &HeaderMap, wall: SystemTime) -> Option<Headroom> {
        // Every answer is read, so the names are made once, not per call.
        let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
        let num = |name: &HeaderName| get(name).and_then(|v| v.parse::<u64>().ok());
        let read = |[limit, remaining, reset]: &LimitHeaders, parse: fn(&str, SystemTime) -> Option<Duration>| {
            Some(Remaining {
                limit: num(limit)?,
                remaining: num(remaining)?,
                reset_in: get(reset).and_then(|v| parse(v, wall)).map(|d| d.min(MAX_PROVIDER_WAIT)),
            })
        };
        let openai = |names: &LimitHeaders| read(names, |v, _| parse_go_duration(v));
        let anthropic = |names: &LimitHeaders| {
            read(names, |v, wall| {
                humantime::parse_rfc3339_weak(v).ok()?.duration_since(wall).ok().or(Some(Duration::ZERO))
            })
        };
        let headroom = Headroom {
            requests: openai(&OPENAI_REQUESTS).or_else(|| anthropic(&ANTHROPIC_REQUESTS)),
            tokens: openai(&OPENAI_TOKENS).or_else(|| anthropic(&ANTHROPIC_TOKENS)),
        };
        (headroom.requests.is_some() || headroom.tokens.is_some()).then_some(headroom)
    }

    /// The lower of the two fractions left.
    pub fn fraction(&self) -> f64 {
        [self.requests, self.tokens].iter().flatten().map(Remaining::fraction).fold(1.0, f64::min)
    }

    /// If this reading is below `threshold`, until when it holds: the reset
    /// of the exhausted limit, or a short hold when none was given.
    pub fn low_until(&self, threshold: f64, seen: Instant) -> Option<Instant> {
        [self.requests, self.tokens]
            .iter()
            .flatten()
            .filter(|r| r.fraction() < threshold)
            .map(|r| seen + r.reset_in.unwrap_or(HOLD_WITHOUT_RESET))
            .max()
    }
}

/// Parses a Go duration as OpenAI sends it: `1s`, `6m0s`, `20ms`, `1h2m3.5s`
/// (at most [`MAX_PROVIDER_WAIT`]).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(provider_wait(total))
}

/// Reads how long a 429 asks us to wait: `retry-after-ms`, then
/// `retry-after` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, wall: SystemTime) -> Option<Duration> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(provider_wait(ms / 1000.0));
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return Some(provider_wait(secs));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(wall).unwrap_or(Duration::ZERO).min(MAX_PROVIDER_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn go_durations_parse_as_openai_sends_them() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(parse_go_duration("1h2m3.5s"), Some(Duration::from_millis(3_723_500)));
        assert_eq!(parse_go_duration("soon"), None);
    }

    #[test]
    fn openai_headers_give_the_lower_fraction_and_its_reset() {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "100"),
            ("x-ratelimit-remaining-requests", "90"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-limit-tokens", "10000"),
            ("x-ratelimit-remaining-tokens", "1500"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        let room = Headroom::from_headers(&h, SystemTime::now()).unwrap();
        assert_eq!(room.fraction(), 0.15);
        let seen = Instant::now();
        assert_eq!(room.low_until(0.2, seen), Some(seen + Duration::from_secs(360)));
        assert_eq!(room.low_until(0.1, seen), None);
    }

    #[test]
    fn anthropic_headers_reset_at_a_date() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let reset = humantime::format_rfc3339(wall + Duration::from_secs(30)).to_string();
        let h = headers(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "5"),
            ("anthropic-ratelimit-requests-reset", &reset),
        ]);
        let room = Headroom::from_headers(&h, wall).unwrap();
        assert_eq!(room.requests.unwrap().reset_in, Some(Duration::from_secs(30)));
        assert_eq!(room.fraction(), 0.1);
    }

    #[test]
    fn no_rate_limit_headers_means_no_reading() {
        assert_eq!(Headroom::from_headers(&headers(&[("content-type", "application/json")]), SystemTime::now()), None);
    }

    #[test]
    fn retry_after_reads_ms_seconds_and_dates() {
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(retry_after(&headers(&[("retry-after-ms", "1500")]), wall), Some(Duration::from_millis(1500)));
        assert_eq!(retry_after(&headers(&[("retry-after", "7")]), wall), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(wall + Duration::from_secs(20));
        assert_eq!(retry_after(&headers(&[("retry-after", &date)]), wall), Some(Duration::from_secs(20)));
        assert_eq!(retry_after(&headers(&[]), wall), None);
    }

    #[test]
    fn a_wait_or_reset_too_long_for_the_clock_is_capped_at_a_day_not_a_panic() {
        // Found by fuzzing: `retry-after: 1e300` panicked converting it to a Duration, and a
        // reset of 9223372036854726144s overflowed the Instant a low reading holds until.
        let wall = SystemTime::now();
        for (name, value) in [("retry-after", "1e300"), ("retry-after", "inf"), ("retry-after-ms", "1e300")] {
            assert_eq!(retry_after(&headers(&[(name, value)]), wall), Some(MAX_PROVIDER_WAIT), "{name}: {value}");
        }
        let date = httpdate::fmt_http_date(wall + Duration::from_secs(400 * 86_400));
        assert_eq!(retry_after(&headers(&[("retry-after", &date)]), wall), Some(MAX_PROVIDER_WAIT));
        let h = headers(&[
            ("x-ratelimit-limit-requests", "10"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "9223372036854726144s"),
        ]);
        let room = Headroom::from_headers(&h, wall).unwrap();
        assert_eq!(room.requests.unwrap().reset_in, Some(MAX_PROVIDER_WAIT));
        let seen = Instant::now();
        assert_eq!(room.low_until(0.5, seen), Some(seen + MAX_PROVIDER_WAIT));
    }
}
