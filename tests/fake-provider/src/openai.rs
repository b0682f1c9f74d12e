//! OpenAI chat completions and embeddings, as `api.openai.com` (and Azure,
//! vLLM, llama.cpp and the other servers that copy it) speak them.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::answer::Answer;
use crate::behavior::{FakeToolCall, Fault, Finish, Reply, RetryAfter};
use crate::embedding::{self, Base64, Vector};
use crate::exchange::{Api, Call};
use crate::plan::{Frames, Plan};
use crate::prompt::{Prompt, as_u32, last_user_text, words_in_messages};
use crate::ratelimit;
use crate::stream::{self, Piece, StreamWriter};
use crate::wire::{CallId, Id, sse_data, to_json};

const MODEL: &str = "gpt-4o-mini";
const SSE: &str = "text/event-stream; charset=utf-8";
const FINGERPRINT: &str = "fp_fake";
const CALL_ID_PREFIX: &str = "call_fake_";

pub(crate) struct OpenAi;

impl Api for OpenAi {
    const JSON: &'static str = "application/json";

    fn prompt<'a>(&'a self, body: &'a Value) -> Prompt<'a> {
        Prompt {
            model: body["model"].as_str().unwrap_or(MODEL),
            last_user: last_user_text(&body["messages"], "content"),
            words: words_in_messages(&body["messages"], "content"),
            max_tokens: as_u32(&body["max_completion_tokens"]).or_else(|| as_u32(&body["max_tokens"])),
            stream: body["stream"].as_bool().unwrap_or(false),
            usage_in_stream: body["stream_options"]["include_usage"].as_bool().unwrap_or(false),
            stop_sequence: None,
        }
    }

    fn body(&self, call: &Call<'_>, answer: &Answer<'_>) -> Vec<u8> {
        let no_content = answer.text.is_empty() && !answer.tool_calls.is_empty();
        to_json(&Completion {
            id: Id("chatcmpl-fake-", call.index),
            object: "chat.completion",
            created: call.unix_secs(),
            model: call.prompt.model,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: (!no_content).then_some(&*answer.text),
                    refusal: None,
                    tool_calls: ToolCalls { calls: answer.tool_calls, request: call.index },
                },
                logprobs: None,
                finish_reason: finish_reason(answer.finish),
            }],
            usage: Usage::of(answer),
            system_fingerprint: FINGERPRINT,
        })
    }

    fn stream(&self, call: &Call<'_>, answer: &Answer<'_>, fault: Option<&Fault>) -> Plan {
        let (frames, ending) = stream::compose(Writer { call, answer }, answer, fault);
        Plan::framed(SSE, frames, ending)
    }

    fn refuse(&self, call: &Call<'_>, fault: &Fault) -> Option<Plan> {
        let plan = match *fault {
            Fault::RateLimited { retry_after } => {
                let mut plan = rate_limited(call.prompt.model, &retry_after);
                ratelimit::insert_retry_after(&retry_after, call.now, &mut plan.headers);
                plan
            }
            Fault::Status { code } => status(code, call.prompt.model),
            Fault::InsufficientQuota => error(
                429,
                "You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
            Fault::SpendLimit => error(
                429,
                "You have hit your assigned billing hard limit: the project's monthly budget is spent. Raise it at https://platform.openai.com/settings/organization/limits to continue.",
                "insufficient_quota",
                None,
                Some("billing_hard_limit_reached"),
            ),
            Fault::InvalidRequest => invalid_request(),
            Fault::Unauthorized => unauthorized(),
            Fault::ContentFilter => Plan::error(
                400,
                Self::JSON,
                &json!({"error": {
                    "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. Please modify your prompt and retry.",
                    "type": null,
                    "param": "prompt",
                    "code": "content_filter",
                    "status": 400,
                    "innererror": {
                        "code": "ResponsibleAIPolicyViolation",
                        "content_filter_result": {
                            "hate": {"filtered": true, "severity": "high"},
                            "self_harm": {"filtered": false, "severity": "safe"},
                            "sexual": {"filtered": false, "severity": "safe"},
                            "violence": {"filtered": false, "severity": "safe"},
                        },
                    },
                }}),
            ),
            Fault::StallBeforeFirstByte { .. }
            | Fault::StallMidStream { .. }
            | Fault::CutStream { .. }
            | Fault::MalformedJson
            | Fault::ErrorEventAfterOk => return None,
        };
        Some(plan)
    }

    fn late_error(&self) -> Vec<u8> {
        to_json(&server_error())
    }
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::StopSequence => "stop",
        Finish::Length => "length",
        Finish::ToolCalls => "tool_calls",
        Finish::ContentFilter => "content_filter",
    }
}

