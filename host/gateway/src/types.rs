//! What a completion request and its answer are, independent of the WIT
//! bindings and of any provider's wire format.

use serde::Serialize;

/// Who wrote a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The user.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call.
    Tool,
}

/// A function call the model asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ToolCall {
    /// The provider's id for the call (synthesised when a provider has none).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
    /// Calls an assistant message made.
    pub tool_calls: Vec<ToolCall>,
    /// The call a tool message answers.
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A plain message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }
}

/// A function the model may call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolSpec {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Its parameters as JSON Schema text.
    pub parameters: String,
}

/// A completion request, as an agent made it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChatRequest {
    /// The route to take.
    pub route: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Functions the model may call.
    pub tools: Vec<ToolSpec>,
    /// A JSON Schema (text) the reply must match.
    pub response_schema: Option<String>,
    /// Most tokens to generate.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Conversation id for provider affinity.
    pub conversation: Option<String>,
    /// Only the route's targets whose `provider/model`, or model, this is
    /// (a caller's `model = "ROUTE/TARGET"`); every target when `None`.
    pub target: Option<String>,
}

impl ChatRequest {
    /// A rough count of the prompt's tokens (four bytes a token), used to
    /// reserve budget before the provider says what the call really used.
    pub fn estimated_input_tokens(&self) -> u32 {
        let bytes: usize = self.messages.iter().map(|m| m.content.len() + 4).sum::<usize>()
            + self.tools.iter().map(|t| t.name.len() + t.description.len() + t.parameters.len()).sum::<usize>()
            + self.response_schema.as_ref().map_or(0, String::len);
        (bytes / 4 + 1).min(u32::MAX as usize) as u32
    }
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Finish {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The token limit.
    Length,
    /// It wants tool calls answered.
    ToolCalls,
    /// The provider's content filter.
    ContentFilter,
}

impl Finish {
    /// The name agents see.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool-calls",
            Finish::ContentFilter => "content-filter",
        }
    }
}

/// Tokens a call consumed, as the provider reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    /// Prompt tokens.
    pub input: u32,
    /// Generated tokens.
    pub output: u32,
}

/// A provider's whole answer to one attempt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// The text.
    pub text: String,
    /// Tool calls asked for.
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish: Finish,
    /// Usage, when the provider reported it.
    pub tokens: Option<Tokens>,
}

/// One piece of a streamed answer, already decoded from the wire format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    /// More text.
    Text(String),
    /// A complete tool call (streamed fragments are joined before this).
    ToolCall(ToolCall),
    /// Usage so far. Providers report running totals, so the latest replaces
    /// the earlier ones — never summed, never counted twice.
    Tokens(Tokens),
    /// Why it stopped.
    Finish(Finish),
    /// The provider said the answer is complete.
    Done,
}
