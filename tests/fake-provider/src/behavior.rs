//! What the fake does with a request: the types a test scripts.
//!
//! Every type here travels over the control API as JSON, so each one derives
//! serde and names its variants in kebab-case:
//! `{"kind":"fault","fault":"rate-limited","retry_after":{"seconds":7}}`.

use serde::{Deserialize, Serialize};

/// What the server does with one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Behavior {
    /// Answer successfully, in the dialect of the request.
    Reply(Reply),
    /// Fail the way the fault says, in the dialect of the request.
    Fault(Fault),
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior::Reply(Reply::default())
    }
}

impl From<Reply> for Behavior {
    fn from(reply: Reply) -> Self {
        Behavior::Reply(reply)
    }
}

impl From<Fault> for Behavior {
    fn from(fault: Fault) -> Self {
        Behavior::Fault(fault)
    }
}

/// A successful answer from the fake model.
///
/// When the request caps its output (`max_tokens`, `max_completion_tokens`,
/// `generationConfig.maxOutputTokens`, `options.num_predict`) below the number
/// of words in `text`, the text is cut to that many words and a `Stop` finish
/// becomes `Length`, as a real model would do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Reply {
    /// The text; `None` answers `fake reply to: <first 60 chars of the last user message>`.
    pub text: Option<String>,
    /// How many pieces the text is streamed in (at least one).
    pub chunks: usize,
    /// Reported prompt tokens; `None` counts whitespace-separated words of the prompt.
    pub input_tokens: Option<u32>,
    /// Reported output tokens; `None` counts words of the text and of the tool-call arguments.
    pub output_tokens: Option<u32>,
    /// Tool calls the model makes, after the text.
    pub tool_calls: Vec<FakeToolCall>,
    /// Why the model stopped.
    pub finish: Finish,
    /// Wait before sending the response headers.
    pub first_byte_delay_ms: u64,
    /// Wait between streamed pieces.
    pub chunk_delay_ms: u64,
}

/// The reply used when nothing else is said; a static so that faults can borrow it.
pub(crate) static DEFAULT_REPLY: Reply = Reply {
    text: None,
    chunks: 4,
    input_tokens: None,
    output_tokens: None,
    tool_calls: Vec::new(),
    finish: Finish::Stop,
    first_byte_delay_ms: 0,
    chunk_delay_ms: 0,
};

impl Default for Reply {
    fn default() -> Self {
        DEFAULT_REPLY.clone()
    }
}

impl Reply {
    /// A reply with this text.
    pub fn text(text: impl Into<String>) -> Reply {
        Reply { text: Some(text.into()), ..Reply::default() }
    }

    /// A reply that only calls tools, finishing with [`Finish::ToolCalls`].
    pub fn tool_calls(calls: impl IntoIterator<Item = FakeToolCall>) -> Reply {
        Reply {
            text: Some(String::new()),
            tool_calls: calls.into_iter().collect(),
            finish: Finish::ToolCalls,
            ..Reply::default()
        }
    }
}

/// A tool call the fake model makes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FakeToolCall {
    /// The call's id; `None` makes one up (`call_fake_<n>_<i>` for OpenAI, `toolu_fake_<n>_<i>` for Anthropic).
    pub id: Option<String>,
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text. Dialects that send an object (Anthropic,
    /// Gemini, Ollama) parse it; text that is not JSON is sent as a JSON string.
    pub arguments: String,
}

impl FakeToolCall {
    /// A call of `name` with `arguments` (JSON text) and a made-up id.
    pub fn new(name: impl Into<String>, arguments: impl Into<String>) -> FakeToolCall {
        FakeToolCall { id: None, name: name.into(), arguments: arguments.into() }
    }
}

/// Why the fake model stopped, mapped to each dialect's own word.
///
/// | | OpenAI | Anthropic | Gemini | Ollama |
/// |---|---|---|---|---|
/// | `Stop` | `stop` | `end_turn` | `STOP` | `stop` |
/// | `Length` | `length` | `max_tokens` | `MAX_TOKENS` | `length` |
/// | `ToolCalls` | `tool_calls` | `tool_use` | `STOP` | `stop` |
/// | `ContentFilter` | `content_filter` | `refusal` | `SAFETY` | `stop` |
/// | `StopSequence` | `stop` | `stop_sequence` | `STOP` | `stop` |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    /// The model finished its answer.
    #[default]
    Stop,
    /// The output hit the token cap.
    Length,
    /// The model wants tools called.
    ToolCalls,
    /// A safety filter stopped the output.
    ContentFilter,
    /// A stop sequence from the request was produced (Anthropic reports which).
    StopSequence,
}

