//! The versions flow runs are pinned to, kept by content so that a run
//! resumes on the version it started with — after a restart, or on another
//! host — even when the plugins folder has moved on or never had it.
//!
//! Each kept version is a folder `<host.data>/versions/<name>/<version>/`
//! with its manifest (`agent.toml`: its `component` pointing beside it, its
//! `[build]` dropped) and `component.wasm`; the manifest's modification time
//! says when a run last pinned it. With the plugin state in PostgreSQL
//! (`host.plugin-state` unset under `[store] backend = "postgres"`) the
//! database keeps every version too: `plugin_versions` (name, version →
//! component hash, manifest, when last pinned) and `plugin_components` (hash →
//! bytes, each component stored once), and a host that lacks a version writes
//! it into its own folder from there. With the plugin state in memory nothing
//! is kept, and a run resumes only on the version its plugins folder serves.

use super::cache::ContentHash;
use super::load::read_component;
use super::manifest::Manifest;
use paddock_config::BookStore;
use paddock_postgres::{Migration, Postgres, describe};
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The folder of kept versions, in `host.data`.
pub const VERSIONS_DIR: &str = "versions";
/// The component file of a kept version: a binary, or text (`.wat`) as the plugin's was.
const COMPONENTS: [&str; 2] = ["component.wasm", "component.wat"];
/// The manifest of a kept version.
const MANIFEST: &str = "agent.toml";
/// A version pinned again within this long is not written again.
const TOUCH_EVERY: Duration = Duration::from_secs(3600);

static MIGRATIONS: &[Migration] = &[Migration {
    name: "pinned versions and their components",
    sql: "
        CREATE TABLE plugin_components (hash text PRIMARY KEY, bytes bytea NOT NULL);
        CREATE TABLE plugin_versions (name text NOT NULL, version text NOT NULL,
                                      hash text NOT NULL REFERENCES plugin_components (hash),
                                      manifest text NOT NULL, pinned_ms bigint NOT NULL,
                                      PRIMARY KEY (name, version));
        CREATE INDEX plugin_versions_hash ON plugin_versions (hash);
    ",
}];

/// Kept versions: in a folder, also in the database, or nowhere.
pub struct Versions {
    dir: Option<PathBuf>,
    db: Option<Postgres>,
    /// When this process last kept each (name, version).
    kept: Mutex<HashMap<(String, String), Instant>>,
}

/// A version of an agent to keep: its id, its manifest and the hash its
/// component had when it loaded.
pub struct ToKeep<'a> {
    /// The agent.
    pub name: &'a str,
    /// Its version id.
    pub version: &'a str,
    /// Its manifest as loaded.
    pub manifest: &'a Manifest,
    /// Its component's hash as loaded.
    pub hash: &'a ContentHash,
}

impl Versions {
    /// Versions kept nowhere.
    pub fn none() -> Versions {
        Versions { dir: None, db: None, kept: Mutex::default() }
    }

    /// Versions kept where the plugin state `at` is, in `data`'s folder.
    pub fn open_at(at: &BookStore, data: &Path) -> Result<Versions, String> {
        let (dir, db) = match at {
            BookStore::Memory => return Ok(Versions::none()),
            BookStore::Folder(dir) => (dir.join(VERSIONS_DIR), None),
            BookStore::Postgres(settings) => {
                let pg = Postgres::shared(settings)?;
                pg.migrate("plugin-versions", MIGRATIONS)?;
                (data.join(VERSIONS_DIR), Some(pg))
            }
        };
        Ok(Versions { dir: Some(dir), db, kept: Mutex::default() })
    }

    /// Whether versions are kept at all.
    pub fn keeps(&self) -> bool {
        self.dir.is_some()
    }

