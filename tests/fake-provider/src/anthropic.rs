//! Anthropic Messages, as `api.anthropic.com` speaks it: named server-sent
//! events in the order `message_start`, `content_block_start`, `ping`,
//! `content_block_delta`…, `content_block_stop`, `message_delta`, `message_stop`.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::answer::{Answer, arguments_value};
use crate::behavior::{FakeToolCall, Fault, Finish};
use crate::clock::next_month;
use crate::exchange::{Api, Call};
use crate::plan::{Frames, Plan};
use crate::prompt::{Prompt, as_u32, last_user_text, texts, word_count, words_in_messages};
use crate::ratelimit;
use crate::stream::{self, Piece, StreamWriter};
use crate::wire::{CallId, Id, sse_event, to_json};

const MODEL: &str = "claude-sonnet-4-5";
const SSE: &str = "text/event-stream; charset=utf-8";
const CALL_ID_PREFIX: &str = "toolu_fake_";

pub(crate) struct Anthropic;

impl Api for Anthropic {
    const JSON: &'static str = "application/json";

    fn prompt<'a>(&'a self, body: &'a Value) -> Prompt<'a> {
        let system: u32 = texts(&body["system"]).map(word_count).sum();
        Prompt {
            model: body["model"].as_str().unwrap_or(MODEL),
            last_user: last_user_text(&body["messages"], "content"),
            words: words_in_messages(&body["messages"], "content") + system,
            max_tokens: as_u32(&body["max_tokens"]),
            stream: body["stream"].as_bool().unwrap_or(false),
            usage_in_stream: false,
            stop_sequence: body["stop_sequences"][0].as_str(),
        }
    }

    fn body(&self, call: &Call<'_>, answer: &Answer<'_>) -> Vec<u8> {
        to_json(&Message {
            id: Id("msg_fake_", call.index),
            kind: "message",
            role: "assistant",
            model: call.prompt.model,
            content: Blocks { answer: Some(answer), request: call.index },
            stop_reason: Some(stop_reason(answer.finish)),
            stop_sequence: stop_sequence(call, answer),
            usage: Usage::new(answer.input_tokens, answer.output_tokens),
        })
    }

    fn stream(&self, call: &Call<'_>, answer: &Answer<'_>, fault: Option<&Fault>) -> Plan {
        let writer = Writer { call, answer, open_block: None, blocks: 0, ping_due: true };
        let (frames, ending) = stream::compose(writer, answer, fault);
        Plan::framed(SSE, frames, ending)
    }

    fn refuse(&self, call: &Call<'_>, fault: &Fault) -> Option<Plan> {
        let plan = match *fault {
            Fault::RateLimited { retry_after } => {
                let mut plan = rate_limited(call);
                ratelimit::insert_retry_after(&retry_after, call.now, &mut plan.headers);
                plan
            }
            Fault::Status { code } => status(call, code),
            // The real API answers an empty balance with a 400, not the
            // `billing_error` (402) its error list describes.
            Fault::InsufficientQuota => error(
                call,
                400,
                "invalid_request_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            ),
            Fault::SpendLimit => {
                let (year, month) = next_month(call.now);
                let message = format!(
                    "You have reached your specified API usage limits. You will regain access on {year:04}-{month:02}-01 at 00:00 UTC."
                );
                error(call, 400, "invalid_request_error", &message)
            }
            Fault::InvalidRequest => error(call, 400, "invalid_request_error", "messages: Field required"),
            Fault::Unauthorized => error(call, 401, "authentication_error", "invalid x-api-key"),
            Fault::ContentFilter => {
                error(call, 400, "invalid_request_error", "Output blocked by content filtering policy")
            }
            Fault::StallBeforeFirstByte { .. }
            | Fault::StallMidStream { .. }
            | Fault::CutStream { .. }
            | Fault::MalformedJson
            | Fault::ErrorEventAfterOk => return None,
        };
        Some(plan)
    }

    fn late_error(&self) -> Vec<u8> {
        to_json(&overloaded())
    }
}

fn stop_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
        Finish::ToolCalls => "tool_use",
        Finish::ContentFilter => "refusal",
        Finish::StopSequence => "stop_sequence",
    }
}

