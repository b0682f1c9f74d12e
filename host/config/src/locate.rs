//! Which configuration a command uses when `--config` names none: the
//! nearest `paddock.toml` in the current folder or above it, else the
//! embedded defaults, whose files go to a per-user data folder.
//!
//! Walking up is what makes a command run inside an agent's folder (or any
//! folder below the operator's) use the operator's files; and with no file
//! anywhere, the data folder is never `.paddock` in whatever folder the
//! command happened to run from, so no agent's folder grows a ledger or a
//! record of accepted capabilities of its own.

use crate::DEFAULT_FILE;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The variable naming the data folder of a host with no configuration file.
pub const DATA_DIR_VAR: &str = "PADDOCK_DATA_DIR";

/// The nearest `paddock.toml` in `start` or a folder above it, up to the
/// root: as `paddock.toml` when it is `start`'s own (so messages read as
/// they always did), else its path through `start`.
pub fn nearest_file(start: &Path) -> Option<PathBuf> {
    if start.join(DEFAULT_FILE).is_file() {
        return Some(PathBuf::from(DEFAULT_FILE));
    }
    start.ancestors().skip(1).map(|dir| dir.join(DEFAULT_FILE)).find(|file| file.is_file())
}

/// The data folder of a host with no configuration file, from the
/// environment `var` reads: `$PADDOCK_DATA_DIR`, else
/// `$XDG_DATA_HOME/paddock`, else `$HOME/.local/share/paddock` (the XDG
/// base directory rules: an empty variable is unset, a relative
/// `XDG_DATA_HOME` is ignored); `None` with none of them.
pub fn user_data_dir(var: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set(DATA_DIR_VAR) {
        return Some(dir);
    }
    if let Some(xdg) = set("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("paddock"));
    }
    set("HOME").map(|home| home.join(".local/share/paddock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn the_nearest_file_up_from_the_folder_wins() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(nearest_file(&deep), None);
        std::fs::write(dir.path().join(DEFAULT_FILE), "").unwrap();
        assert_eq!(nearest_file(&deep), Some(dir.path().join(DEFAULT_FILE)));
        std::fs::write(dir.path().join("a").join(DEFAULT_FILE), "").unwrap();
        assert_eq!(nearest_file(&deep), Some(dir.path().join("a").join(DEFAULT_FILE)));
        std::fs::write(deep.join(DEFAULT_FILE), "").unwrap();
        assert_eq!(nearest_file(&deep), Some(PathBuf::from(DEFAULT_FILE)));
        // A folder by that name is no configuration.
        std::fs::create_dir_all(dir.path().join("x").join(DEFAULT_FILE)).unwrap();
        assert_eq!(nearest_file(&dir.path().join("x")), Some(dir.path().join(DEFAULT_FILE)));
    }

    #[test]
    fn the_user_data_folder_follows_paddock_then_xdg_then_home() {
        let all = [("PADDOCK_DATA_DIR", "/p"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(user_data_dir(env(&all)), Some(PathBuf::from("/p")));
        assert_eq!(user_data_dir(env(&all[1..])), Some(PathBuf::from("/x/paddock")));
        assert_eq!(user_data_dir(env(&all[2..])), Some(PathBuf::from("/h/.local/share/paddock")));
        let unset = [("PADDOCK_DATA_DIR", ""), ("XDG_DATA_HOME", "relative"), ("HOME", "/h")];
        assert_eq!(user_data_dir(env(&unset)), Some(PathBuf::from("/h/.local/share/paddock")));
        assert_eq!(user_data_dir(env(&[])), None);
    }
}
