//! Throwaway PostgreSQL for tests: one cluster per test binary, made with
//! `initdb` in a temporary folder, listening on 127.0.0.1 on a port the OS
//! picked, and a fresh database per test.
//!
//! The server runs under a small shell that holds a pipe from the test
//! binary; when the binary ends (passed, failed or killed), the pipe closes
//! and the shell stops the server by its own PID and removes the folder.
//! As root the server runs as the `postgres` user (PostgreSQL refuses root).
//!
//! `PADDOCK_TEST_POSTGRES_URL` names an existing server to use instead (a
//! user that may create databases). Without either, tests skip with a message,
//! and fail under `CI=true`.

use crate::{Postgres, Settings, describe};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// An existing server to use instead of a throwaway cluster.
pub const URL_VAR: &str = "PADDOCK_TEST_POSTGRES_URL";
/// The folder of `initdb` and `postgres`, when not Debian's `/usr/lib/postgresql/N/bin`.
pub const BIN_VAR: &str = "PADDOCK_POSTGRES_BIN";

const INSTALL: &str = "PostgreSQL is not installed: `apt-get install postgresql` (Debian), or set \
                       PADDOCK_TEST_POSTGRES_URL to a server where this user may create databases";

struct Cluster {
    /// The URL of its `postgres` database, as a user that may create databases.
    admin: String,
    admin_pool: Postgres,
    /// The shell that stops the server when this process ends; kept for its stdin.
    _watchdog: Option<Child>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static DATABASES: AtomicU32 = AtomicU32::new(0);

/// A fresh database named after `name` on this test binary's cluster, with a
/// pool of 8, or `None` (having said why) when PostgreSQL is missing outside CI.
pub fn database(name: &str) -> Option<Postgres> {
    let url = database_url(name)?;
    let settings = Settings { pool: 8, ..Settings::new(&url) };
    Some(Postgres::connect(&settings).unwrap_or_else(|e| panic!("{e}")))
}

/// The URL of a fresh database named after `name`, for tests that hand it to
/// `paddock serve`; `None` as for [`database`].
pub fn database_url(name: &str) -> Option<String> {
    let cluster = match CLUSTER.get_or_init(start) {
        Ok(cluster) => cluster,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let n = DATABASES.fetch_add(1, Ordering::Relaxed);
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    let db = format!("t{}_{n}_{}", std::process::id(), clean.to_ascii_lowercase());
    let create = format!("CREATE DATABASE {db}");
    cluster
        .admin_pool
        .run(move |c| async move { c.batch_execute(&create).await.map_err(|e| describe(&e)) })
        .unwrap_or_else(|e| panic!("creating the test database {db}: {e}"));
    Some(with_database(&cluster.admin, &db))
}

/// `url` naming database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) if url.contains("://") && base.len() > "postgres://".len() => format!("{base}/{db}"),
        _ => format!("{url} dbname={db}"),
    }
}

fn start() -> Result<Cluster, String> {
    if let Ok(admin) = std::env::var(URL_VAR) {
        let admin_pool = Postgres::connect(&Settings { pool: 2, ..Settings::new(&admin) })?;
        return Ok(Cluster { admin, admin_pool, _watchdog: None });
    }
    let (admin, watchdog) = throwaway("", &[])?;
    let admin_pool = Postgres::connect(&Settings { pool: 2, ..Settings::new(&admin) })?;
    Ok(Cluster { admin, admin_pool, _watchdog: Some(watchdog) })
}

/// A cluster of its own, with `files` (name, content) written into its data
/// folder for the server alone (mode 0600) and the server's `options`
/// (`-c name=value …`); its admin URL and the shell that stops it when
/// dropped. `None` (having said why) when PostgreSQL is missing outside CI.
pub fn cluster_with(options: &str, files: &[(&str, &[u8])]) -> Option<(String, Child)> {
    match throwaway(options, files) {
        Ok(started) => Some(started),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

fn throwaway(options: &str, files: &[(&str, &[u8])]) -> Result<(String, Child), String> {
    let bin = binaries().ok_or(INSTALL)?;
    let dir = std::env::temp_dir().join(format!("paddock-pg-{}-{}", std::process::id(), nonce()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let owner = server_user()?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb.args(["-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync", "-D"]).arg(&data);
    run_as(&mut initdb, owner, &dir);
    let out = initdb.output().map_err(|e| format!("running {}: {e}", bin.join("initdb").display()))?;
    if !out.status.success() {
        return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    for (name, content) in files {
        use std::os::unix::fs::PermissionsExt;
        let file = data.join(name);
        let failed = |e: std::io::Error| format!("writing {}: {e}", file.display());
        std::fs::write(&file, content).map_err(failed)?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&file, Some(uid), Some(gid)).map_err(failed)?;
        }
    }
    let port = free_port()?;
    let watchdog = serve(&bin, &dir, port, owner, options)?;
    wait_ready(&data, &dir)?;
    Ok((format!("postgres://postgres@127.0.0.1:{port}/postgres"), watchdog))
}

/// Starts the server under a shell that stops it when its stdin closes.
fn serve(bin: &Path, dir: &Path, port: u16, owner: Option<(u32, u32)>, options: &str) -> Result<Child, String> {
    // Durability is not what these tests measure: no fsync makes each one faster.
    const SCRIPT: &str = r#"
        "$0" -D "$1/data" -p "$2" -k "$1" -c listen_addresses=127.0.0.1 -c max_connections=400 \
            -c fsync=off -c synchronous_commit=off -c full_page_writes=off $3 >"$1/server.log" 2>&1 &
        server=$!
        read -r _
        kill -QUIT "$server"
        wait "$server"
        rm -rf "$1"
    "#;
    let mut shell = Command::new("sh");
    shell.args(["-c", SCRIPT]).arg(bin.join("postgres")).arg(dir).arg(port.to_string()).arg(options);
    shell.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
    run_as(&mut shell, owner, dir);
    shell.spawn().map_err(|e| format!("starting postgres: {e}"))
}

fn wait_ready(data: &Path, dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        // The server's pid file ends in "ready" once it accepts connections.
        if std::fs::read_to_string(data.join("postmaster.pid")).is_ok_and(|pid| pid.trim_end().ends_with("ready")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut log = String::new();
    let _ = std::fs::File::open(dir.join("server.log")).and_then(|mut f| f.read_to_string(&mut log));
    Err(format!("postgres did not start within 60 s: {log}"))
}

/// Debian's newest `/usr/lib/postgresql/N/bin`, or [`BIN_VAR`].
fn binaries() -> Option<PathBuf> {
    if let Ok(bin) = std::env::var(BIN_VAR) {
        return Some(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .filter(|(_, bin)| bin.join("initdb").exists() && bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The `postgres` user's ids when this process is root (the server refuses root).
fn server_user() -> Result<Option<(u32, u32)>, String> {
    let me = std::fs::metadata("/proc/self").map_err(|e| format!("reading /proc/self: {e}"))?;
    if me.uid() != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id").args([flag, "postgres"]).output().map_err(|e| format!("running id: {e}"))?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "running as root, and there is no `postgres` user to run the server as".to_string())
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

fn run_as(command: &mut Command, owner: Option<(u32, u32)>, dir: &Path) {
    command.current_dir(dir);
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", dir);
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

fn nonce() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_replaces_only_the_database() {
        assert_eq!(with_database("postgres://u@127.0.0.1:5/postgres", "t1"), "postgres://u@127.0.0.1:5/t1");
        assert_eq!(with_database("host=/tmp user=u", "t1"), "host=/tmp user=u dbname=t1");
    }
}
