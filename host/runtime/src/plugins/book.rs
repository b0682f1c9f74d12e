//! What the operator has let each plugin do: the capabilities of the version
//! last accepted, and the versions approved by hand.
//!
//! Kept where `host.plugin-state` says, so that a restart is not a way
//! around a hold:
//! - in two files of `host.data`: `plugins-accepted.json`, written by the
//!   host when a version goes live (the capabilities a next version is
//!   compared with), and `plugin-approvals.json`, written by `paddock plugins
//!   approve`: versions allowed to ask for more. The serving host watches it.
//!   Each file has one writer (the host, the CLI), and each write goes to a
//!   temporary file renamed into place, so a reader never sees half a file;
//! - or in the PostgreSQL database of `[store]`, where every host reads
//!   both: a version approved through any host or folder is approved on all
//!   of them, each woken by a notification (`paddock_plugins`).

use paddock_config::BookStore;
use paddock_core::Capabilities;
use paddock_postgres::{Migration, Postgres};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file of accepted versions, in `host.data`.
pub const ACCEPTED_FILE: &str = "plugins-accepted.json";
/// The file of approved versions, in `host.data`.
pub const APPROVALS_FILE: &str = "plugin-approvals.json";
/// The channel a new approval is told on, to every host.
const CHANNEL: &str = "paddock_plugins";

static MIGRATIONS: &[Migration] = &[Migration {
    name: "accepted capabilities and approved versions",
    sql: "
        CREATE TABLE plugin_accepted (name text PRIMARY KEY, data text NOT NULL);
        CREATE TABLE plugin_approvals (name text NOT NULL, version text NOT NULL, at text NOT NULL,
                                       PRIMARY KEY (name, version));
    ",
}];

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

/// Where a book is kept.
#[derive(Debug, Default)]
enum Keep {
    #[default]
    Memory,
    Folder(PathBuf),
    Database(Postgres),
}

/// Accepted capabilities and approvals, kept in `host.data`, in the
/// database, or in memory.
#[derive(Debug, Default)]
pub struct Book {
    keep: Keep,
    accepted: Mutex<BTreeMap<String, Accepted>>,
    approvals: Mutex<Vec<Approval>>,
}

impl Book {
    /// A book kept only in memory.
    pub fn memory() -> Book {
        Book::default()
    }

    /// The book kept where `at` says; missing files are empty.
    pub fn open_at(at: &BookStore) -> Result<Book, String> {
        match at {
            BookStore::Memory => Ok(Book::memory()),
            BookStore::Folder(dir) => Book::open(dir),
            BookStore::Postgres(settings) => {
                let pg = Postgres::shared(settings)?;
                pg.migrate("plugins", MIGRATIONS)?;
                let book = Book { keep: Keep::Database(pg.clone()), ..Book::default() };
                let rows = pg.run(|c| async move {
                    let rows = c.query("SELECT name, data FROM plugin_accepted", &[]).await.map_err(|e| db(&e))?;
                    Ok(rows.iter().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>())
                })?;
                let mut accepted = BTreeMap::new();
                for (name, data) in rows {
                    let value = serde_json::from_str(&data).map_err(|e| format!("plugin_accepted {name:?}: {e}"))?;
                    accepted.insert(name, value);
                }
                *book.accepted.lock() = accepted;
                book.reload_approvals()?;
                Ok(book)
            }
        }
    }

    /// The book kept in `dir`; missing files are empty.
    pub fn open(dir: &Path) -> Result<Book, String> {
        let book = Book { keep: Keep::Folder(dir.to_path_buf()), ..Book::default() };
        *book.accepted.lock() = read_json(&dir.join(ACCEPTED_FILE))?.unwrap_or_default();
        *book.approvals.lock() = read_json(&dir.join(APPROVALS_FILE))?.unwrap_or_default();
        Ok(book)
    }

    /// The file of approvals, when the book is kept on disk.
    pub fn approvals_file(&self) -> Option<PathBuf> {
        match &self.keep {
            Keep::Folder(dir) => Some(dir.join(APPROVALS_FILE)),
            _ => None,
        }
    }

    /// Calls `changed` whenever an approval may have been given elsewhere
    /// (a book in the database: another host or folder approved a version).
    pub fn on_approval(&self, changed: impl Fn() + Send + Sync + 'static) {
        if let Keep::Database(pg) = &self.keep {
            pg.listen(CHANNEL, move |_| changed());
        }
    }

    /// What was accepted last for `name`.
    pub fn accepted(&self, name: &str) -> Option<Accepted> {
        self.accepted.lock().get(name).cloned()
    }

    /// Records that `accepted` went live for `name` (written through when kept).
    pub fn accept(&self, name: &str, accepted: Accepted) -> Result<(), String> {
        let snapshot = {
            let mut map = self.accepted.lock();
            if map.get(name) == Some(&accepted) {
                return Ok(());
            }
            map.insert(name.to_string(), accepted.clone());
            map.clone()
        };
        match &self.keep {
            Keep::Memory => Ok(()),
            Keep::Folder(dir) => write_json(&dir.join(ACCEPTED_FILE), &snapshot),
            Keep::Database(pg) => {
                let (name, data) = (name.to_string(), serde_json::to_string(&accepted).map_err(|e| e.to_string())?);
                pg.run(move |c| async move {
                    c.execute(
                        "INSERT INTO plugin_accepted (name, data) VALUES ($1, $2)
                         ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data",
                        &[&name, &data],
                    )
                    .await
                    .map_err(|e| db(&e))
                    .map(drop)
                })
            }
        }
    }

