//! Settings of loading and reloading plugins: the compiled-code cache, where
//! accepted capabilities and approvals are kept, and `paddock serve`.

use paddock_core::Span;
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
    /// The folder of flow specs `paddock serve` starts by name.
    pub flows: PathBuf,
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
    flows: Option<PathBuf>,
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
    check_listen(&listen).map_err(|why| format!("serve.listen: {why}"))?;
    let debounce = serve.debounce.map_or(Duration::from_millis(100), |s| s.0);
    if debounce > Duration::from_secs(60) {
        return Err(format!("serve.debounce ({}) must be at most 60s", Span(debounce)));
    }
    let flows = base.join(serve.flows.unwrap_or_else(|| PathBuf::from("flows")));
    Ok(PluginSettings { code_cache, book, listen, debounce, flows })
}

/// A listen address other hosts can reach, refused by [`check_listen`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is not a loopback address; the HTTP API has no authentication of its own, so listen on 127.0.0.1 or ::1 behind a proxy that authenticates callers"
)]
pub struct NotLoopback {
    /// The address refused.
    pub address: SocketAddr,
}

/// Refuses an address other hosts can reach: the HTTP API has no
/// authentication of its own, so anyone who reaches it may run any agent for
/// any tenant.
pub fn check_listen(address: &SocketAddr) -> Result<(), NotLoopback> {
    if address.ip().is_loopback() {
        return Ok(());
    }
    Err(NotLoopback { address: *address })
}

#[cfg(test)]
mod tests {
    use crate::Settings;
    use std::path::Path;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("conf/paddock.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_code_cache_and_plugin_state_live_in_host_data_by_default() {
        let s = parse("[host]\ndata = \"state\"\n").unwrap();
        assert_eq!(s.plugins.code_cache.as_deref(), Some(Path::new("conf/state/code")));
        assert_eq!(s.plugins.book.as_deref(), Some(Path::new("conf/state")));
        assert_eq!(s.plugins.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(s.plugins.flows, Path::new("conf/flows"));
        let off = parse("[host]\ncode-cache = false\nplugin-state = \"memory\"\n").unwrap();
        assert_eq!((off.plugins.code_cache, off.plugins.book), (None, None));
        let dir = parse("[host]\ncode-cache = \"/var/cache/paddock\"\n").unwrap();
        assert_eq!(dir.plugins.code_cache.as_deref(), Some(Path::new("/var/cache/paddock")));
    }

    #[test]
    fn a_listen_address_other_hosts_can_reach_is_refused() {
        let err = parse("[serve]\nlisten = \"0.0.0.0:7700\"\n").unwrap_err();
        assert_eq!(
            err,
            "conf/paddock.toml: serve.listen: 0.0.0.0:7700 is not a loopback address; the HTTP API has no authentication of its own, so listen on 127.0.0.1 or ::1 behind a proxy that authenticates callers"
        );
        assert!(parse("[serve]\nlisten = \"[::1]:0\"\n").is_ok());
        let err = parse("[host]\nplugin-state = \"disk\"\n").unwrap_err();
        assert!(err.ends_with("host.plugin-state: `disk` is not a store; use \"durable\" or \"memory\""), "{err}");
    }
}
