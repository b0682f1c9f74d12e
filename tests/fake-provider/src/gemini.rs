//! Google Gemini, as `generativelanguage.googleapis.com` speaks it:
//! `/v1beta/models/{model}:{method}` for `generateContent`,
//! `streamGenerateContent` (server-sent events with `?alt=sse`, else a
//! streamed JSON array), `embedContent` and `batchEmbedContents`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::answer::{Answer, arguments_value};
use crate::behavior::{FakeToolCall, Fault, Finish, Reply, RetryAfter};
use crate::embedding::{self, Vector};
use crate::exchange::{Api, Call};
use crate::plan::{Ending, Frames, Plan};
use crate::prompt::{Prompt, as_u32, last_user_text, texts, word_count, words_in_messages};
use crate::ratelimit;
use crate::stream::{self, Piece, StreamWriter};
use crate::wire::{Id, sse_data, to_json, write_json};

const JSON: &str = "application/json; charset=UTF-8";
const SSE: &str = "text/event-stream";
/// Google ends each server-sent event line with CRLF; a client that splits
/// events only on `\n\n` breaks on the real API, so the fake does the same.
const EOL: &str = "\r\n";

/// Which method of a model the path names, and where the model is in it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target {
    /// Byte range of the model name in the path: the route stays `Copy` and
    /// allocation-free, and the name is sliced again when the request is served.
    model: (usize, usize),
    method: Method,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Generate,
    Stream { sse: bool },
    Embed,
}

impl Target {
    /// Reads `…/models/{model}:{method}`.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Target, UnknownMethod> {
        let not_found = || UnknownMethod(path.to_owned());
        let start = path.find("/models/").map(|at| at + "/models/".len());
        let colon = path.rfind(':');
        let (Some(start), Some(colon)) = (start, colon) else { return Err(not_found()) };
        if colon < start {
            return Err(not_found());
        }
        let method = match &path[colon + 1..] {
            "generateContent" => Method::Generate,
            "streamGenerateContent" => {
                Method::Stream { sse: query.is_some_and(|q| q.split('&').any(|pair| pair == "alt=sse")) }
            }
            "embedContent" | "batchEmbedContents" => Method::Embed,
            _ => return Err(not_found()),
        };
        Ok(Target { model: (start, colon), method })
    }

    pub fn embeds(&self) -> bool {
        self.method == Method::Embed
    }
}

/// A path naming no method the fake knows: a 404 in Gemini's shape.
#[derive(Debug)]
pub(crate) struct UnknownMethod(String);

impl IntoResponse for UnknownMethod {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": 404,
            "message": format!("The requested URL {} was not found on this server.", self.0),
            "status": "NOT_FOUND",
        }});
        (StatusCode::NOT_FOUND, [(axum::http::header::CONTENT_TYPE, JSON)], body.to_string()).into_response()
    }
}

pub(crate) struct Gemini<'a> {
    model: &'a str,
    method: Method,
}

impl<'a> Gemini<'a> {
    pub fn new(target: Target, path: &'a str) -> Gemini<'a> {
        Gemini { model: &path[target.model.0..target.model.1], method: target.method }
    }

    fn sse(&self) -> bool {
        self.method == Method::Stream { sse: true }
    }
}

impl Api for Gemini<'_> {
    const JSON: &'static str = JSON;

    fn prompt<'a>(&'a self, body: &'a Value) -> Prompt<'a> {
        let system: u32 = texts(&body["systemInstruction"]["parts"]).map(word_count).sum();
        Prompt {
            model: self.model,
            last_user: last_user_text(&body["contents"], "parts"),
            words: words_in_messages(&body["contents"], "parts") + system,
            max_tokens: as_u32(&body["generationConfig"]["maxOutputTokens"]),
            stream: matches!(self.method, Method::Stream { .. }),
            usage_in_stream: false,
            stop_sequence: None,
        }
    }

    fn body(&self, call: &Call<'_>, answer: &Answer<'_>) -> Vec<u8> {
        to_json(&self.response(call, Parts::All(answer), Some(answer.finish), answer.output_tokens, answer))
    }

    fn stream(&self, call: &Call<'_>, answer: &Answer<'_>, fault: Option<&Fault>) -> Plan {
        let writer = Writer { gemini: self, call, answer, pieces: 0, pieces_sent: 0, objects: 0 };
        let (frames, ending) = stream::compose(writer, answer, fault);
        Plan::framed(if self.sse() { SSE } else { JSON }, frames, ending)
    }

