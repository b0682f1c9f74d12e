//! PostgreSQL for Paddock's stores, so several hosts share one board, one
//! ledger and one flow store.
//!
//! The stores' traits are synchronous (SQLite and redb answer in
//! microseconds), so [`Postgres::run`] is a blocking call: the query runs as a
//! task on the pool's own threads, and the caller waits for its answer. On a
//! worker of a multi-threaded tokio runtime the wait is `block_in_place`, so
//! the host's other tasks move to another thread instead of queueing behind a
//! round trip. The connections live on those threads too, so no wait can
//! starve the task that would answer it.
//!
//! Besides the pool: versioned migrations per store ([`Postgres::migrate`]),
//! `LISTEN` for the notifications that wake watchers on every host
//! ([`Postgres::listen`]), and throwaway clusters for tests ([`testing`]).
//!
//! ```no_run
//! use paddock_postgres::{Postgres, Settings};
//!
//! let pg = Postgres::connect(&Settings::new("postgres://paddock@127.0.0.1/paddock")).unwrap();
//! let one: i32 = pg.run(|client| async move {
//!     let row = client.query_one("SELECT 1", &[]).await.map_err(|e| paddock_postgres::describe(&e))?;
//!     Ok(row.get(0))
//! }).unwrap();
//! assert_eq!(one, 1);
//! ```

#![warn(missing_docs)]

mod listen;
mod migrate;
pub mod testing;
mod tls;

pub use deadpool_postgres::{Object as Client, Transaction};
pub use migrate::Migration;
pub use tokio_postgres;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Timeouts};
use std::future::Future;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

/// How to reach the database.
#[derive(Clone, PartialEq, Eq)]
pub struct Settings {
    /// A `postgres://` URL or a `key=value` connection string.
    pub url: String,
    /// Most connections this process holds.
    pub pool: usize,
    /// How long a call waits for a free connection, or for a new one to open.
    pub wait: Duration,
    /// PEM certificates of the authorities the server's certificate may come
    /// from, besides the system's (a cloud provider's CA bundle, a private CA).
    pub ca_file: Option<PathBuf>,
}

impl Settings {
    /// `url` with a pool of 16 connections and a 10 s wait.
    pub fn new(url: &str) -> Self {
        Settings { url: url.to_string(), pool: 16, wait: Duration::from_secs(10), ca_file: None }
    }

    /// Whether the URL reads as a connection string; why not.
    pub fn check(&self) -> Result<(), String> {
        tokio_postgres::Config::from_str(&self.url).map(|_| ()).map_err(|e| match std::error::Error::source(&e) {
            Some(why) => format!("not a PostgreSQL connection string ({why})"),
            None => format!("not a PostgreSQL connection string ({e})"),
        })
    }

    /// Where the URL points, without its password.
    pub fn shown(&self) -> String {
        tokio_postgres::Config::from_str(&self.url).map_or_else(|_| "<not a connection string>".into(), |c| shown(&c))
    }
}

/// Never prints the password a URL may carry.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("at", &self.shown())
            .field("pool", &self.pool)
            .field("wait", &self.wait)
            .finish()
    }
}

/// A pool of connections to one database, run on its own threads.
#[derive(Clone)]
pub struct Postgres {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    tls: tls::Tls,
    /// Where the URL points, without its password, for messages.
    shown: String,
    handle: Handle,
    /// Shut down without waiting when the last handle goes (dropping a
    /// runtime inside another's async context would panic).
    runtime: Option<Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres").field("at", &self.inner.shown).finish_non_exhaustive()
    }
}

/// What went wrong in PostgreSQL, with the server's own detail when it
/// sent one, else every cause (a refused connection, a certificate that did
/// not verify).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}; {detail})", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => chain(e),
    }
}

/// `e` and each of its causes, joined by ": ", a cause its parent's text
/// already ends with said once.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.ends_with(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    text
}

/// How long a session of ours may sit idle inside a transaction before the
/// server ends it.
pub const IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(5);

impl Postgres {
    /// A pool for `settings`, checked by opening one connection.
    pub fn connect(settings: &Settings) -> Result<Self, String> {
        settings.check().map_err(|e| format!("store.url: {e}"))?;
        let mut config = tokio_postgres::Config::from_str(&settings.url).map_err(|e| e.to_string())?;
        let shown = shown(&config);
        // A host stopped inside a transaction (SIGSTOP, a paused VM, a partition)
        // would hold its row locks for ever, and every other host's write of
        // those rows would wait on it: the server ends such a session after
        // IDLE_IN_TRANSACTION, well inside a run's 15 s lease. No transaction
        // of ours waits on anything but its own statements.
        let ours = format!("-c idle_in_transaction_session_timeout={}", IDLE_IN_TRANSACTION.as_millis());
        let options = config.get_options().map_or_else(|| ours.clone(), |theirs| format!("{theirs} {ours}"));
        config.options(&options);
        if settings.pool == 0 {
            return Err("store.pool: must be at least 1".into());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("paddock-pg")
            .enable_all()
            .build()
            .map_err(|e| format!("PostgreSQL: cannot start its threads: {e}"))?;
        let tls = tls::connector(settings.ca_file.as_deref())?;
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let timeouts =
            Timeouts { wait: Some(settings.wait), create: Some(settings.wait), recycle: Some(settings.wait) };
        let pool = Pool::builder(manager)
            .max_size(settings.pool)
            .timeouts(timeouts)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| format!("PostgreSQL at {shown}: {e}"))?;
        let handle = runtime.handle().clone();
        let pg = Postgres { inner: Arc::new(Inner { pool, config, tls, shown, handle, runtime: Some(runtime) }) };
        pg.run(|_client| async { Ok(()) })?;
        Ok(pg)
    }

