//! Settings of loading and reloading plugins: the compiled-code cache and
//! where accepted capabilities and approvals are kept.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How plugins are loaded, reloaded and served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSettings {
    /// Where compiled code is kept; `None` compiles every time.
    pub code_cache: Option<PathBuf>,
    /// Where accepted capabilities and approvals are kept; `None` keeps them in memory.
    pub book: Option<PathBuf>,
    /// Folders besides each plugin's own where a manifest's `component`
    /// may be (`host.component-dirs`, symlinks resolved); `None`: the
    /// plugins folder's `target`, a Cargo workspace's build output.
    pub component_dirs: Option<Vec<PathBuf>>,
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

/// Validates the plugin settings; `data` is `host.data`, resolved.
pub(super) fn plugin_settings(
    host: &crate::file::HostSection,
    data: &Path,
    base: &Path,
) -> Result<PluginSettings, String> {
    let code_cache = match &host.code_cache {
        None | Some(CodeCacheFile::On(true)) => Some(data.join("code")),
        Some(CodeCacheFile::On(false)) => None,
        Some(CodeCacheFile::Dir(dir)) => Some(base.join(dir)),
    };
    let component_dirs = host.component_dirs.as_ref().map(|dirs| dirs.iter().map(|d| base.join(d)).collect());
    let book = match host.plugin_state.as_deref().unwrap_or("durable") {
        "durable" => Some(data.to_path_buf()),
        "memory" => None,
        other => return Err(format!("host.plugin-state: `{other}` is not a store; use \"durable\" or \"memory\"")),
    };
    Ok(PluginSettings { code_cache, book, component_dirs })
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
        let off = parse("[host]\ncode-cache = false\nplugin-state = \"memory\"\n").unwrap();
        assert_eq!((off.plugins.code_cache, off.plugins.book), (None, None));
        let dir = parse("[host]\ncode-cache = \"/var/cache/paddock\"\n").unwrap();
        assert_eq!(dir.plugins.code_cache.as_deref(), Some(Path::new("/var/cache/paddock")));
    }

    #[test]
    fn component_dirs_are_resolved_against_the_configuration_file() {
        assert_eq!(parse("").unwrap().plugins.component_dirs, None);
        let s = parse("[host]\ncomponent-dirs = [\"build\", \"/opt/wasm\"]\n").unwrap();
        let dirs = s.plugins.component_dirs.unwrap();
        assert_eq!(dirs, [Path::new("conf/build"), Path::new("/opt/wasm")]);
    }

    #[test]
    fn an_unknown_plugin_state_is_refused() {
        let err = parse("[host]\nplugin-state = \"disk\"\n").unwrap_err();
        assert!(err.ends_with("host.plugin-state: `disk` is not a store; use \"durable\" or \"memory\""), "{err}");
    }
}