/// `{"error":{"message","type","param","code"}}` with `status`.
fn error(status: u16, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Plan {
    Plan::error(
        status,
        OpenAi::JSON,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

fn server_error() -> Value {
    json!({"error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": null,
        "code": null,
    }})
}

fn rate_limited(model: &str, retry_after: &RetryAfter) -> Plan {
    let wait = match *retry_after {
        RetryAfter::Seconds(secs) | RetryAfter::HttpDate { secs_from_now: secs } => {
            format!(" Please try again in {secs}s.")
        }
        RetryAfter::Millis(ms) => format!(" Please try again in {ms}ms."),
        RetryAfter::None | RetryAfter::GeminiRetryInfo { .. } => String::new(),
    };
    let message = format!(
        "Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 500, Used 500, Requested 1.{wait} Visit https://platform.openai.com/account/rate-limits to learn more."
    );
    error(429, &message, "requests", None, Some("rate_limit_exceeded"))
}

fn invalid_request() -> Plan {
    error(
        400,
        "Invalid value for 'messages': expected an array of message objects.",
        "invalid_request_error",
        Some("messages"),
        Some("invalid_value"),
    )
}

fn unauthorized() -> Plan {
    error(
        401,
        "Incorrect API key provided: sk-fake. You can find your API key at https://platform.openai.com/account/api-keys.",
        "invalid_request_error",
        None,
        Some("invalid_api_key"),
    )
}

/// The body OpenAI sends with a bare status.
fn status(code: u16, model: &str) -> Plan {
    match code {
        400 => invalid_request(),
        401 => unauthorized(),
        403 => error(
            403,
            "Country, region, or territory not supported",
            "request_forbidden",
            None,
            Some("unsupported_country_region_territory"),
        ),
        404 => error(
            404,
            &format!("The model `{model}` does not exist or you do not have access to it."),
            "invalid_request_error",
            None,
            Some("model_not_found"),
        ),
        429 => rate_limited(model, &RetryAfter::None),
        // Cloudflare in front of the API answers a dead upstream itself.
        502 => Plan::error(
            502,
            OpenAi::JSON,
            &json!({"error": {"code": 502, "message": "Bad gateway.", "param": null, "type": "cf_bad_gateway"}}),
        ),
        503 => error(503, "The server is overloaded or not ready yet.", "server_error", None, None),
        500..=599 => Plan::error(code, OpenAi::JSON, &server_error()),
        _ => error(code, &format!("Request failed with status {code}."), "invalid_request_error", None, None),
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: Id,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: Usage,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "ToolCalls::is_empty")]
    tool_calls: ToolCalls<'a>,
}

/// `message.tool_calls`, ids made up where the script gave none.
struct ToolCalls<'a> {
    calls: &'a [FakeToolCall],
    request: u64,
}

impl ToolCalls<'_> {
    fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }
}

impl Serialize for ToolCalls<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.calls.iter().enumerate().map(|(i, call)| ToolCall {
            id: call_id(call, self.request, i),
            kind: "function",
            function: Function { name: &call.name, arguments: &call.arguments },
        }))
    }
}

fn call_id(call: &FakeToolCall, request: u64, index: usize) -> CallId<'_> {
    CallId { given: call.id.as_deref(), prefix: CALL_ID_PREFIX, request, call: index }
}

#[derive(Serialize)]
struct ToolCall<'a> {
    id: CallId<'a>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Serialize)]
struct Function<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Clone, Copy, Serialize)]
struct Usage {
    prompt_tokens: u32,
    completion_tokens: u32,
    total_tokens: u32,
}

impl Usage {
    fn of(answer: &Answer<'_>) -> Usage {
        Usage {
            prompt_tokens: answer.input_tokens,
            completion_tokens: answer.output_tokens,
            total_tokens: answer.total_tokens(),
        }
    }
}

/// One `chat.completion.chunk`.
#[derive(Serialize)]
struct Chunk<'a> {
    id: Id,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless `stream_options.include_usage`; then `null` on every
    /// chunk but the last, which has no choices and the usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[DeltaToolCall<'a>; 1]>,
}

#[derive(Serialize)]
struct DeltaToolCall<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<CallId<'a>>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: DeltaFunction<'a>,
}

#[derive(Serialize)]
struct DeltaFunction<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

struct Writer<'a> {
    call: &'a Call<'a>,
    answer: &'a Answer<'a>,
}

