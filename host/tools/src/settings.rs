//! `[mcp.NAME]`: an MCP server the operator configures, as serde reads it,
//! and its validation. Errors name the key (`mcp.github.url: ...`).

use paddock_core::{ByteSize, Span};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest a call may be given (`mcp.NAME.timeout`).
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// The most a result may be given (`mcp.NAME.max-result-bytes`).
const MAX_RESULT: u64 = 64 << 20;

/// `[mcp.NAME]`, as serde reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct McpFile {
    command: Option<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    pass_env: Vec<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    header_env: BTreeMap<String, String>,
    #[serde(default)]
    header_secrets: BTreeMap<String, String>,
    timeout: Option<Span>,
    #[serde(default)]
    tool_timeouts: BTreeMap<String, Span>,
    connect_timeout: Option<Span>,
    max_result_bytes: Option<ByteSize>,
}

/// How the host reaches a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A process it starts, speaking MCP on its stdin and stdout.
    Stdio {
        /// The program and its arguments.
        command: Vec<String>,
        /// Where it runs: the folder of the config file.
        dir: PathBuf,
        /// Its environment: nothing of the host's but `PATH`, `HOME`, `LANG`
        /// and `TMPDIR`, the variables `pass-env` names, and `env`.
        env: BTreeMap<String, String>,
        /// The host's variables it is given (`pass-env`).
        pass_env: Vec<String>,
    },
    /// A server at a URL, over Streamable HTTP.
    Http {
        /// Its endpoint (`https://example.com/mcp`).
        url: String,
        /// Headers sent as they are written.
        headers: BTreeMap<String, String>,
        /// Headers whose value is read from a variable of the host's
        /// environment when connecting (a key stays out of the file).
        header_env: BTreeMap<String, String>,
        /// Headers whose value is an entry of the secrets file (`host.secrets`),
        /// read with the configuration.
        header_secrets: BTreeMap<String, Hidden>,
    },
}

/// A checked `[mcp.NAME]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServer {
    /// Its name: the part of a tool's name before the `/`.
    pub name: String,
    /// How it is reached.
    pub transport: Transport,
    /// The longest one call may take (`timeout`, default 30 s).
    pub timeout: Duration,
    /// The longest a call of one tool may take, where it differs (`tool-timeouts`).
    pub tool_timeouts: BTreeMap<String, Duration>,
    /// The longest connecting and the handshake may take (`connect-timeout`, default 10 s).
    pub connect_timeout: Duration,
    /// The most bytes a result may have as JSON (`max-result-bytes`, default 1 MiB).
    pub max_result_bytes: u64,
}

/// A value that never shows in `Debug` output (a key from the secrets file).
#[derive(Clone, PartialEq, Eq)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hidden(..)")
    }
}

impl McpServer {
    /// The longest a call of `tool` may take.
    pub fn timeout_of(&self, tool: &str) -> Duration {
        self.tool_timeouts.get(tool).copied().unwrap_or(self.timeout)
    }
}

impl McpFile {
    /// Whether it takes a header from the secrets file.
    pub fn uses_secrets(&self) -> bool {
        !self.header_secrets.is_empty()
    }

