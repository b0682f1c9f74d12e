//! What a tool call answers an agent: its text, its structured content, and
//! every content block as MCP gave them.

use crate::ToolError;
use rmcp::model::CallToolResult;
use serde::{Deserialize, Serialize};

/// A tool's result, as an agent receives it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// The text blocks of the result, joined by newlines.
    pub text: String,
    /// The structured content (a JSON object as text), when the tool gave one.
    pub structured: Option<String>,
    /// Every content block (text, image, resource...) as MCP JSON text.
    pub content: String,
}

impl Output {
    /// `result` as an agent's answer: a result the tool marked as an error
    /// is [`ToolError::Failed`] with its text.
    pub fn of(name: &str, result: CallToolResult) -> Result<Output, ToolError> {
        let text: Vec<&str> = result.content.iter().filter_map(|c| c.as_text().map(|t| t.text.as_str())).collect();
        let text = text.join("\n");
        if result.is_error == Some(true) {
            let why = if text.is_empty() { "the tool reported an error and no text".to_string() } else { text };
            return Err(ToolError::Failed(format!("{name}: {why}")));
        }
        Ok(Output {
            structured: result.structured_content.as_ref().map(ToString::to_string),
            content: serde_json::to_string(&result.content).unwrap_or_else(|_| "[]".into()),
            text,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ContentBlock as Content;

    #[test]
    fn text_blocks_join_and_an_error_result_is_failed_with_its_text() {
        let ok = CallToolResult::success(vec![Content::text("a"), Content::text("b")]);
        let out = Output::of("kit/echo", ok).unwrap();
        assert_eq!((out.text.as_str(), out.structured), ("a\nb", None));
        assert_eq!(out.content, r#"[{"type":"text","text":"a"},{"type":"text","text":"b"}]"#);
        let structured = CallToolResult::structured(serde_json::json!({"n": 1}));
        assert_eq!(Output::of("kit/n", structured).unwrap().structured.as_deref(), Some(r#"{"n":1}"#));
        let failed = CallToolResult::error(vec![Content::text("no luck")]);
        assert_eq!(Output::of("kit/fail", failed), Err(ToolError::Failed("kit/fail: no luck".into())));
    }
}