    fn refuse(&self, call: &Call<'_>, fault: &Fault) -> Option<Plan> {
        let plan = match *fault {
            Fault::RateLimited { retry_after } => {
                let mut details = vec![
                    quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", self.model, "15"),
                    help(),
                ];
                if let RetryAfter::GeminiRetryInfo { secs } = retry_after {
                    details.push(
                        json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")}),
                    );
                }
                let mut plan = error(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, details);
                ratelimit::insert_retry_after(&retry_after, call.now, &mut plan.headers);
                plan
            }
            Fault::InsufficientQuota => error(
                429,
                "RESOURCE_EXHAUSTED",
                QUOTA_MESSAGE,
                vec![quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier", self.model, "250"), help()],
            ),
            Fault::SpendLimit => error(
                429,
                "RESOURCE_EXHAUSTED",
                "Your project has exceeded its monthly spending cap. Raise the cap in Google AI Studio to continue.",
                vec![help()],
            ),
            Fault::Status { code } => status(code),
            Fault::InvalidRequest => error(
                400,
                "INVALID_ARGUMENT",
                "* GenerateContentRequest.contents: contents is not specified\n",
                Vec::new(),
            ),
            // The real API answers a bad key with 400 INVALID_ARGUMENT, not 401.
            Fault::Unauthorized => error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                vec![json!({
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                })],
            ),
            // A blocked prompt is a successful response with no candidates.
            Fault::ContentFilter => {
                let blocked = json!({
                    "promptFeedback": {
                        "blockReason": "SAFETY",
                        "safetyRatings": [
                            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true},
                            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                            {"category": "HARM_CATEGORY_SEXUALLY_EXPLICIT", "probability": "NEGLIGIBLE"},
                            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
                        ],
                    },
                    "usageMetadata": {"promptTokenCount": call.prompt.words, "totalTokenCount": call.prompt.words},
                    "modelVersion": self.model,
                });
                self.whole_or_streamed(blocked)
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
        to_json(&internal_error())
    }
}

impl Gemini<'_> {
    fn response<'a>(
        &'a self,
        call: &Call<'_>,
        parts: Parts<'a>,
        finish: Option<Finish>,
        output_tokens: u32,
        answer: &Answer<'_>,
    ) -> GenerateResponse<'a> {
        GenerateResponse {
            candidates: [Candidate {
                content: Content { parts, role: "model" },
                finish_reason: finish.map(finish_reason),
                index: 0,
            }],
            usage_metadata: UsageMetadata {
                prompt_token_count: answer.input_tokens,
                candidates_token_count: output_tokens,
                total_token_count: answer.input_tokens.saturating_add(output_tokens),
            },
            model_version: self.model,
            response_id: Id("fake-", call.index),
        }
    }

    /// One object: the whole body, one event, or a one-element array.
    fn whole_or_streamed(&self, object: Value) -> Plan {
        match self.method {
            Method::Stream { sse } => {
                let mut frames = Frames::new();
                frames.frame(|buf| {
                    if sse {
                        sse_data(buf, &object, EOL);
                    } else {
                        buf.push(b'[');
                        write_json(buf, &object);
                        buf.push(b']');
                    }
                });
                Plan::framed(if sse { SSE } else { JSON }, frames, Ending::Clean)
            }
            Method::Generate | Method::Embed => Plan::whole(StatusCode::OK, JSON, object.to_string().into_bytes()),
        }
    }
}

const QUOTA_MESSAGE: &str = "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.";

fn quota_failure(quota_id: &str, model: &str, value: &str) -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model},
            "quotaValue": value,
        }],
    })
}

fn help() -> Value {
    json!({
        "@type": "type.googleapis.com/google.rpc.Help",
        "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
    })
}

/// `{"error":{"code","message","status","details"?}}` with `code` as the status.
fn error(code: u16, status: &str, message: &str, details: Vec<Value>) -> Plan {
    let mut error = json!({"code": code, "message": message, "status": status});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    Plan::error(code, JSON, &json!({ "error": error }))
}

const INTERNAL_MESSAGE: &str = "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting";

fn internal_error() -> Value {
    json!({"error": {"code": 500, "message": INTERNAL_MESSAGE, "status": "INTERNAL"}})
}

/// The body Google sends with a bare status, by its canonical codes.
fn status(code: u16) -> Plan {
    let (status, message) = match code {
        400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
        401 => ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
        403 => ("PERMISSION_DENIED", "The caller does not have permission."),
        404 => ("NOT_FOUND", "Requested entity was not found."),
        429 => ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
        500 => ("INTERNAL", INTERNAL_MESSAGE),
        503 => ("UNAVAILABLE", "The model is overloaded. Please try again later."),
        504 => ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
        501..=599 => ("UNAVAILABLE", "The service is currently unavailable."),
        _ => ("UNKNOWN", "Unknown error."),
    };
    error(code, status, message, Vec::new())
}

fn finish_reason(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop | Finish::ToolCalls | Finish::StopSequence => "STOP",
        Finish::Length => "MAX_TOKENS",
        Finish::ContentFilter => "SAFETY",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GenerateResponse<'a> {
    candidates: [Candidate<'a>; 1],
    usage_metadata: UsageMetadata,
    model_version: &'a str,
    response_id: Id,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    content: Content<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'static str>,
    index: u32,
}

#[derive(Serialize)]
struct Content<'a> {
    parts: Parts<'a>,
    role: &'static str,
}