    /// Keeps `version` (once an hour at most, it only says it was pinned
    /// again). Its files are read again and must be what loaded: a file
    /// changed since (a reload to come) is not kept, and says so.
    pub fn keep(&self, v: &ToKeep<'_>) -> Result<(), String> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let id = (v.name.to_string(), v.version.to_string());
        if self.kept.lock().get(&id).is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
            return Ok(());
        }
        let folder = version_folder(dir, v.name, v.version)?;
        if folder.join(MANIFEST).is_file() {
            touch(&folder.join(MANIFEST))?;
        } else {
            let (manifest, file, bytes) = read_as_loaded(v)?;
            write_folder(&folder, &manifest, file, &bytes)?;
        }
        if let Some(pg) = &self.db {
            let manifest =
                std::fs::read_to_string(folder.join(MANIFEST)).map_err(|e| format!("{}: {e}", folder.display()))?;
            let file = component_file(&manifest)?;
            store(pg, v, manifest, &folder.join(file))?;
        }
        self.kept.lock().insert(id, Instant::now());
        Ok(())
    }

    /// The manifest of kept `version` of `name`, written into this host's
    /// folder from the database when only the database has it; `None` when
    /// it is not kept.
    pub fn find(&self, name: &str, version: &str) -> Result<Option<PathBuf>, String> {
        let Some(dir) = &self.dir else { return Ok(None) };
        let folder = version_folder(dir, name, version)?;
        if folder.join(MANIFEST).is_file() {
            return Ok(Some(folder.join(MANIFEST)));
        }
        let Some(pg) = &self.db else { return Ok(None) };
        let (name, version) = (name.to_string(), version.to_string());
        let found = pg.run(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT v.manifest, v.hash, c.bytes FROM plugin_versions v JOIN plugin_components c USING (hash)
                     WHERE v.name = $1 AND v.version = $2",
                    &[&name, &version],
                )
                .await
                .map_err(|e| describe(&e))?;
            Ok(row.map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, Vec<u8>>(2))))
        })?;
        let Some((manifest, hash, bytes)) = found else { return Ok(None) };
        if ContentHash::of(&bytes).hex() != hash {
            return Err(format!("the database's copy of component {hash} does not hash to its name"));
        }
        write_folder(&folder, &manifest, component_file(&manifest)?, &bytes)?;
        Ok(Some(folder.join(MANIFEST)))
    }

    /// Forgets the versions last pinned before `before` that no run in
    /// `pinned` (name, version) still needs; how many.
    pub fn forget(&self, before: SystemTime, pinned: &HashSet<(String, String)>) -> Result<u64, String> {
        let Some(dir) = &self.dir else { return Ok(0) };
        let mut forgot = 0;
        for (name, version, folder) in kept_folders(dir)? {
            let stale = std::fs::metadata(folder.join(MANIFEST)).and_then(|m| m.modified()).is_ok_and(|at| at < before);
            if stale && !pinned.contains(&(name.clone(), version.clone())) {
                std::fs::remove_dir_all(&folder).map_err(|e| format!("{}: {e}", folder.display()))?;
                self.kept.lock().remove(&(name, version));
                forgot += 1;
            }
        }
        // The folder is this host's copy; the database's count is the fleet's.
        let Some(pg) = &self.db else { return Ok(forgot) };
        let before_ms = i64::try_from(before.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0);
        let (names, versions): (Vec<String>, Vec<String>) = pinned.iter().cloned().unzip();
        let gone = pg.run(move |c| async move {
            let gone = c
                .execute(
                    "DELETE FROM plugin_versions WHERE pinned_ms < $1 AND (name, version) NOT IN
                         (SELECT * FROM unnest($2::text[], $3::text[]))",
                    &[&before_ms, &names, &versions],
                )
                .await
                .map_err(|e| describe(&e))?;
            c.execute(
                "DELETE FROM plugin_components c WHERE NOT EXISTS (SELECT 1 FROM plugin_versions v WHERE v.hash = c.hash)",
                &[],
            )
            .await
            .map_err(|e| describe(&e))?;
            Ok(gone)
        })?;
        Ok(gone)
    }
}

/// `<dir>/<name>/<version>`, once both are names no path can escape with.
fn version_folder(dir: &Path, name: &str, version: &str) -> Result<PathBuf, String> {
    paddock_core::names::validate_agent(name).map_err(|why| format!("agent {name:?}: {why}"))?;
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '+' | '-');
    if version.is_empty() || version.len() > 128 || version.starts_with('.') || !version.chars().all(fits) {
        return Err(format!("version {version:?} of agent {name:?} is not a version id"));
    }
    Ok(dir.join(name).join(version))
}

/// Every kept version's (name, version, folder).
fn kept_folders(dir: &Path) -> Result<Vec<(String, String, PathBuf)>, String> {
    let list = |d: &Path| -> Result<Vec<(String, PathBuf)>, String> {
        match std::fs::read_dir(d) {
            Ok(entries) => Ok(entries
                .filter_map(Result::ok)
                .filter(|e| e.path().is_dir())
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(format!("{}: {e}", d.display())),
        }
    };
    let mut all = Vec::new();
    for (name, named) in list(dir)? {
        for (version, folder) in list(&named)? {
            all.push((name.clone(), version, folder));
        }
    }
    Ok(all)
}

/// Which of [`COMPONENTS`] a kept manifest names.
fn component_file(manifest: &str) -> Result<&'static str, String> {
    let table: toml::Table = toml::from_str(manifest).map_err(|e| format!("a kept manifest: {e}"))?;
    let named = table.get("component").and_then(toml::Value::as_str).unwrap_or("");
    COMPONENTS.into_iter().find(|c| *c == named).ok_or_else(|| format!("a kept manifest names component {named:?}"))
}

