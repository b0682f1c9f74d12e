//! Tool names and the patterns that grant them.
//!
//! An agent names a tool `server/tool`: the operator's MCP server (its
//! `[mcp.NAME]`) and the tool that server offers. A manifest asks for, and a
//! tenant grants, patterns: `server/tool`, one tool, or `server/*`, every
//! tool of one server. A tenant may also grant `"*"` (every tool); a manifest
//! may not, since an agent asks for what it uses.

/// Every tool of every server: a tenant's grant only.
pub const ANY: &str = "*";

/// A tool name or pattern that breaks the rules; the text states them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ToolNameError {
    /// Not `server/tool` or `server/*`.
    #[error(
        "`{}` is not a tool pattern: use \"server/tool\" or \"server/*\", the server an [mcp.NAME] name \
         and the tool 1 to 128 of A-Z, a-z, 0-9, '_', '-' and '.'",
        .0.escape_debug()
    )]
    Pattern(String),
    /// Not `server/tool`.
    #[error(
        "`{}` is not a tool name: use \"server/tool\", the server an [mcp.NAME] name and the tool 1 to 128 \
         of A-Z, a-z, 0-9, '_', '-' and '.'",
        .0.escape_debug()
    )]
    Name(String),
}

/// Whether `tool` is 1 to 128 of `A-Z a-z 0-9 _ - .` (the MCP specification's
/// advice for tool names).
fn is_tool(tool: &str) -> bool {
    !tool.is_empty()
        && tool.len() <= 128
        && tool.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// `name` split into its server and tool, when it is `server/tool`.
pub fn split(name: &str) -> Result<(&str, &str), ToolNameError> {
    match name.split_once('/') {
        Some((server, tool)) if crate::names::validate_agent(server).is_ok() && is_tool(tool) => Ok((server, tool)),
        _ => Err(ToolNameError::Name(name.to_string())),
    }
}

/// Checks a pattern of a manifest or a grant: `server/tool` or `server/*`.
pub fn validate_pattern(pattern: &str) -> Result<(), ToolNameError> {
    match pattern.split_once('/') {
        Some((server, tool)) if crate::names::validate_agent(server).is_ok() && (tool == "*" || is_tool(tool)) => {
            Ok(())
        }
        _ => Err(ToolNameError::Pattern(pattern.to_string())),
    }
}

/// The server a pattern names (`"*"` names none).
pub fn server_of(pattern: &str) -> Option<&str> {
    pattern.split_once('/').map(|(server, _)| server)
}

/// Whether `pattern` grants the tool `name` (`server/tool`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if pattern == ANY {
        return true;
    }
    match (pattern.split_once('/'), name.split_once('/')) {
        (Some((ps, pt)), Some((ns, nt))) => ps == ns && (pt == "*" || pt == nt),
        _ => false,
    }
}

/// Whether every tool `inner` grants, `outer` grants too.
pub fn covers(outer: &str, inner: &str) -> bool {
    if outer == ANY {
        return true;
    }
    match (outer.split_once('/'), inner.split_once('/')) {
        (Some((os, "*")), Some((is, _))) => os == is,
        (Some((os, ot)), Some((is, it))) => os == is && ot == it && it != "*",
        _ => false,
    }
}

/// The tools both `asked` and `granted` name, as patterns: the narrower of
/// the two where one covers the other.
pub fn intersect(asked: &str, granted: &str) -> Option<String> {
    narrower(asked, granted, covers)
}

/// The narrower of two patterns where one covers the other, by `covers`
/// (the rule for tool and host patterns alike).
pub(crate) fn narrower(asked: &str, granted: &str, covers: fn(&str, &str) -> bool) -> Option<String> {
    if covers(granted, asked) {
        Some(asked.to_string())
    } else if covers(asked, granted) {
        Some(granted.to_string())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_a_server_and_a_tool_or_a_star() {
        assert_eq!(validate_pattern("github/search_issues"), Ok(()));
        assert_eq!(validate_pattern("fetch/*"), Ok(()));
        for bad in ["*", "github", "github/", "/x", "Git/x", "github/a b", "github/a/b", "github/*x"] {
            assert_eq!(validate_pattern(bad), Err(ToolNameError::Pattern(bad.into())), "{bad}");
        }
        assert_eq!(
            validate_pattern("github").unwrap_err().to_string(),
            "`github` is not a tool pattern: use \"server/tool\" or \"server/*\", the server an [mcp.NAME] name \
             and the tool 1 to 128 of A-Z, a-z, 0-9, '_', '-' and '.'"
        );
    }

    #[test]
    fn a_name_splits_into_its_server_and_tool() {
        assert_eq!(split("kit/echo.v2"), Ok(("kit", "echo.v2")));
        assert_eq!(split("kit/*"), Err(ToolNameError::Name("kit/*".into())));
        assert_eq!(split("echo"), Err(ToolNameError::Name("echo".into())));
    }

    #[test]
    fn patterns_match_cover_and_intersect() {
        assert!(matches("kit/*", "kit/echo") && matches("kit/echo", "kit/echo") && matches(ANY, "kit/echo"));
        assert!(!matches("kit/echo", "kit/big") && !matches("kit/*", "other/echo"));
        assert!(covers("kit/*", "kit/echo") && covers("kit/*", "kit/*") && covers(ANY, "kit/*"));
        assert!(!covers("kit/echo", "kit/*") && !covers("kit/echo", "kit/big"));
        assert_eq!(intersect("kit/*", "kit/echo").as_deref(), Some("kit/echo"));
        assert_eq!(intersect("kit/echo", "kit/*").as_deref(), Some("kit/echo"));
        assert_eq!(intersect("kit/*", ANY).as_deref(), Some("kit/*"));
        assert_eq!(intersect("kit/echo", "kit/big"), None);
    }
}