/// The stop sequence that ended the answer: the request's first, if it had one.
fn stop_sequence<'a>(call: &Call<'a>, answer: &Answer<'_>) -> Option<&'a str> {
    (answer.finish == Finish::StopSequence).then(|| call.prompt.stop_sequence.unwrap_or("\n\nHuman:"))
}

/// `{"type":"error","error":{"type","message"},"request_id"}` with `status`.
fn error(call: &Call<'_>, status: u16, kind: &str, message: &str) -> Plan {
    Plan::error(
        status,
        Anthropic::JSON,
        &json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": Id("req_fake_", call.index),
        }),
    )
}

fn overloaded() -> Value {
    json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
}

fn rate_limited(call: &Call<'_>) -> Plan {
    error(
        call,
        429,
        "rate_limit_error",
        "This request would exceed the rate limit for your organization (org-fake) of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase.",
    )
}

/// The body Anthropic sends with a bare status, by its documented error types.
fn status(call: &Call<'_>, code: u16) -> Plan {
    let (kind, message) = match code {
        400 => ("invalid_request_error", "messages: Field required"),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => ("billing_error", "There is an issue with your billing or payment information."),
        403 => ("permission_error", "Your API key does not have permission to use the specified resource."),
        404 => ("not_found_error", "The requested resource could not be found."),
        413 => ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
        429 => return rate_limited(call),
        529 => ("overloaded_error", "Overloaded"),
        500..=599 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "The request failed."),
    };
    error(call, code, kind, message)
}

#[derive(Serialize)]
struct Message<'a> {
    id: Id,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Blocks<'a>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: Usage,
}

/// The content blocks: the text (unless empty beside tool calls), then one
/// `tool_use` block per call. `answer: None` writes `[]`, as `message_start` does.
struct Blocks<'a> {
    answer: Option<&'a Answer<'a>>,
    request: u64,
}

impl Serialize for Blocks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(answer) = self.answer else { return serializer.collect_seq(std::iter::empty::<Block<'_>>()) };
        let text =
            (!answer.text.is_empty() || answer.tool_calls.is_empty()).then(|| Block::Text { text: &answer.text });
        let tools = answer.tool_calls.iter().enumerate().map(|(i, call)| Block::ToolUse {
            id: call_id(call, self.request, i),
            name: &call.name,
            input: arguments_value(&call.arguments),
        });
        serializer.collect_seq(text.into_iter().chain(tools))
    }
}

fn call_id(call: &FakeToolCall, request: u64, index: usize) -> CallId<'_> {
    CallId { given: call.id.as_deref(), prefix: CALL_ID_PREFIX, request, call: index }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text { text: &'a str },
    ToolUse { id: CallId<'a>, name: &'a str, input: Value },
}

#[derive(Serialize)]
struct Usage {
    input_tokens: u32,
    cache_creation_input_tokens: u32,
    cache_read_input_tokens: u32,
    output_tokens: u32,
}

impl Usage {
    fn new(input_tokens: u32, output_tokens: u32) -> Usage {
        Usage { input_tokens, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens }
    }
}

/// One streamed event; its `type` is also its SSE event name.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    MessageStart { message: Message<'a> },
    ContentBlockStart { index: usize, content_block: StartBlock<'a> },
    Ping,
    ContentBlockDelta { index: usize, delta: Delta<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: StopDelta<'a>, usage: OutputUsage },
    MessageStop,
}

impl Event<'_> {
    fn name(&self) -> &'static str {
        match self {
            Event::MessageStart { .. } => "message_start",
            Event::ContentBlockStart { .. } => "content_block_start",
            Event::Ping => "ping",
            Event::ContentBlockDelta { .. } => "content_block_delta",
            Event::ContentBlockStop { .. } => "content_block_stop",
            Event::MessageDelta { .. } => "message_delta",
            Event::MessageStop => "message_stop",
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock<'a> {
    Text { text: &'static str },
    ToolUse { id: CallId<'a>, name: &'a str, input: EmptyObject },
}

/// `{}`: a tool block starts with empty input, filled by `input_json_delta`s.
#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    ToolUse,
}

struct Writer<'a> {
    call: &'a Call<'a>,
    answer: &'a Answer<'a>,
    /// The block being streamed: its index and kind.
    open_block: Option<(usize, BlockKind)>,
    blocks: usize,
    /// The real API sends one `ping` right after the first block starts.
    ping_due: bool,
}