/// The manifest (pointing at the component beside it, without `[build]`),
/// the component's file name and its bytes, read again and checked to be
/// what loaded.
fn read_as_loaded(v: &ToKeep<'_>) -> Result<(String, &'static str, Vec<u8>), String> {
    let file = &v.manifest.file;
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let changed =
        || format!("{} changed since version {} loaded; it is kept once it serves", file.display(), v.version);
    if Manifest::parse(&text, file).map_err(|e| e.to_string())? != *v.manifest {
        return Err(changed());
    }
    let component = read_component(&v.manifest.component).map_err(|e| e.to_string())?;
    if component.hash != *v.hash {
        return Err(changed());
    }
    let name = match v.manifest.component.extension().is_some_and(|e| e == "wat") {
        true => COMPONENTS[1],
        false => COMPONENTS[0],
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    table.insert("component".into(), toml::Value::String(name.into()));
    table.remove("build");
    Ok((table.to_string(), name, component.bytes))
}

/// Writes a version's folder whole: into a new folder beside it, renamed
/// into place, so no reader sees half of one.
fn write_folder(folder: &Path, manifest: &str, component: &str, bytes: &[u8]) -> Result<(), String> {
    let parent = folder.parent().unwrap_or(folder);
    let fail = |e: std::io::Error| format!("{}: {e}", folder.display());
    std::fs::create_dir_all(parent).map_err(fail)?;
    let staged = tempfile::Builder::new().prefix(".keeping-").tempdir_in(parent).map_err(fail)?;
    std::fs::write(staged.path().join(component), bytes).map_err(fail)?;
    std::fs::write(staged.path().join(MANIFEST), manifest).map_err(fail)?;
    match std::fs::rename(staged.path(), folder) {
        Ok(()) => {
            let _ = staged.keep();
            Ok(())
        }
        // Another process kept it first: the same content, by its name.
        Err(_) if folder.join(MANIFEST).is_file() => Ok(()),
        Err(e) => Err(fail(e)),
    }
}

/// Marks a kept version as pinned now.
fn touch(file: &Path) -> Result<(), String> {
    std::fs::File::options()
        .write(true)
        .open(file)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// Keeps `v` in the database: its component once by hash (sent only when
/// the database lacks it), its row pinned now.
fn store(pg: &Postgres, v: &ToKeep<'_>, manifest: String, component: &Path) -> Result<(), String> {
    let (name, version, hash) = (v.name.to_string(), v.version.to_string(), v.hash.hex());
    let component = component.to_path_buf();
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(0);
    pg.run(move |c| async move {
        let fail = |e: paddock_postgres::tokio_postgres::Error| describe(&e);
        let has = c.query_opt("SELECT 1 FROM plugin_components WHERE hash = $1", &[&hash]).await.map_err(fail)?;
        if has.is_none() {
            let bytes = std::fs::read(&component).map_err(|e| format!("{}: {e}", component.display()))?;
            c.execute(
                "INSERT INTO plugin_components (hash, bytes) VALUES ($1, $2) ON CONFLICT (hash) DO NOTHING",
                &[&hash, &bytes],
            )
            .await
            .map_err(fail)?;
        }
        c.execute(
            "INSERT INTO plugin_versions (name, version, hash, manifest, pinned_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name, version) DO UPDATE SET pinned_ms = EXCLUDED.pinned_ms",
            &[&name, &version, &hash, &manifest, &now],
        )
        .await
        .map_err(fail)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The preamble of a component: enough for [`read_component`].
    const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    /// A plugin folder `hello` at 1.0.0 with a `[build]`, and its manifest as loaded.
    fn plugin(dir: &Path) -> (Manifest, ContentHash) {
        let folder = dir.join("plugins/hello");
        std::fs::create_dir_all(folder.join("target")).unwrap();
        std::fs::write(folder.join("target/hello.wasm"), COMPONENT).unwrap();
        let text = "name = \"hello\"\nversion = \"1.0.0\"\ncomponent = \"target/hello.wasm\"\n\
                    [build]\ncommand = \"cargo build\"\n[limits]\ntimeout = \"5s\"\n";
        std::fs::write(folder.join("agent.toml"), text).unwrap();
        (Manifest::load(&folder.join("agent.toml")).unwrap(), ContentHash::of(COMPONENT))
    }

    fn kept_in(dir: &Path) -> Versions {
        Versions::open_at(&BookStore::Folder(dir.join("data")), &dir.join("data")).unwrap()
    }

    #[test]
    fn a_kept_version_is_its_manifest_pointing_beside_it_without_its_build_and_its_component() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, hash) = plugin(dir.path());
        let versions = kept_in(dir.path());
        let v = ToKeep { name: "hello", version: "1.0.0+abc", manifest: &manifest, hash: &hash };
        versions.keep(&v).unwrap();
        // The plugin moves on; the kept version is what loaded.
        std::fs::remove_dir_all(dir.path().join("plugins")).unwrap();
        let file = versions.find("hello", "1.0.0+abc").unwrap().unwrap();
        assert_eq!(file, dir.path().join("data/versions/hello/1.0.0+abc/agent.toml"));
        let kept = Manifest::load(&file).unwrap();
        assert_eq!((kept.build, kept.component), (None, file.parent().unwrap().join("component.wasm")));
        assert_eq!((kept.version.to_string(), kept.limits), ("1.0.0".to_string(), manifest.limits));
        assert_eq!(std::fs::read(file.parent().unwrap().join("component.wasm")).unwrap(), COMPONENT);
        assert_eq!(versions.find("hello", "1.0.1+abc").unwrap(), None);
    }

    #[test]
    fn a_version_whose_files_changed_since_it_loaded_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, hash) = plugin(dir.path());
        std::fs::write(dir.path().join("plugins/hello/target/hello.wasm"), b"\0asm\x0d\0\x01\0\x00").unwrap();
        let versions = kept_in(dir.path());
        let refused = versions.keep(&ToKeep { name: "hello", version: "1.0.0+abc", manifest: &manifest, hash: &hash });
        let file = dir.path().join("plugins/hello/agent.toml");
        assert_eq!(
            refused,
            Err(format!("{} changed since version 1.0.0+abc loaded; it is kept once it serves", file.display()))
        );
        assert_eq!(versions.find("hello", "1.0.0+abc").unwrap(), None);
    }

    #[test]
    fn forgetting_drops_old_versions_no_unfinished_run_pins_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (manifest, hash) = plugin(dir.path());
        let versions = kept_in(dir.path());
        for version in ["1.0.0+a", "1.0.0+b", "1.0.0+c"] {
            versions.keep(&ToKeep { name: "hello", version, manifest: &manifest, hash: &hash }).unwrap();
        }
        let pinned = HashSet::from([("hello".to_string(), "1.0.0+b".to_string())]);
        let long_ago = SystemTime::now() - Duration::from_secs(3600);
        assert_eq!(versions.forget(long_ago, &pinned), Ok(0), "every version was pinned within the hour");
        let later = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(versions.forget(later, &pinned), Ok(2));
        let left: Vec<bool> =
            ["1.0.0+a", "1.0.0+b", "1.0.0+c"].iter().map(|v| versions.find("hello", v).unwrap().is_some()).collect();
        assert_eq!(left, [false, true, false]);
    }

    #[test]
    fn a_name_or_version_that_would_leave_the_folder_is_refused() {
        let dir = Path::new("/kept");
        assert_eq!(
            version_folder(dir, "hello", "../../etc"),
            Err("version \"../../etc\" of agent \"hello\" is not a version id".to_string())
        );
        assert!(version_folder(dir, "hello", "1.0.0/x").is_err());
        assert!(version_folder(dir, "../x", "1.0.0").is_err());
        assert_eq!(version_folder(dir, "hello", "1.0.0-rc.1+abc"), Ok(dir.join("hello/1.0.0-rc.1+abc")));
        assert_eq!(Versions::none().find("hello", "1.0.0"), Ok(None));
    }

    #[test]
    fn a_version_kept_by_one_host_in_the_database_is_found_by_another_and_forgotten_for_all() {
        let Some(url) = paddock_postgres::testing::database_url("plugin_versions") else { return };
        let dir = tempfile::tempdir().unwrap();
        let (manifest, hash) = plugin(dir.path());
        let at = BookStore::Postgres(paddock_postgres::Settings::new(&url));
        let (a, b) = (
            Versions::open_at(&at, &dir.path().join("a")).unwrap(),
            Versions::open_at(&at, &dir.path().join("b")).unwrap(),
        );
        a.keep(&ToKeep { name: "hello", version: "1.0.0+abc", manifest: &manifest, hash: &hash }).unwrap();
        let found = b.find("hello", "1.0.0+abc").unwrap().unwrap();
        assert_eq!(found, dir.path().join("b/versions/hello/1.0.0+abc/agent.toml"), "written into host B's folder");
        assert_eq!(std::fs::read(found.parent().unwrap().join("component.wasm")).unwrap(), COMPONENT);
        let later = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(b.forget(later, &HashSet::new()), Ok(1), "one version in the database");
        std::fs::remove_dir_all(dir.path().join("a/versions")).unwrap();
        let c = Versions::open_at(&at, &dir.path().join("c")).unwrap();
        assert_eq!(c.find("hello", "1.0.0+abc"), Ok(None), "forgotten for every host");
    }
}
