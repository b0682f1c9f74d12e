//! One request, from body to response: read it, pick its behavior, have the
//! dialect render it, record it, then send the response (after any stall).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::answer::Answer;
use crate::behavior::{Behavior, Fault, Reply};
use crate::gemini::{self, Gemini};
use crate::plan::Plan;
use crate::prompt::Prompt;
use crate::record::{Dialect, Entry};
use crate::state::{Shared, Turn};
use crate::{anthropic::Anthropic, ollama::Ollama, openai::OpenAi, ratelimit};

/// Request bodies above this are refused with 413: far above any test
/// prompt, and a bound on what a runaway client can make the fake buffer.
const MAX_BODY_BYTES: usize = 32 << 20;

/// One provider API's rendering of answers and faults.
pub(crate) trait Api {
    /// Content type of whole JSON bodies, errors included.
    const JSON: &'static str;
    /// Reads what the fake acts on from a chat request.
    fn prompt<'a>(&'a self, body: &'a Value) -> Prompt<'a>;
    /// A whole, non-streaming answer.
    fn body(&self, call: &Call<'_>, answer: &Answer<'_>) -> Vec<u8>;
    /// A streamed answer, shaped by `fault`.
    fn stream(&self, call: &Call<'_>, answer: &Answer<'_>, fault: Option<&Fault>) -> Plan;
    /// The error response for a fault that refuses the request; `None` for
    /// the faults that shape a successful answer instead.
    fn refuse(&self, call: &Call<'_>, fault: &Fault) -> Option<Plan>;
    /// The in-stream error as a whole body, for [`Fault::ErrorEventAfterOk`] without a stream.
    fn late_error(&self) -> Vec<u8>;
}

/// One call to a provider API, as the dialects render it.
pub(crate) struct Call<'a> {
    /// The request's number, for ids.
    pub index: u64,
    pub prompt: Prompt<'a>,
    pub now: SystemTime,
}

impl Call<'_> {
    /// Seconds since the Unix epoch, for `created` fields.
    pub fn unix_secs(&self) -> u64 {
        self.now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
    }
}

/// The endpoints, by what they do.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Route {
    OpenAiChat,
    OpenAiEmbed,
    AnthropicMessages,
    /// `/v1beta/models/{model}:{method}`, already read from the path.
    Gemini(gemini::Target),
    OllamaChat,
    OllamaEmbed,
}

impl Route {
    fn dialect(self) -> Dialect {
        match self {
            Route::OpenAiChat | Route::OpenAiEmbed => Dialect::OpenAi,
            Route::AnthropicMessages => Dialect::Anthropic,
            Route::Gemini(_) => Dialect::Gemini,
            Route::OllamaChat | Route::OllamaEmbed => Dialect::Ollama,
        }
    }
}

pub(crate) async fn serve(shared: Arc<Shared>, route: Route, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {MAX_BODY_BYTES} bytes")).into_response();
    };
    let at = Instant::now();
    let (body, turn, rejected) = match serde_json::from_slice::<Value>(&bytes) {
        Ok(body) => (body, shared.next_turn(), false),
        Err(_) => (Value::Null, shared.rejected_turn(), true),
    };
    let now = SystemTime::now();
    let (mut plan, stream) = match route {
        Route::OpenAiChat => chat(&OpenAi, &turn, &body, now),
        Route::OpenAiEmbed => embed(&OpenAi, &turn, &body, now, crate::openai::embeddings),
        Route::AnthropicMessages => chat(&Anthropic, &turn, &body, now),
        Route::Gemini(target) => {
            let api = Gemini::new(target, parts.uri.path());
            if target.embeds() {
                embed(&api, &turn, &body, now, gemini::embeddings)
            } else {
                chat(&api, &turn, &body, now)
            }
        }
        Route::OllamaChat => chat(&Ollama, &turn, &body, now),
        Route::OllamaEmbed => embed(&Ollama, &turn, &body, now, crate::ollama::embeddings),
    };
    if let Some(limits) = &turn.settings.rate_limit {
        ratelimit::insert(route.dialect(), limits, now, &mut plan.headers);
    }
    shared.log.push(Entry {
        dialect: route.dialect(),
        uri: parts.uri,
        headers: parts.headers,
        body: if rejected { Value::String(String::from_utf8_lossy(&bytes).into_owned()) } else { body },
        stream,
        behavior: turn.behavior,
        at,
    });
    if !plan.first_byte_delay.is_zero() && !shared.closing().pause(plan.first_byte_delay).await {
        return (StatusCode::SERVICE_UNAVAILABLE, "the fake provider is shutting down").into_response();
    }
    plan.into_response(&shared)
}

/// A chat request: the plan, and whether a stream was asked for.
fn chat<A: Api>(api: &A, turn: &Turn, body: &Value, now: SystemTime) -> (Plan, bool) {
    let call = Call { index: turn.index, prompt: api.prompt(body), now };
    let plan = match &*turn.behavior {
        Behavior::Reply(reply) => answer(api, &call, reply, None),
        Behavior::Fault(fault) => {
            api.refuse(&call, fault).unwrap_or_else(|| answer(api, &call, turn.settings.base_reply(), Some(fault)))
        }
    };
    (plan, call.prompt.stream)
}

fn answer<A: Api>(api: &A, call: &Call<'_>, reply: &Reply, fault: Option<&Fault>) -> Plan {
    let answer = Answer::new(reply, &call.prompt);
    let mut plan = if call.prompt.stream {
        api.stream(call, &answer, fault)
    } else {
        Plan::shaped(A::JSON, api.body(call, &answer), fault, || api.late_error())
    };
    plan.first_byte_delay = answer.first_byte_delay + stall_before_first_byte(fault);
    plan
}

/// Renders an embeddings answer: the call, the request body and the reply
/// (for its token count).
type EmbedFn = fn(&Call<'_>, &Value, &Reply) -> Vec<u8>;

/// An embeddings request: never streamed; faults refuse it or shape its body.
fn embed<A: Api>(api: &A, turn: &Turn, body: &Value, now: SystemTime, render: EmbedFn) -> (Plan, bool) {
    let mut call = Call { index: turn.index, prompt: api.prompt(body), now };
    call.prompt.stream = false;
    let (reply, fault) = match &*turn.behavior {
        Behavior::Reply(reply) => (reply, None),
        Behavior::Fault(fault) => match api.refuse(&call, fault) {
            Some(plan) => return (plan, false),
            None => (turn.settings.base_reply(), Some(fault)),
        },
    };
    let mut plan = Plan::shaped(A::JSON, render(&call, body, reply), fault, || api.late_error());
    plan.first_byte_delay = Duration::from_millis(reply.first_byte_delay_ms) + stall_before_first_byte(fault);
    (plan, false)
}

fn stall_before_first_byte(fault: Option<&Fault>) -> Duration {
    match fault {
        Some(Fault::StallBeforeFirstByte { ms }) => Duration::from_millis(*ms),
        _ => Duration::ZERO,
    }
}
