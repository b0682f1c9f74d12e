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
    /// How `paddock serve` authenticates callers.
    pub auth: ServeAuth,
    /// How long file changes settle before a reload.
    pub debounce: Duration,
    /// The folder of flow specs `paddock serve` starts by name.
    pub flows: PathBuf,
}

/// How `paddock serve` knows who calls (`serve.auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServeAuth {
    /// Every request carries an API key (`paddock keys create`); the tenant
    /// and role come from it.
    #[default]
    Keys,
    /// No authentication, for development: loopback addresses only, the
    /// `x-paddock-tenant` header picks the tenant, every caller is an admin.
    None,
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
    auth: Option<String>,
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
    let auth = match serve.auth.as_deref().unwrap_or("keys") {
        "keys" => ServeAuth::Keys,
        "none" => ServeAuth::None,
        other => return Err(format!("serve.auth: `{other}` is not a mode; use \"keys\" or \"none\"")),
    };
    check_listen(&listen, auth).map_err(|why| format!("serve.listen: {why}"))?;
    let debounce = serve.debounce.map_or(Duration::from_millis(100), |s| s.0);
    if debounce > Duration::from_secs(60) {
        return Err(format!("serve.debounce ({}) must be at most 60s", Span(debounce)));
    }
    let flows = base.join(serve.flows.unwrap_or_else(|| PathBuf::from("flows")));
    Ok(PluginSettings { code_cache, book, listen, auth, debounce, flows })
}

/// A listen address other hosts can reach, refused by [`check_listen`]
/// without authentication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is not a loopback address, and serve.auth = \"none\" lets anyone who reaches it act as any tenant; listen on 127.0.0.1 or ::1, or use API keys (serve.auth = \"keys\", the default)"
)]
pub struct NotLoopback {
    /// The address refused.
    pub address: SocketAddr,
}

/// With API keys any address will do; without them (`auth` = none), only a
/// loopback one: anyone who reaches it may run any agent for any tenant.
pub fn check_listen(address: &SocketAddr, auth: ServeAuth) -> Result<(), NotLoopback> {
    if auth == ServeAuth::Keys || address.ip().is_loopback() {
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
    fn without_keys_a_listen_address_other_hosts_can_reach_is_refused() {
        let err = parse("[serve]\nlisten = \"0.0.0.0:7700\"\nauth = \"none\"\n").unwrap_err();
        assert_eq!(
            err,
            "conf/paddock.toml: serve.listen: 0.0.0.0:7700 is not a loopback address, and serve.auth = \"none\" lets anyone who reaches it act as any tenant; listen on 127.0.0.1 or ::1, or use API keys (serve.auth = \"keys\", the default)"
        );
        assert!(parse("[serve]\nlisten = \"[::1]:0\"\nauth = \"none\"\n").is_ok());
        let keyed = parse("[serve]\nlisten = \"0.0.0.0:7700\"\n").unwrap();
        assert_eq!(
            (keyed.plugins.listen.to_string(), keyed.plugins.auth),
            ("0.0.0.0:7700".into(), super::ServeAuth::Keys)
        );
        let err = parse("[serve]\nauth = \"basic\"\n").unwrap_err();
        assert!(err.ends_with("serve.auth: `basic` is not a mode; use \"keys\" or \"none\""), "{err}");
        let err = parse("[host]\nplugin-state = \"disk\"\n").unwrap_err();
        assert!(err.ends_with("host.plugin-state: `disk` is not a store; use \"durable\" or \"memory\""), "{err}");
    }
}
