//! What the operator has let each plugin do: the capabilities of the version
//! last accepted, and the versions approved by hand.
//!
//! Two files in `host.data`, so that a restart is not a way around a hold:
//! - `plugins-accepted.json`, written by the host when a version goes live:
//!   the capabilities a next version is compared with;
//! - `plugin-approvals.json`, written by `paddock plugins approve`: versions
//!   allowed to ask for more. The serving host watches it.
//!
//! Each file has one writer (the host, the CLI), and each write goes to a
//! temporary file renamed into place, so a reader never sees half a file.

use paddock_core::Capabilities;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file of accepted versions, in `host.data`.
pub const ACCEPTED_FILE: &str = "plugins-accepted.json";
/// The file of approved versions, in `host.data`.
pub const APPROVALS_FILE: &str = "plugin-approvals.json";

/// The version of a plugin that went live last, and what it asks for.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accepted {
    /// Its version id.
    pub version: String,
    /// What its manifest asks for.
    pub capabilities: Capabilities,
}

/// A version the operator approved.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Approval {
    /// The plugin.
    pub name: String,
    /// The version id approved.
    pub version: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Accepted capabilities and approvals, kept in `host.data` or in memory.
#[derive(Debug, Default)]
pub struct Book {
    dir: Option<PathBuf>,
    accepted: Mutex<BTreeMap<String, Accepted>>,
    approvals: Mutex<Vec<Approval>>,
}

impl Book {
    /// A book kept only in memory.
    pub fn memory() -> Book {
        Book::default()
    }

    /// The book kept in `dir`; missing files are empty.
    pub fn open(dir: &Path) -> Result<Book, String> {
        let book = Book { dir: Some(dir.to_path_buf()), ..Book::default() };
        *book.accepted.lock() = read_json(&dir.join(ACCEPTED_FILE))?.unwrap_or_default();
        *book.approvals.lock() = read_json(&dir.join(APPROVALS_FILE))?.unwrap_or_default();
        Ok(book)
    }

    /// The file of approvals, when the book is kept on disk.
    pub fn approvals_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(APPROVALS_FILE))
    }

    /// What was accepted last for `name`.
    pub fn accepted(&self, name: &str) -> Option<Accepted> {
        self.accepted.lock().get(name).cloned()
    }

    /// Records that `accepted` went live for `name` (written through when on disk).
    pub fn accept(&self, name: &str, accepted: Accepted) -> Result<(), String> {
        let snapshot = {
            let mut map = self.accepted.lock();
            if map.get(name) == Some(&accepted) {
                return Ok(());
            }
            map.insert(name.to_string(), accepted);
            map.clone()
        };
        match &self.dir {
            Some(dir) => write_json(&dir.join(ACCEPTED_FILE), &snapshot),
            None => Ok(()),
        }
    }

    /// Whether `version` of `name` was approved.
    pub fn approved(&self, name: &str, version: &str) -> bool {
        self.approvals.lock().iter().any(|a| a.name == name && a.version == version)
    }

    /// Approves `version` of `name` in this process (the CLI writes the file with [`approve`]).
    pub fn approve_here(&self, name: &str, version: &str) {
        let mut approvals = self.approvals.lock();
        if !approvals.iter().any(|a| a.name == name && a.version == version) {
            approvals.push(Approval { name: name.into(), version: version.into(), at: now() });
        }
    }

    /// Reads the approvals file again (after `paddock plugins approve`).
    pub fn reload_approvals(&self) -> Result<(), String> {
        if let Some(file) = self.approvals_file() {
            let read: Vec<Approval> = read_json(&file)?.unwrap_or_default();
            let mut approvals = self.approvals.lock();
            for a in read {
                if !approvals.contains(&a) {
                    approvals.push(a);
                }
            }
        }
        Ok(())
    }
}

/// Adds an approval of `version` of `name` to the approvals file in `dir`.
/// Returns false when it was approved already.
pub fn approve(dir: &Path, name: &str, version: &str) -> Result<bool, String> {
    let file = dir.join(APPROVALS_FILE);
    let mut approvals: Vec<Approval> = read_json(&file)?.unwrap_or_default();
    if approvals.iter().any(|a| a.name == name && a.version == version) {
        return Ok(false);
    }
    approvals.push(Approval { name: name.into(), version: version.into(), at: now() });
    write_json(&file, &approvals)?;
    Ok(true)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<Option<T>, String> {
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", file.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: cannot read: {e}", file.display())),
    }
}

fn write_json<T: serde::Serialize>(file: &Path, value: &T) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("{}: cannot write: {e}", file.display());
    let text = serde_json::to_vec_pretty(value).map_err(|e| format!("{}: {e}", file.display()))?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let temp = file.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&temp, text).map_err(fail)?;
    std::fs::rename(&temp, file).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_versions_and_approvals_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let book = Book::open(dir.path()).unwrap();
        let accepted = Accepted { version: "1.0.0+abc".into(), capabilities: Capabilities::default() };
        book.accept("x", accepted.clone()).unwrap();
        assert!(approve(dir.path(), "x", "1.1.0+def").unwrap());
        assert!(!approve(dir.path(), "x", "1.1.0+def").unwrap(), "approving twice is a no-op");
        assert!(!book.approved("x", "1.1.0+def"), "the host sees approvals when it reads the file again");
        book.reload_approvals().unwrap();
        assert!(book.approved("x", "1.1.0+def"));
        let again = Book::open(dir.path()).unwrap();
        assert_eq!(again.accepted("x"), Some(accepted));
        assert!(again.approved("x", "1.1.0+def") && !again.approved("x", "1.0.0+abc"));
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(APPROVALS_FILE), "{").unwrap();
        let err = Book::open(dir.path()).unwrap_err();
        assert!(err.starts_with(&format!("{}:", dir.path().join(APPROVALS_FILE).display())), "{err}");
    }
}