    /// The pool of this process for `settings`: every store of a process
    /// shares one pool (and its threads), made on first use.
    pub fn shared(settings: &Settings) -> Result<Self, String> {
        static POOLS: parking_lot::Mutex<Vec<(Settings, std::sync::Weak<Inner>)>> = parking_lot::Mutex::new(Vec::new());
        let mut pools = POOLS.lock();
        pools.retain(|(_, pool)| pool.strong_count() > 0);
        if let Some(inner) = pools.iter().find(|(s, _)| s == settings).and_then(|(_, pool)| pool.upgrade()) {
            return Ok(Postgres { inner });
        }
        let pg = Postgres::connect(settings)?;
        pools.push((settings.clone(), Arc::downgrade(&pg.inner)));
        Ok(pg)
    }

    /// Where this pool connects, without a password.
    pub fn shown(&self) -> &str {
        &self.inner.shown
    }

    /// Runs `work` with a connection of the pool and waits for its answer.
    /// Safe to call from any thread, async or not (see the crate docs).
    pub fn run<T, F, Fut>(&self, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let call = self.call(work);
        self.inner.handle.spawn(async move {
            let _ = tx.send(call.await);
        });
        let wait = move || rx.recv().unwrap_or_else(|_| Err("PostgreSQL: the pool's threads stopped".into()));
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    fn call<T, F, Fut>(&self, work: F) -> impl Future<Output = Result<T, String>> + Send + 'static
    where
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, String>> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        let shown = self.inner.shown.clone();
        async move {
            let client =
                pool.get().await.map_err(|e| format!("PostgreSQL at {shown}: no connection: {}", chain(&e)))?;
            work(client).await
        }
    }

    /// Spawns `task` on the pool's threads.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.inner.handle.spawn(task);
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.inner.config
    }
}

/// `user@host:port/dbname` of `config`, never its password.
fn shown(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().or(config.get_user()).unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_never_carries_its_password() {
        let config = tokio_postgres::Config::from_str("postgres://app:s3cret@db.internal:6432/paddock").unwrap();
        assert_eq!(shown(&config), "app@db.internal:6432/paddock");
    }

    #[test]
    fn a_session_left_idle_inside_a_transaction_is_ended_and_its_locks_no_longer_hold_others() {
        let Some(pg) = crate::testing::database("idle_in_transaction") else { return };
        pg.run(|c| async move {
            c.batch_execute("CREATE TABLE held (id int PRIMARY KEY, n int); INSERT INTO held VALUES (1, 0)")
                .await
                .map_err(|e| e.to_string())
        })
        .unwrap();
        // A host stopped mid-transaction: the row is locked, then nothing more is sent.
        let (locked, stopped) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let held = pg.clone();
        let stopped_host = std::thread::spawn(move || {
            held.run(move |mut c| async move {
                let tx = c.transaction().await.map_err(|e| e.to_string())?;
                tx.execute("UPDATE held SET n = 1 WHERE id = 1", &[]).await.map_err(|e| e.to_string())?;
                locked.0.send(()).unwrap();
                let _ = tokio::task::spawn_blocking(move || stopped.1.recv()).await;
                tx.commit().await.map_err(|e| e.to_string())
            })
        });
        locked.1.recv().unwrap();
        let started = std::time::Instant::now();
        let n = pg
            .run(|c| async move {
                let row = c.query_one("UPDATE held SET n = n + 10 WHERE id = 1 RETURNING n", &[]).await;
                row.map(|r| r.get::<_, i32>(0)).map_err(|e| e.to_string())
            })
            .unwrap();
        let waited = started.elapsed();
        stopped.0.send(()).unwrap();
        let late = stopped_host.join().unwrap().unwrap_err();
        // The other write went through once the server ended the idle session,
        // on the row as it was: the stopped host's change was rolled back.
        assert_eq!(n, 10);
        assert!(waited >= IDLE_IN_TRANSACTION - std::time::Duration::from_millis(500), "{waited:?}");
        assert!(waited < IDLE_IN_TRANSACTION * 3, "{waited:?}");
        assert!(late.contains("idle-in-transaction") || late.contains("closed"), "{late}");
    }

    #[test]
    fn a_url_that_is_not_one_is_refused_naming_the_key() {
        let e = Postgres::connect(&Settings::new("postgres://app@db:port/paddock")).unwrap_err();
        assert!(e.starts_with("store.url: not a PostgreSQL connection string"), "{e}");
    }
}