    /// Checks `[mcp.NAME]`; a relative command runs in `dir`; `secrets` is
    /// the secrets file's entries, when one is configured.
    pub fn server(
        self,
        name: &str,
        dir: &Path,
        secrets: Option<&BTreeMap<String, String>>,
    ) -> Result<McpServer, String> {
        let at = format!("mcp.{name}");
        paddock_core::names::validate_agent(name).map_err(|_| {
            format!("{at}: `{name}` is not a server name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter")
        })?;
        let transport = match (self.command, self.url) {
            (Some(command), None) => {
                if command.first().is_none_or(|c| c.is_empty()) {
                    return Err(format!("{at}.command: the program to start, then its arguments"));
                }
                if !self.headers.is_empty() || !self.header_env.is_empty() || !self.header_secrets.is_empty() {
                    return Err(format!("{at}.headers: only a server with a url takes headers"));
                }
                Transport::Stdio { command, dir: dir.to_path_buf(), env: self.env, pass_env: self.pass_env }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) || reqwest::Url::parse(&url).is_err() {
                    return Err(format!("{at}.url: `{url}` is not an http:// or https:// URL"));
                }
                if !self.env.is_empty() || !self.pass_env.is_empty() {
                    return Err(format!("{at}.env: only a server started by command takes an environment"));
                }
                for header in self.headers.keys().chain(self.header_env.keys()).chain(self.header_secrets.keys()) {
                    if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                        return Err(format!("{at}.headers: `{header}` is not a header name"));
                    }
                }
                let mut header_secrets = BTreeMap::new();
                for (header, entry) in self.header_secrets {
                    let key = format!("{at}.header-secrets.{header}");
                    let secrets =
                        secrets.ok_or_else(|| format!("{key}: no secrets file is configured (host.secrets)"))?;
                    let value =
                        secrets.get(&entry).ok_or_else(|| format!("{key}: the secrets file has no key {entry:?}"))?;
                    header_secrets.insert(header, Hidden(value.clone()));
                }
                Transport::Http { url, headers: self.headers, header_env: self.header_env, header_secrets }
            }
            (Some(_), Some(_)) => return Err(format!("{at}: either command (stdio) or url (HTTP), not both")),
            (None, None) => {
                return Err(format!("{at}: command = [\"program\", ...] (stdio) or url = \"https://...\" (HTTP)"));
            }
        };
        let span = |key: &str, value: Option<Span>, default: Duration| match value.map_or(default, |s| s.0) {
            d if d.is_zero() || d > MAX_TIMEOUT => {
                Err(format!("{at}.{key} ({}) must be more than 0 and at most 1h", Span(d)))
            }
            d => Ok(d),
        };
        let max_result_bytes = self.max_result_bytes.map_or(1 << 20, |b| b.0);
        if !(1..=MAX_RESULT).contains(&max_result_bytes) {
            return Err(format!("{at}.max-result-bytes ({}) must be 1 B to 64 MiB", ByteSize(max_result_bytes)));
        }
        let mut tool_timeouts = BTreeMap::new();
        for (tool, limit) in self.tool_timeouts {
            paddock_core::tools::split(&format!("{name}/{tool}")).map_err(|_| {
                format!("{at}.tool-timeouts: `{tool}` is not a tool name (1 to 128 of A-Z, a-z, 0-9, '_', '-' and '.')")
            })?;
            let limit = span(&format!("tool-timeouts.{tool}"), Some(limit), Duration::ZERO)?;
            tool_timeouts.insert(tool, limit);
        }
        Ok(McpServer {
            name: name.to_string(),
            transport,
            timeout: span("timeout", self.timeout, Duration::from_secs(30))?,
            tool_timeouts,
            connect_timeout: span("connect-timeout", self.connect_timeout, Duration::from_secs(10))?,
            max_result_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(text: &str) -> Result<McpServer, String> {
        let secrets = BTreeMap::from([("gh".to_string(), "Bearer s3cret".to_string())]);
        toml::from_str::<McpFile>(text).map_err(|e| e.to_string())?.server("github", Path::new("conf"), Some(&secrets))
    }

    #[test]
    fn a_stdio_server_runs_in_the_config_folder_with_defaults() {
        let s = server("command = [\"python3\", \"server.py\"]\npass-env = [\"GITHUB_TOKEN\"]\n").unwrap();
        assert_eq!(
            s.transport,
            Transport::Stdio {
                command: vec!["python3".into(), "server.py".into()],
                dir: PathBuf::from("conf"),
                env: BTreeMap::new(),
                pass_env: vec!["GITHUB_TOKEN".into()],
            }
        );
        assert_eq!(
            (s.timeout, s.connect_timeout, s.max_result_bytes),
            (Duration::from_secs(30), Duration::from_secs(10), 1 << 20)
        );
        let s = server("command = [\"a\"]\ntimeout = \"5s\"\ntool-timeouts = { search = \"1s\" }\n").unwrap();
        assert_eq!((s.timeout_of("search"), s.timeout_of("other")), (Duration::from_secs(1), Duration::from_secs(5)));
    }

    #[test]
    fn a_header_from_the_secrets_file_is_read_with_the_config_and_never_shown() {
        let s = server("url = \"https://x\"\nheader-secrets = { Authorization = \"gh\" }").unwrap();
        let Transport::Http { header_secrets, .. } = &s.transport else { panic!("{s:?}") };
        assert_eq!(header_secrets["Authorization"], Hidden("Bearer s3cret".into()));
        assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
        let none =
            toml::from_str::<McpFile>("url = \"https://x\"\nheader-secrets = { Authorization = \"gh\" }").unwrap();
        assert_eq!(
            none.server("github", Path::new("conf"), None).unwrap_err(),
            "mcp.github.header-secrets.Authorization: no secrets file is configured (host.secrets)"
        );
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases = [
            ("", "mcp.github: command = [\"program\", ...] (stdio) or url = \"https://...\" (HTTP)"),
            ("command = []", "mcp.github.command: the program to start, then its arguments"),
            ("url = \"ftp://x\"", "mcp.github.url: `ftp://x` is not an http:// or https:// URL"),
            ("command = [\"a\"]\nurl = \"https://x\"", "mcp.github: either command (stdio) or url (HTTP), not both"),
            (
                "command = [\"a\"]\nheaders = { a = \"b\" }",
                "mcp.github.headers: only a server with a url takes headers",
            ),
            ("url = \"https://x\"\nheaders = { \"a b\" = \"c\" }", "mcp.github.headers: `a b` is not a header name"),
            (
                "url = \"https://x\"\nheader-secrets = { Authorization = \"gitlab\" }",
                "mcp.github.header-secrets.Authorization: the secrets file has no key \"gitlab\"",
            ),
            ("command = [\"a\"]\ntimeout = \"0s\"", "mcp.github.timeout (0s) must be more than 0 and at most 1h"),
            (
                "command = [\"a\"]\ntool-timeouts = { search = \"2h\" }",
                "mcp.github.tool-timeouts.search (2h) must be more than 0 and at most 1h",
            ),
            (
                "command = [\"a\"]\ntool-timeouts = { \"a/b\" = \"1s\" }",
                "mcp.github.tool-timeouts: `a/b` is not a tool name (1 to 128 of A-Z, a-z, 0-9, '_', '-' and '.')",
            ),
            (
                "command = [\"a\"]\nmax-result-bytes = \"1GiB\"",
                "mcp.github.max-result-bytes (1 GiB) must be 1 B to 64 MiB",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(server(text).unwrap_err(), message, "{text}");
        }
    }
}
