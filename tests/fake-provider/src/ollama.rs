//! Ollama, as `ollama serve` speaks it: `/api/chat` streams JSON lines
//! unless `"stream": false` (streaming is its default), and `/api/embed`.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::answer::{Answer, arguments_value};
use crate::behavior::{FakeToolCall, Fault, Finish, Reply};
use crate::clock::Rfc3339;
use crate::embedding::{self, Vector};
use crate::exchange::{Api, Call};
use crate::plan::{Frames, Plan};
use crate::prompt::{Prompt, as_u32, last_user_text, words_in_messages};
use crate::stream::{self, Piece, StreamWriter};
use crate::wire::{json_line, to_json};

const MODEL: &str = "llama3.2";
const NDJSON: &str = "application/x-ndjson";

/// Fake timings, in nanoseconds as Ollama reports them.
const LOAD_NS: u64 = 1_000_000;
const PROMPT_NS_PER_TOKEN: u64 = 100_000;
const EVAL_NS_PER_TOKEN: u64 = 1_000_000;

pub(crate) struct Ollama;

impl Api for Ollama {
    const JSON: &'static str = "application/json; charset=utf-8";

    fn prompt<'a>(&'a self, body: &'a Value) -> Prompt<'a> {
        Prompt {
            model: body["model"].as_str().unwrap_or(MODEL),
            last_user: last_user_text(&body["messages"], "content"),
            words: words_in_messages(&body["messages"], "content"),
            // -1 (no limit) and -2 (fill the context) are not caps.
            max_tokens: as_u32(&body["options"]["num_predict"]),
            stream: body["stream"].as_bool().unwrap_or(true),
            usage_in_stream: false,
            stop_sequence: None,
        }
    }

    fn body(&self, call: &Call<'_>, answer: &Answer<'_>) -> Vec<u8> {
        to_json(&done(
            call,
            answer,
            Message { role: "assistant", content: &answer.text, tool_calls: answer.tool_calls },
        ))
    }

    fn stream(&self, call: &Call<'_>, answer: &Answer<'_>, fault: Option<&Fault>) -> Plan {
        let (frames, ending) = stream::compose(Writer { call, answer }, answer, fault);
        Plan::framed(NDJSON, frames, ending)
    }

    fn refuse(&self, call: &Call<'_>, fault: &Fault) -> Option<Plan> {
        let (status, message) = match *fault {
            Fault::RateLimited { .. } => {
                (429, "too many requests: rate limit exceeded, please try again later".to_owned())
            }
            Fault::Status { code } => (code, status_message(code, call.prompt.model)),
            // Ollama's own server has no quota; its cloud models answer 402.
            Fault::InsufficientQuota => {
                (402, "insufficient credit: add credit at https://ollama.com/settings/billing to continue".to_owned())
            }
            Fault::SpendLimit => {
                (402, "spend limit reached: raise it at https://ollama.com/settings/billing".to_owned())
            }
            Fault::InvalidRequest => (400, "model is required".to_owned()),
            Fault::Unauthorized => (401, "unauthorized".to_owned()),
            // Ollama has no content filter; a proxy in front of it might.
            Fault::ContentFilter => (400, "content blocked by the content filter".to_owned()),
            Fault::StallBeforeFirstByte { .. }
            | Fault::StallMidStream { .. }
            | Fault::CutStream { .. }
            | Fault::MalformedJson
            | Fault::ErrorEventAfterOk => return None,
        };
        Some(Plan::error(status, Self::JSON, &json!({ "error": message })))
    }

    fn late_error(&self) -> Vec<u8> {
        to_json(&late_error())
    }
}

fn late_error() -> Value {
    json!({"error": "an error was encountered while running the model: unexpected EOF"})
}

fn status_message(code: u16, model: &str) -> String {
    match code {
        404 => format!("model \"{model}\" not found, try pulling it first"),
        503 => "server busy, please try again.  maximum pending requests exceeded".to_owned(),
        500 => "llama runner process has terminated: exit status 2".to_owned(),
        _ => format!("request failed with status {code}"),
    }
}

fn done_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Length => "length",
        Finish::Stop | Finish::ToolCalls | Finish::ContentFilter | Finish::StopSequence => "stop",
    }
}

