//! What the fake reads from a request body, leniently: any field may be
//! missing or of the wrong type, and then counts as absent.

use serde_json::Value;

/// The parts of a request the fake acts on, borrowed from its JSON body.
#[derive(Debug, Default)]
pub(crate) struct Prompt<'a> {
    /// The model asked for, or the dialect's usual one.
    pub model: &'a str,
    /// Text of the last user message that has text.
    pub last_user: &'a str,
    /// Whitespace-separated words in the whole prompt (system, messages).
    pub words: u32,
    /// The cap on output tokens.
    pub max_tokens: Option<u32>,
    pub stream: bool,
    /// OpenAI's `stream_options.include_usage`.
    pub usage_in_stream: bool,
    /// Anthropic's first `stop_sequences` entry, reported for [`crate::Finish::StopSequence`].
    pub stop_sequence: Option<&'a str>,
}

/// Texts of a message's content: a string, or the `text` of each part of an
/// array (OpenAI and Anthropic content parts, Gemini parts).
pub(crate) fn texts(content: &Value) -> Texts<'_> {
    match content {
        Value::String(text) => Texts::One(Some(text)),
        Value::Array(parts) => Texts::Parts(parts.iter()),
        _ => Texts::One(None),
    }
}

pub(crate) enum Texts<'a> {
    One(Option<&'a str>),
    Parts(std::slice::Iter<'a, Value>),
}

impl<'a> Iterator for Texts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        match self {
            Texts::One(text) => text.take(),
            Texts::Parts(parts) => parts.find_map(|part| part["text"].as_str()),
        }
    }
}

pub(crate) fn word_count(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

/// Words in `content_field` of every message of an array.
pub(crate) fn words_in_messages(messages: &Value, content_field: &str) -> u32 {
    messages
        .as_array()
        .map_or(0, |messages| messages.iter().flat_map(|message| texts(&message[content_field])).map(word_count).sum())
}

/// The text of the last message whose role is user (or unset, as Gemini
/// allows) and that has any text; tool results are skipped that way.
pub(crate) fn last_user_text<'a>(messages: &'a Value, content_field: &str) -> &'a str {
    let Some(messages) = messages.as_array() else { return "" };
    messages
        .iter()
        .rev()
        .filter(|message| matches!(message["role"].as_str(), Some("user") | None))
        .find_map(|message| texts(&message[content_field]).find(|text| !text.is_empty()))
        .unwrap_or("")
}

/// A non-negative integer field, saturated to `u32`.
pub(crate) fn as_u32(value: &Value) -> Option<u32> {
    value.as_u64().map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The first `n` characters of `text`.
pub(crate) fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(end, _)| &text[..end])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn last_user_text_skips_assistant_turns_and_tool_results() {
        let messages = json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "what is the weather"}]},
            {"role": "assistant", "content": "calling a tool"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
        ]);
        assert_eq!(last_user_text(&messages, "content"), "what is the weather");
        assert_eq!(words_in_messages(&messages, "content"), 9);
    }

    #[test]
    fn missing_or_mistyped_fields_count_as_absent() {
        assert_eq!(last_user_text(&json!(null), "content"), "");
        assert_eq!(words_in_messages(&json!({"not": "an array"}), "content"), 0);
        assert_eq!(as_u32(&json!("12")), None);
        assert_eq!(as_u32(&json!(12)), Some(12));
    }

    #[test]
    fn first_chars_counts_characters_not_bytes() {
        assert_eq!(first_chars("héllo wörld", 7), "héllo w");
        assert_eq!(first_chars("short", 60), "short");
    }
}
