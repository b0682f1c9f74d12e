//! Language models through the operator's routes, with a chat builder.

use crate::bindings::paddock::agent::llm as raw;

pub use raw::{CompletionStream, Error, Message, Request, Response, Role, Tool, ToolCall, Usage, embed};

/// Says what an LLM error means, in words.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Denied(why) => format!("denied: {why}"),
        Error::BudgetExceeded(why) => format!("budget exceeded: {why}"),
        Error::RateLimited(ms) => format!("rate limited: retry after {ms} ms"),
        Error::InvalidRequest(why) => format!("invalid request: {why}"),
        Error::ContentFiltered(why) => format!("content filtered: {why}"),
        Error::Timeout => "timed out".to_string(),
        Error::Unavailable(why) => format!("unavailable: {why}"),
    }
}

/// Builds a chat request for a route, then sends or streams it.
///
/// ```no_run
/// use paddock_sdk::llm::Chat;
/// let answer = Chat::new("fast").system("Answer in one word.").user("Capital of France?").max_tokens(5).send();
/// ```
#[derive(Clone, Debug)]
pub struct Chat {
    request: Request,
}

impl Chat {
    /// A chat on `route` (a route name the operator configured).
    pub fn new(route: &str) -> Self {
        Chat {
            request: Request {
                route: route.to_string(),
                messages: Vec::new(),
                tools: Vec::new(),
                response_schema: None,
                max_tokens: None,
                temperature: None,
                stop: Vec::new(),
                conversation: None,
            },
        }
    }

    fn message(mut self, role: Role, content: &str) -> Self {
        self.request.messages.push(Message {
            role,
            content: content.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        });
        self
    }

    /// Adds a system message.
    pub fn system(self, content: &str) -> Self {
        self.message(Role::System, content)
    }

    /// Adds a user message.
    pub fn user(self, content: &str) -> Self {
        self.message(Role::User, content)
    }

    /// Adds an assistant message.
    pub fn assistant(self, content: &str) -> Self {
        self.message(Role::Assistant, content)
    }

    /// Adds the result of the tool call `call_id`.
    pub fn tool_result(mut self, call_id: &str, content: &str) -> Self {
        self.request.messages.push(Message {
            role: Role::Tool,
            content: content.to_string(),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_string()),
        });
        self
    }

    /// Offers a tool; `parameters` is a JSON Schema as text.
    pub fn tool(mut self, name: &str, description: &str, parameters: &str) -> Self {
        self.request.tools.push(Tool {
            name: name.into(),
            description: description.into(),
            parameters: parameters.into(),
        });
        self
    }

    /// Asks for a reply matching this JSON Schema (as text).
    pub fn schema(mut self, schema: &str) -> Self {
        self.request.response_schema = Some(schema.to_string());
        self
    }

    /// Caps the reply's length.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.request.max_tokens = Some(n);
        self
    }

    /// Sets the sampling temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.request.temperature = Some(t);
        self
    }

    /// Adds a stop sequence.
    pub fn stop(mut self, sequence: &str) -> Self {
        self.request.stop.push(sequence.to_string());
        self
    }

    /// Keeps this conversation on the provider that served it.
    pub fn conversation(mut self, id: &str) -> Self {
        self.request.conversation = Some(id.to_string());
        self
    }

    /// The request as built.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Sends it and waits for the whole answer.
    pub fn send(self) -> Result<Response, Error> {
        raw::complete(&self.request)
    }

    /// Sends it and returns the answer as a stream of text pieces. The host
    /// falls back to another target only before the first piece; once `next`
    /// returns `None`, `response()` has the whole answer (tool calls, usage,
    /// provider, attempts).
    ///
    /// ```no_run
    /// use paddock_sdk::llm::Chat;
    /// let stream = Chat::new("fast").user("Tell me a story.").stream()?;
    /// while let Some(piece) = stream.next() {
    ///     print!("{}", piece?);
    /// }
    /// let whole = stream.response().expect("complete once next() returned None");
    /// println!("\n{} tokens from {}", whole.usage.output_tokens, whole.provider);
    /// # Ok::<(), paddock_sdk::llm::Error>(())
    /// ```
    pub fn stream(self) -> Result<CompletionStream, Error> {
        raw::stream(&self.request)
    }
}
