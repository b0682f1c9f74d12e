//! Settings of loading and reloading plugins: the compiled-code cache, where
//! accepted capabilities and approvals are kept, and `paddock serve`.

use super::units::Span;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How plugins are loaded, reloaded and served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSettings {
    /// Where compiled code is kept; `None` compiles every time.
    pub code_cache: Option<PathBuf>,
    /// Where accepted capabilities and approvals are kept; `None` keeps them in memory.
    pub book: Option<PathBuf>,
    /// Where `paddock serve` listens.
    pub listen: SocketAddr,
    /// How long file changes settle before a reload.
    pub debounce: Duration,
}

/// `[host] code-cache`: on, off, or a folder.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum CodeCacheFile {
    /// `true` (in `host.data`) or `false`.
    On(bool),
    /// A folder, relative to the configuration file.
    Dir(PathBuf),
}

/// `[serve]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServeSection {
    listen: Option<String>,
    debounce: Option<Span>,
}

/// The default address of `paddock serve`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// Validates the plugin settings; `data` is `host.data`, resolved.
pub(super) fn plugin_settings(
    code_cache: Option<CodeCacheFile>,
    plugin_state: Option<&str>,
    serve: ServeSection,
    data: &Path,
    base: &Path,
) -> Result<PluginSettings, String> {
    let code_cache = match code_cache {
        None | Some(CodeCacheFile::On(true)) => Some(data.join("code")),
        Some(CodeCacheFile::On(false)) => None,
        Some(CodeCacheFile::Dir(dir)) => Some(base.join(dir)),
    };
    let book = match plugin_state.unwrap_or("durable") {
        "durable" => Some(data.to_path_buf()),
        "memory" => None,
        other => return Err(format!("host.plugin-state: `{other}` is not a store; use \"durable\" or \"memory\"")),
    };
    let listen_text = serve.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text
        .parse()
        .map_err(|_| format!("serve.listen: `{listen_text}` is not an address like \"127.0.0.1:7700\""))?;
    let debounce = serve.debounce.map_or(Duration::from_millis(100), |s| s.0);
    if debounce > Duration::from_secs(60) {
        return Err(format!("serve.debounce ({}) must be at most 60s", Span(debounce)));
    }
    Ok(PluginSettings { code_cache, book, listen, debounce })
}