impl Writer<'_> {
    fn event(out: &mut Frames, event: &Event<'_>) {
        out.frame(|buf| sse_event(buf, event.name(), event));
    }

    fn ping_if_due(&mut self, out: &mut Frames) {
        if std::mem::take(&mut self.ping_due) {
            Self::event(out, &Event::Ping);
        }
    }

    fn stop_block(&mut self, out: &mut Frames) {
        if let Some((index, _)) = self.open_block.take() {
            Self::event(out, &Event::ContentBlockStop { index });
        }
    }

    /// Starts a block of `kind` unless one is open, and returns its index.
    fn block<'s>(&mut self, out: &mut Frames, kind: BlockKind, start: impl FnOnce() -> StartBlock<'s>) -> usize {
        if let Some((index, open)) = self.open_block
            && open == kind
            && kind == BlockKind::Text
        {
            return index;
        }
        self.stop_block(out);
        let index = self.blocks;
        self.blocks += 1;
        self.open_block = Some((index, kind));
        Self::event(out, &Event::ContentBlockStart { index, content_block: start() });
        self.ping_if_due(out);
        index
    }
}

impl StreamWriter for Writer<'_> {
    const FRAGMENTED_TOOLS: bool = true;

    fn open(&mut self, out: &mut Frames, _pieces: usize) {
        let message = Message {
            id: Id("msg_fake_", self.call.index),
            kind: "message",
            role: "assistant",
            model: self.call.prompt.model,
            content: Blocks { answer: None, request: self.call.index },
            stop_reason: None,
            stop_sequence: None,
            usage: Usage::new(self.answer.input_tokens, 1),
        };
        Self::event(out, &Event::MessageStart { message });
    }

    fn piece(&mut self, out: &mut Frames, piece: &Piece<'_>) {
        match *piece {
            Piece::Text(text) => {
                let index = self.block(out, BlockKind::Text, || StartBlock::Text { text: "" });
                Self::event(out, &Event::ContentBlockDelta { index, delta: Delta::TextDelta { text } });
            }
            Piece::ToolStart { index, call } | Piece::Tool { index, call } => {
                let request = self.call.index;
                let block = self.block(out, BlockKind::ToolUse, || StartBlock::ToolUse {
                    id: call_id(call, request, index),
                    name: &call.name,
                    input: EmptyObject {},
                });
                if matches!(piece, Piece::Tool { .. }) {
                    let delta = Delta::InputJsonDelta { partial_json: &call.arguments };
                    Self::event(out, &Event::ContentBlockDelta { index: block, delta });
                }
            }
            Piece::ToolArguments { json, .. } => {
                if let Some((index, _)) = self.open_block {
                    let delta = Delta::InputJsonDelta { partial_json: json };
                    Self::event(out, &Event::ContentBlockDelta { index, delta });
                }
            }
        }
    }

    fn close(&mut self, out: &mut Frames) {
        self.stop_block(out);
        self.ping_if_due(out);
        let delta = StopDelta {
            stop_reason: stop_reason(self.answer.finish),
            stop_sequence: stop_sequence(self.call, self.answer),
        };
        Self::event(
            out,
            &Event::MessageDelta { delta, usage: OutputUsage { output_tokens: self.answer.output_tokens } },
        );
        Self::event(out, &Event::MessageStop);
    }

    fn late_error(&mut self, out: &mut Frames) {
        out.frame(|buf| sse_event(buf, "error", &overloaded()));
    }

    fn malformed(&mut self, out: &mut Frames) {
        out.frame(|buf| {
            buf.extend_from_slice(
                br#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"unterminated"#,
            );
            buf.extend_from_slice(b"\n\n");
        });
    }
}