impl Writer<'_> {
    fn chunk(&self, out: &mut Frames, delta: Delta<'_>, finish_reason: Option<&'static str>) {
        self.write(out, &[ChunkChoice { index: 0, delta, logprobs: None, finish_reason }], None);
    }

    fn write(&self, out: &mut Frames, choices: &[ChunkChoice<'_>], usage: Option<Usage>) {
        let chunk = Chunk {
            id: Id("chatcmpl-fake-", self.call.index),
            object: "chat.completion.chunk",
            created: self.call.unix_secs(),
            model: self.call.prompt.model,
            system_fingerprint: FINGERPRINT,
            choices,
            usage: self.call.prompt.usage_in_stream.then_some(usage),
        };
        out.frame(|buf| sse_data(buf, &chunk, "\n"));
    }
}

impl StreamWriter for Writer<'_> {
    const FRAGMENTED_TOOLS: bool = true;

    fn open(&mut self, out: &mut Frames, _pieces: usize) {
        self.chunk(out, Delta { role: Some("assistant"), content: Some(""), tool_calls: None }, None);
    }

    fn piece(&mut self, out: &mut Frames, piece: &Piece<'_>) {
        let delta = match *piece {
            Piece::Text(text) => Delta { content: Some(text), ..Delta::default() },
            Piece::ToolStart { index, call } | Piece::Tool { index, call } => Delta {
                tool_calls: Some([DeltaToolCall {
                    index,
                    id: Some(call_id(call, self.call.index, index)),
                    kind: Some("function"),
                    function: DeltaFunction {
                        name: Some(&call.name),
                        arguments: if matches!(piece, Piece::Tool { .. }) { &call.arguments } else { "" },
                    },
                }]),
                ..Delta::default()
            },
            Piece::ToolArguments { index, json } => Delta {
                tool_calls: Some([DeltaToolCall {
                    index,
                    id: None,
                    kind: None,
                    function: DeltaFunction { name: None, arguments: json },
                }]),
                ..Delta::default()
            },
        };
        self.chunk(out, delta, None);
    }

    fn close(&mut self, out: &mut Frames) {
        self.chunk(out, Delta::default(), Some(finish_reason(self.answer.finish)));
        if self.call.prompt.usage_in_stream {
            self.write(out, &[], Some(Usage::of(self.answer)));
        }
        out.frame(|buf| buf.extend_from_slice(b"data: [DONE]\n\n"));
    }

    fn late_error(&mut self, out: &mut Frames) {
        out.frame(|buf| sse_data(buf, &server_error(), "\n"));
    }

    fn malformed(&mut self, out: &mut Frames) {
        out.frame(|buf| {
            buf.extend_from_slice(
                br#"data: {"id":"chatcmpl-fake","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"unterminated"#,
            );
            buf.extend_from_slice(b"\n\n");
        });
    }
}

/// `POST /v1/embeddings`: one vector per input, floats or base64.
pub(crate) fn embeddings(_call: &Call<'_>, body: &Value, reply: &Reply) -> Vec<u8> {
    let input = &body["input"];
    let tokens = reply.input_tokens.unwrap_or_else(|| embedding::input_words(embedding::inputs(input)));
    to_json(&EmbeddingList {
        object: "list",
        data: EmbeddingData {
            input,
            dimensions: embedding::dimensions(&body["dimensions"]),
            base64: body["encoding_format"].as_str() == Some("base64"),
        },
        model: body["model"].as_str().unwrap_or("text-embedding-3-small"),
        usage: EmbeddingUsage { prompt_tokens: tokens, total_tokens: tokens },
    })
}

#[derive(Serialize)]
struct EmbeddingList<'a> {
    object: &'static str,
    data: EmbeddingData<'a>,
    model: &'a str,
    usage: EmbeddingUsage,
}

struct EmbeddingData<'a> {
    input: &'a Value,
    dimensions: usize,
    base64: bool,
}

impl Serialize for EmbeddingData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(embedding::inputs(self.input).enumerate().map(|(index, text)| {
            let vector = Vector { text, dimensions: self.dimensions };
            EmbeddingItem {
                object: "embedding",
                index,
                embedding: if self.base64 { Encoded::Base64(Base64(vector)) } else { Encoded::Floats(vector) },
            }
        }))
    }
}

#[derive(Serialize)]
struct EmbeddingItem<'a> {
    object: &'static str,
    index: usize,
    embedding: Encoded<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Encoded<'a> {
    Floats(Vector<'a>),
    Base64(Base64<'a>),
}

#[derive(Serialize)]
struct EmbeddingUsage {
    prompt_tokens: u32,
    total_tokens: u32,
}