/// A candidate's parts: a whole answer, or one streamed piece.
enum Parts<'a> {
    All(&'a Answer<'a>),
    Text(&'a str),
    Call(&'a FakeToolCall),
}

impl Serialize for Parts<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match *self {
            Parts::All(answer) => {
                let text = (!answer.text.is_empty() || answer.tool_calls.is_empty()).then(|| Part::text(&answer.text));
                serializer.collect_seq(text.into_iter().chain(answer.tool_calls.iter().map(Part::call)))
            }
            Parts::Text(text) => serializer.collect_seq([Part::text(text)]),
            Parts::Call(call) => serializer.collect_seq([Part::call(call)]),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum Part<'a> {
    Text {
        text: &'a str,
    },
    Call {
        #[serde(rename = "functionCall")]
        function_call: FunctionCall<'a>,
    },
}

impl<'a> Part<'a> {
    fn text(text: &'a str) -> Part<'a> {
        Part::Text { text }
    }

    fn call(call: &'a FakeToolCall) -> Part<'a> {
        Part::Call { function_call: FunctionCall { name: &call.name, args: arguments_value(&call.arguments) } }
    }
}

#[derive(Serialize)]
struct FunctionCall<'a> {
    name: &'a str,
    args: Value,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    prompt_token_count: u32,
    candidates_token_count: u32,
    total_token_count: u32,
}

struct Writer<'a> {
    gemini: &'a Gemini<'a>,
    call: &'a Call<'a>,
    answer: &'a Answer<'a>,
    pieces: usize,
    pieces_sent: usize,
    /// Objects written so far: the first opens the JSON array, the others follow a comma.
    objects: usize,
}

impl Writer<'_> {
    /// Writes one response object, as an event or an array element.
    fn object(&mut self, out: &mut Frames, object: &impl Serialize) {
        let sse = self.gemini.sse();
        let first = self.objects == 0;
        self.objects += 1;
        out.frame(|buf| {
            if sse {
                sse_data(buf, object, EOL);
            } else {
                buf.extend_from_slice(if first { b"[" } else { b",\r\n" });
                write_json(buf, object);
            }
        });
    }

    /// Output tokens once `sent` pieces are out: every event carries the usage so far.
    fn tokens_after(&self, sent: usize) -> u32 {
        let total = u64::from(self.answer.output_tokens);
        u32::try_from(total * sent as u64 / self.pieces.max(1) as u64).unwrap_or(u32::MAX)
    }

    fn end_array(&self, out: &mut Frames) {
        if !self.gemini.sse() {
            out.frame(|buf| buf.push(b']'));
        }
    }
}

impl StreamWriter for Writer<'_> {
    const FRAGMENTED_TOOLS: bool = false;

    fn open(&mut self, _out: &mut Frames, pieces: usize) {
        self.pieces = pieces;
    }

    fn piece(&mut self, out: &mut Frames, piece: &Piece<'_>) {
        let parts = match *piece {
            Piece::Text(text) => Parts::Text(text),
            Piece::Tool { call, .. } | Piece::ToolStart { call, .. } => Parts::Call(call),
            Piece::ToolArguments { .. } => return,
        };
        self.pieces_sent += 1;
        let response = self.gemini.response(self.call, parts, None, self.tokens_after(self.pieces_sent), self.answer);
        self.object(out, &response);
    }

    /// A last event with an empty text part carries the finish and the final usage.
    fn close(&mut self, out: &mut Frames) {
        let (finish, tokens) = (Some(self.answer.finish), self.answer.output_tokens);
        let response = self.gemini.response(self.call, Parts::Text(""), finish, tokens, self.answer);
        self.object(out, &response);
        self.end_array(out);
    }

    fn late_error(&mut self, out: &mut Frames) {
        self.object(out, &internal_error());
        self.end_array(out);
    }

    fn malformed(&mut self, out: &mut Frames) {
        let sse = self.gemini.sse();
        out.frame(|buf| {
            if sse {
                buf.extend_from_slice(b"data: ");
            }
            buf.extend_from_slice(br#"{"candidates":[{"content":{"parts":[{"text":"unterminated"#);
            buf.extend_from_slice(b"\r\n\r\n");
        });
    }
}

/// `embedContent` and `batchEmbedContents` (told apart by a `requests` array).
pub(crate) fn embeddings(_call: &Call<'_>, body: &Value, _reply: &Reply) -> Vec<u8> {
    match body["requests"].as_array() {
        Some(requests) => to_json(&BatchEmbeddings { embeddings: Batch(requests) }),
        None => to_json(&SingleEmbedding { embedding: embedding_of(body) }),
    }
}

fn embedding_of(request: &Value) -> Values<'_> {
    let text = texts(&request["content"]["parts"]).next().unwrap_or("");
    Values { values: Vector { text, dimensions: embedding::dimensions(&request["outputDimensionality"]) } }
}

#[derive(Serialize)]
struct SingleEmbedding<'a> {
    embedding: Values<'a>,
}

#[derive(Serialize)]
struct BatchEmbeddings<'a> {
    embeddings: Batch<'a>,
}

struct Batch<'a>(&'a [Value]);

impl Serialize for Batch<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(embedding_of))
    }
}

#[derive(Serialize)]
struct Values<'a> {
    values: Vector<'a>,
}