/// The last object: the finish and the counts, with `message`.
fn done<'a>(call: &'a Call<'a>, answer: &Answer<'_>, message: Message<'a>) -> Done<'a> {
    let (prompt_eval_count, eval_count) = (answer.input_tokens, answer.output_tokens);
    let prompt_eval_duration = u64::from(prompt_eval_count) * PROMPT_NS_PER_TOKEN;
    let eval_duration = u64::from(eval_count) * EVAL_NS_PER_TOKEN;
    Done {
        model: call.prompt.model,
        created_at: Rfc3339::nanos(call.now),
        message,
        done: true,
        done_reason: done_reason(answer.finish),
        total_duration: LOAD_NS + prompt_eval_duration + eval_duration,
        load_duration: LOAD_NS,
        prompt_eval_count,
        prompt_eval_duration,
        eval_count,
        eval_duration,
    }
}

#[derive(Serialize)]
struct Partial<'a> {
    model: &'a str,
    created_at: Rfc3339,
    message: Message<'a>,
    done: bool,
}

#[derive(Serialize)]
struct Done<'a> {
    model: &'a str,
    created_at: Rfc3339,
    message: Message<'a>,
    done: bool,
    done_reason: &'static str,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u32,
    prompt_eval_duration: u64,
    eval_count: u32,
    eval_duration: u64,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
    #[serde(skip_serializing_if = "<[FakeToolCall]>::is_empty", serialize_with = "tool_calls")]
    tool_calls: &'a [FakeToolCall],
}

/// `[{"function":{"name","arguments":{…}}}]`: arguments as an object, not text.
fn tool_calls<S: Serializer>(calls: &&[FakeToolCall], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(
        calls
            .iter()
            .map(|call| json!({"function": {"name": call.name, "arguments": arguments_value(&call.arguments)}})),
    )
}

struct Writer<'a> {
    call: &'a Call<'a>,
    answer: &'a Answer<'a>,
}

impl Writer<'_> {
    fn partial(&self, out: &mut Frames, content: &str, tool_calls: &[FakeToolCall]) {
        let line = Partial {
            model: self.call.prompt.model,
            created_at: Rfc3339::nanos(self.call.now),
            message: Message { role: "assistant", content, tool_calls },
            done: false,
        };
        out.frame(|buf| json_line(buf, &line));
    }
}

impl StreamWriter for Writer<'_> {
    const FRAGMENTED_TOOLS: bool = false;

    fn open(&mut self, _out: &mut Frames, _pieces: usize) {}

    fn piece(&mut self, out: &mut Frames, piece: &Piece<'_>) {
        match *piece {
            Piece::Text(text) => self.partial(out, text, &[]),
            Piece::Tool { call, .. } | Piece::ToolStart { call, .. } => {
                self.partial(out, "", std::slice::from_ref(call));
            }
            Piece::ToolArguments { .. } => {}
        }
    }

    fn close(&mut self, out: &mut Frames) {
        let line = done(self.call, self.answer, Message { role: "assistant", content: "", tool_calls: &[] });
        out.frame(|buf| json_line(buf, &line));
    }

    fn late_error(&mut self, out: &mut Frames) {
        out.frame(|buf| json_line(buf, &late_error()));
    }

    fn malformed(&mut self, out: &mut Frames) {
        out.frame(|buf| {
            buf.extend_from_slice(br#"{"model":"llama3.2","message":{"role":"assistant","content":"unterminated"#);
            buf.push(b'\n');
        });
    }
}

/// `POST /api/embed`: one vector per input.
pub(crate) fn embeddings(call: &Call<'_>, body: &Value, reply: &Reply) -> Vec<u8> {
    let input = &body["input"];
    let tokens = reply.input_tokens.unwrap_or_else(|| embedding::input_words(embedding::inputs(input)));
    let prompt_ns = u64::from(tokens) * PROMPT_NS_PER_TOKEN;
    to_json(&Embeddings {
        model: call.prompt.model,
        embeddings: Vectors { input, dimensions: embedding::dimensions(&body["dimensions"]) },
        total_duration: LOAD_NS + prompt_ns,
        load_duration: LOAD_NS,
        prompt_eval_count: tokens,
    })
}

#[derive(Serialize)]
struct Embeddings<'a> {
    model: &'a str,
    embeddings: Vectors<'a>,
    total_duration: u64,
    load_duration: u64,
    prompt_eval_count: u32,
}

struct Vectors<'a> {
    input: &'a Value,
    dimensions: usize,
}

impl Serialize for Vectors<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(embedding::inputs(self.input).map(|text| Vector { text, dimensions: self.dimensions }))
    }
}