    /// Whether `version` of `name` was approved.
    pub fn approved(&self, name: &str, version: &str) -> bool {
        self.approvals.lock().iter().any(|a| a.name == name && a.version == version)
    }

    /// Approves `version` of `name` in this process (the CLI records it with [`approve`]).
    pub fn approve_here(&self, name: &str, version: &str) {
        let mut approvals = self.approvals.lock();
        if !approvals.iter().any(|a| a.name == name && a.version == version) {
            approvals.push(Approval { name: name.into(), version: version.into(), at: now() });
        }
    }

    /// Reads the approvals again (after `paddock plugins approve`, here or
    /// on another host).
    pub fn reload_approvals(&self) -> Result<(), String> {
        let read: Vec<Approval> = match &self.keep {
            Keep::Memory => return Ok(()),
            Keep::Folder(dir) => read_json(&dir.join(APPROVALS_FILE))?.unwrap_or_default(),
            Keep::Database(pg) => pg.run(|c| async move {
                let rows = c
                    .query("SELECT name, version, at FROM plugin_approvals ORDER BY at, name, version", &[])
                    .await
                    .map_err(|e| db(&e))?;
                Ok(rows.iter().map(|r| Approval { name: r.get(0), version: r.get(1), at: r.get(2) }).collect())
            })?,
        };
        let mut approvals = self.approvals.lock();
        for a in read {
            if !approvals.iter().any(|b| b.name == a.name && b.version == a.version) {
                approvals.push(a);
            }
        }
        Ok(())
    }
}

/// Records an approval of `version` of `name` where `at` keeps the book,
/// for every process reading it; `Ok(None)` when it is kept in memory
/// (nowhere beyond this process), `Ok(Some(false))` when it was approved already.
pub fn approve_at(at: &BookStore, name: &str, version: &str) -> Result<Option<bool>, String> {
    match at {
        BookStore::Memory => Ok(None),
        BookStore::Folder(dir) => approve(dir, name, version).map(Some),
        BookStore::Postgres(settings) => {
            let pg = Postgres::shared(settings)?;
            pg.migrate("plugins", MIGRATIONS)?;
            let (name, version, at) = (name.to_string(), version.to_string(), now());
            pg.run(move |mut c| async move {
                let tx = c.transaction().await.map_err(|e| db(&e))?;
                let added = tx
                    .execute(
                        "INSERT INTO plugin_approvals (name, version, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                        &[&name, &version, &at],
                    )
                    .await
                    .map_err(|e| db(&e))?;
                tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("{name} {version}")])
                    .await
                    .map_err(|e| db(&e))?;
                tx.commit().await.map_err(|e| db(&e))?;
                Ok(Some(added == 1))
            })
        }
    }
}

fn db(e: &paddock_postgres::tokio_postgres::Error) -> String {
    format!("plugin state: {}", paddock_postgres::describe(e))
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
    fn accepted_versions_and_approvals_in_the_database_are_every_hosts() {
        let Some(url) = paddock_postgres::testing::database_url("plugin_book") else { return };
        let at = BookStore::Postgres(paddock_postgres::Settings::new(&url));
        let host_a = Book::open_at(&at).unwrap();
        let accepted = Accepted { version: "1.0.0+abc".into(), capabilities: Capabilities::default() };
        host_a.accept("x", accepted.clone()).unwrap();
        let (tx, told) = std::sync::mpsc::channel();
        let tx = Mutex::new(tx);
        host_a.on_approval(move || {
            let _ = tx.lock().send(());
        });
        let host_b = Book::open_at(&at).unwrap();
        assert_eq!(host_b.accepted("x"), Some(accepted), "what one host accepted, another compares with");
        // Host A's listening connection opens on its own time: approved (by the CLI of a third folder) until it hears.
        let mut heard = false;
        for version in 0..50 {
            assert_eq!(approve_at(&at, "x", &format!("1.{version}.0+def")).unwrap(), Some(true));
            if told.recv_timeout(std::time::Duration::from_millis(200)).is_ok() {
                heard = true;
                break;
            }
        }
        assert!(heard, "host A is told of an approval given elsewhere");
        assert_eq!(approve_at(&at, "x", "1.0.0+def").unwrap(), Some(false), "approving twice is a no-op");
        assert!(!host_b.approved("x", "1.0.0+def"), "a host sees approvals when it reads them again");
        host_b.reload_approvals().unwrap();
        assert!(host_b.approved("x", "1.0.0+def") && !host_b.approved("x", "9.9.9+zzz"));
        assert_eq!(approve_at(&BookStore::Memory, "x", "1.0.0+def").unwrap(), None, "kept nowhere");
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(APPROVALS_FILE), "{").unwrap();
        let err = Book::open(dir.path()).unwrap_err();
        assert!(err.starts_with(&format!("{}:", dir.path().join(APPROVALS_FILE).display())), "{err}");
    }
}
