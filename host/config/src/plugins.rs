//! Settings of loading and reloading plugins: the compiled-code cache and
//! where accepted capabilities and approvals are kept.

use crate::stores::{Place, place};
use paddock_postgres::Settings as PostgresSettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// How plugins are loaded, reloaded and served.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSettings {
    /// Where compiled code is kept; `None` compiles every time.
    pub code_cache: Option<PathBuf>,
    /// Where accepted capabilities and approvals are kept.
    pub book: BookStore,
    /// Folders besides each plugin's own where a manifest's `component`
    /// may be (`host.component-dirs`, symlinks resolved); `None`: the
    /// plugins folder's `target`, a Cargo workspace's build output.
    pub component_dirs: Option<Vec<PathBuf>>,
}

/// Where the capabilities accepted for each plugin and the versions
/// approved by hand are kept (`host.plugin-state`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookStore {
    /// In memory: a restart forgets them.
    Memory,
    /// In two files of this folder (`host.data`), which the serving host
    /// and the CLI share.
    Folder(PathBuf),
    /// In the PostgreSQL database of `[store]`, shared by every host on it.
    Postgres(PostgresSettings),
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
    postgres: &Option<PostgresSettings>,
) -> Result<PluginSettings, String> {
    let code_cache = match &host.code_cache {
        None | Some(CodeCacheFile::On(true)) => Some(data.join("code")),
        Some(CodeCacheFile::On(false)) => None,
        Some(CodeCacheFile::Dir(dir)) => Some(base.join(dir)),
    };
    let component_dirs = host.component_dirs.as_ref().map(|dirs| dirs.iter().map(|d| base.join(d)).collect());
    let keeps = "what each host may load in PostgreSQL, where every host reads it";
    let book = match place("host.plugin-state", host.plugin_state.as_deref(), postgres, keeps)? {
        Place::Memory => BookStore::Memory,
        Place::File => BookStore::Folder(data.to_path_buf()),
        Place::Database(pg) => BookStore::Postgres(pg),
    };
    Ok(PluginSettings { code_cache, book, component_dirs })
}

#[cfg(test)]
mod tests {
    use super::BookStore;
    use crate::Settings;
    use std::path::Path;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("conf/paddock.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_code_cache_and_plugin_state_live_in_host_data_by_default() {
        let s = parse("[host]\ndata = \"state\"\n").unwrap();
        assert_eq!(s.plugins.code_cache.as_deref(), Some(Path::new("conf/state/code")));
        assert_eq!(s.plugins.book, BookStore::Folder("conf/state".into()));
        let off = parse("[host]\ncode-cache = false\nplugin-state = \"memory\"\n").unwrap();
        assert_eq!((off.plugins.code_cache, off.plugins.book), (None, BookStore::Memory));
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
    fn with_a_database_plugin_state_lives_in_it_unless_kept_in_memory() {
        let pg = "[store]\nbackend = \"postgres\"\nurl = \"postgres://app@db:5432/paddock\"\n";
        assert!(matches!(parse(pg).unwrap().plugins.book, BookStore::Postgres(_)));
        let memory = parse(&format!("[host]\nplugin-state = \"memory\"\n{pg}")).unwrap();
        assert_eq!(memory.plugins.book, BookStore::Memory);
        let err = parse(&format!("[host]\nplugin-state = \"durable\"\n{pg}")).unwrap_err();
        let why = "host.plugin-state: \"durable\" is a file of this host's, and [store] backend is \"postgres\": \
                   leave host.plugin-state out to keep what each host may load in PostgreSQL, where every host reads it";
        assert!(err.ends_with(why), "{err}");
    }

    #[test]
    fn an_unknown_plugin_state_is_refused() {
        let err = parse("[host]\nplugin-state = \"disk\"\n").unwrap_err();
        assert!(
            err.ends_with("host.plugin-state: `disk` is not a store; use \"durable\", \"memory\" or \"postgres\""),
            "{err}"
        );
    }
}