/// A failure, rendered in the dialect of the request.
///
/// The refusals, by dialect (status, then the error's `type`, `code` or `status`):
///
/// | Fault | OpenAI | Anthropic | Gemini | Ollama |
/// |---|---|---|---|---|
/// | `RateLimited` | 429 `requests`, code `rate_limit_exceeded` | 429 `rate_limit_error` | 429 `RESOURCE_EXHAUSTED`, per-minute `QuotaFailure` | 429 |
/// | `InsufficientQuota` | 429 `insufficient_quota` | 400 `invalid_request_error`, "credit balance is too low" | 429 `RESOURCE_EXHAUSTED`, per-day `QuotaFailure` | 402 |
/// | `SpendLimit` | 429 `insufficient_quota`, code `billing_hard_limit_reached` | 400 `invalid_request_error`, "reached your specified API usage limits" | 429 `RESOURCE_EXHAUSTED`, "spending cap" | 402 |
/// | `InvalidRequest` | 400 `invalid_request_error` | 400 `invalid_request_error` | 400 `INVALID_ARGUMENT` | 400 |
/// | `Unauthorized` | 401 code `invalid_api_key` | 401 `authentication_error` | 400 `INVALID_ARGUMENT`, reason `API_KEY_INVALID` | 401 |
/// | `ContentFilter` | 400 code `content_filter` (Azure) | 400 `invalid_request_error`, "content filtering policy" | 200, `promptFeedback.blockReason: SAFETY` | 400 |
///
/// `Status { code }` sends the body each API sends with that status (529 is
/// Anthropic's `overloaded_error`, 502 OpenAI's Cloudflare `cf_bad_gateway`).
/// Ollama's errors are all `{"error": "<message>"}`.
///
/// The faults that shape a successful answer (stalls, cuts, malformed JSON,
/// late errors) use the server's default reply when it is a [`Reply`], else
/// [`Reply::default`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// 429 in the dialect's shape, with the retry hint asked for.
    RateLimited {
        /// The hint the client gets about when to retry.
        #[serde(default)]
        retry_after: RetryAfter,
    },
    /// This status with the dialect's error body (529 is Anthropic's `overloaded_error`).
    Status {
        /// The HTTP status code.
        code: u16,
    },
    /// The account is out of credit or out of its (daily) quota.
    InsufficientQuota,
    /// A spend cap set by the account's owner was reached.
    SpendLimit,
    /// The request is rejected as malformed (400).
    InvalidRequest,
    /// The API key is rejected.
    Unauthorized,
    /// A content filter blocks the request.
    ContentFilter,
    /// Wait before sending the response headers, then answer normally.
    StallBeforeFirstByte {
        /// How long to wait.
        ms: u64,
    },
    /// Stream `after_chunks` pieces, wait, then go on. A non-streaming body is
    /// sent in two halves with the wait between them.
    StallMidStream {
        /// Pieces sent before the wait.
        after_chunks: usize,
        /// How long to wait.
        ms: u64,
    },
    /// Stream `after_chunks` pieces, then abort the connection without the
    /// stream's terminator. A non-streaming body is cut after half its bytes.
    CutStream {
        /// Pieces sent before the cut.
        after_chunks: usize,
    },
    /// 200 with a body that is not valid JSON; a stream gets one invalid event
    /// before its first piece and then goes on normally.
    MalformedJson,
    /// 200, two pieces, then the dialect's in-stream error and the end of the
    /// body. A non-streaming request gets that error object as a 200 body.
    ErrorEventAfterOk,
}

/// The hint a rate-limited client gets about when to retry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryAfter {
    /// No hint.
    #[default]
    None,
    /// `retry-after: <seconds>`.
    Seconds(u64),
    /// `retry-after: <IMF-fixdate>`, this many seconds from now.
    HttpDate {
        /// Seconds from now.
        secs_from_now: u64,
    },
    /// `retry-after-ms: <millis>` and no `retry-after`.
    Millis(u64),
    /// Gemini's body hint: a `google.rpc.RetryInfo` detail with `retryDelay: "<secs>s"`.
    /// Other dialects send no hint for it.
    GeminiRetryInfo {
        /// Seconds to wait.
        secs: u64,
    },
}

/// Random faults for unscripted requests.
///
/// Unscripted request `i` (counted from the last `set_chaos` or `clear`) gets
/// a random number generator seeded by `(seed, i)`: with probability
/// `fault_rate` it fails with one of `faults`, picked uniformly. The same seed
/// gives the same faults at the same indices, whatever the timing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Chaos {
    /// Seed of the per-request generators.
    pub seed: u64,
    /// Probability, from 0 to 1, that a request fails.
    pub fault_rate: f64,
    /// The faults to pick from.
    pub faults: Vec<Fault>,
}

impl Chaos {
    /// The fault unscripted request `index` gets, if any.
    pub fn fault_for(&self, index: u64) -> Option<Fault> {
        if self.faults.is_empty() {
            return None;
        }
        let mut rng = fastrand::Rng::with_seed(splitmix64(self.seed ^ splitmix64(index)));
        (rng.f64() < self.fault_rate).then(|| self.faults[rng.usize(..self.faults.len())])
    }
}

/// Spreads nearby seeds apart so that requests `i` and `i + 1` draw unrelated numbers.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Rate-limit headers added to every response, under the dialect's names.
///
/// OpenAI: `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, resets as
/// Go durations (`"1s"`, `"6m0s"`, `"20ms"`). Anthropic:
/// `anthropic-ratelimit-{requests,tokens}-{limit,remaining,reset}`, resets as
/// RFC 3339 times. Gemini and Ollama send none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitHeaders {
    /// Requests allowed per window.
    pub limit_requests: u64,
    /// Requests left in this window.
    pub remaining_requests: u64,
    /// Tokens allowed per window.
    pub limit_tokens: u64,
    /// Tokens left in this window.
    pub remaining_tokens: u64,
    /// Milliseconds until both windows reset.
    pub reset_ms: u64,
}

impl Default for RateLimitHeaders {
    /// A tier-1 account's minute with one request spent.
    fn default() -> Self {
        RateLimitHeaders {
            limit_requests: 500,
            remaining_requests: 499,
            limit_tokens: 30_000,
            remaining_tokens: 29_000,
            reset_ms: 120,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviors_round_trip_through_kebab_case_json() {
        let script = vec![
            Behavior::Reply(Reply::text("hi")),
            Behavior::Fault(Fault::RateLimited { retry_after: RetryAfter::Seconds(7) }),
            Behavior::Fault(Fault::RateLimited { retry_after: RetryAfter::HttpDate { secs_from_now: 3 } }),
            Behavior::Fault(Fault::InsufficientQuota),
            Behavior::Fault(Fault::CutStream { after_chunks: 2 }),
        ];
        let json = serde_json::to_value(&script).unwrap();
        assert_eq!(
            json[1],
            serde_json::json!({"kind": "fault", "fault": "rate-limited", "retry_after": {"seconds": 7}})
        );
        assert_eq!(json[3], serde_json::json!({"kind": "fault", "fault": "insufficient-quota"}));
        assert_eq!(serde_json::from_value::<Vec<Behavior>>(json).unwrap(), script);
    }

    #[test]
    fn a_reply_needs_only_its_kind_and_unknown_fields_are_refused() {
        let reply: Behavior = serde_json::from_str(r#"{"kind":"reply"}"#).unwrap();
        assert_eq!(reply, Behavior::default());
        assert!(serde_json::from_str::<Behavior>(r#"{"kind":"reply","txt":"typo"}"#).is_err());
        assert!(serde_json::from_str::<Behavior>(r#"{"kind":"fault","fault":"status","code":500,"x":1}"#).is_err());
    }

    #[test]
    fn chaos_gives_the_same_faults_for_the_same_seed() {
        let chaos = Chaos { seed: 42, fault_rate: 0.5, faults: vec![Fault::InvalidRequest, Fault::Unauthorized] };
        let first: Vec<_> = (0..200).map(|i| chaos.fault_for(i)).collect();
        let second: Vec<_> = (0..200).map(|i| chaos.fault_for(i)).collect();
        assert_eq!(first, second);
        let faults = first.iter().flatten().count();
        assert!((70..130).contains(&faults), "{faults} of 200 failed at rate 0.5");
        assert!(first.contains(&Some(Fault::InvalidRequest)) && first.contains(&Some(Fault::Unauthorized)));
        let other = Chaos { seed: 43, ..chaos };
        assert_ne!(first, (0..200).map(|i| other.fault_for(i)).collect::<Vec<_>>());
    }
}
