//! Where the host keeps its state: the blackboard, the budget ledger and
//! flow runs, each in memory, on disk under `host.data`, or (`[store]
//! backend = "postgres"`) in a PostgreSQL database several hosts share.

use crate::file::{BlackboardSection, FileConfig, StoreSection};
use paddock_blackboard::BoardLimits;
use paddock_core::SizeCaps;
use paddock_postgres::Settings as PostgresSettings;
use paddock_quota::LedgerStore;
use std::path::{Path, PathBuf};

/// Where the blackboard is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardStore {
    /// In memory: fast, gone when the process ends.
    Memory,
    /// In a SQLite file that survives restarts and crashes, shared by every process on the folder.
    Durable(PathBuf),
    /// In the PostgreSQL database of `[store]`, shared by every host on it.
    Postgres(PostgresSettings),
}

/// Where flow runs, checkpoints, journals, dead letters and questions are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowsStore {
    /// In memory: runs live only inside the process that runs them.
    Memory,
    /// In this SQLite file, which the processes of one machine share.
    Sqlite(PathBuf),
    /// In the PostgreSQL database of `[store]`, shared by every host on it.
    Postgres(PostgresSettings),
}

/// The environment variable read for the database's URL when `store.url` is not set.
pub const DATABASE_URL_VAR: &str = "PADDOCK_DATABASE_URL";

/// The three stores, validated.
pub(crate) struct Stores {
    pub(crate) ledger: LedgerStore,
    pub(crate) flows: FlowsStore,
    pub(crate) board: BoardStore,
    pub(crate) postgres: Option<PostgresSettings>,
}

/// Validates `[store]`, `host.ledger`, `host.flows` and `blackboard.store`.
pub(crate) fn stores(file: &FileConfig, data_dir: &Path, base: &Path) -> Result<Stores, String> {
    let postgres = postgres(&file.store, base)?;
    let (host, board) = (&file.host, &file.blackboard);
    let ledger = match place(
        "host.ledger",
        host.ledger.as_deref(),
        &postgres,
        "budgets in PostgreSQL, where they hold across hosts",
    )? {
        Place::Memory => LedgerStore::Memory,
        Place::File => LedgerStore::Sqlite(data_dir.join("ledger.sqlite")),
        Place::Database(pg) => LedgerStore::Postgres(pg),
    };
    let flows = match place(
        "host.flows",
        host.flows.as_deref(),
        &postgres,
        "runs in PostgreSQL, where every host sees them",
    )? {
        Place::Memory => FlowsStore::Memory,
        Place::File => FlowsStore::Sqlite(data_dir.join("flows.sqlite")),
        Place::Database(pg) => FlowsStore::Postgres(pg),
    };
    let board = match (board.store.as_deref(), &postgres) {
        (None | Some("postgres"), Some(pg)) => BoardStore::Postgres(pg.clone()),
        (Some("postgres"), None) => {
            return Err("blackboard.store: \"postgres\" needs a database: set [store] backend = \"postgres\"".into());
        }
        (None | Some("memory"), _) => BoardStore::Memory,
        (Some("durable"), Some(_)) => {
            return Err("blackboard.store: \"durable\" is a file of this machine, and [store] backend is \
                        \"postgres\": leave blackboard.store out to keep the board in PostgreSQL, or set \"memory\""
                .into());
        }
        (Some("durable"), None) => BoardStore::Durable(
            board.path.as_ref().map_or_else(|| data_dir.join("blackboard.sqlite"), |p| base.join(p)),
        ),
        (Some(other), _) => {
            return Err(format!(
                "blackboard.store: `{other}` is not a store; use \"memory\", \"durable\" or \"postgres\""
            ));
        }
    };
    Ok(Stores { ledger, flows, board, postgres })
}

/// Where one of the host's stores lives.
pub(crate) enum Place {
    Memory,
    /// A file in `host.data`.
    File,
    Database(PostgresSettings),
}

/// The place `key` (`"durable"`, `"memory"` or `"postgres"`) names, given the
/// database `[store]` names: unset means the database when there is one, else
/// the file; `keeps` says what the database is for, when a file is asked for beside it.
pub(crate) fn place(
    key: &str,
    value: Option<&str>,
    postgres: &Option<PostgresSettings>,
    keeps: &str,
) -> Result<Place, String> {
    match (value, postgres) {
        (None | Some("postgres"), Some(pg)) => Ok(Place::Database(pg.clone())),
        (Some("postgres"), None) => {
            Err(format!("{key}: \"postgres\" needs a database: set [store] backend = \"postgres\""))
        }
        (Some("memory"), _) => Ok(Place::Memory),
        (Some("durable"), Some(_)) => Err(format!(
            "{key}: \"durable\" is a file of this host's, and [store] backend is \"postgres\": leave {key} out to keep {keeps}"
        )),
        (None | Some("durable"), None) => Ok(Place::File),
        (Some(other), _) => {
            Err(format!("{key}: `{other}` is not a store; use \"durable\", \"memory\" or \"postgres\""))
        }
    }
}

/// `[store]`: the database, when `backend = "postgres"`.
fn postgres(store: &StoreSection, base: &Path) -> Result<Option<PostgresSettings>, String> {
    match store.backend.as_deref().unwrap_or("embedded") {
        "embedded" => {
            if let Some(key) = [
                ("url", store.url.is_some()),
                ("url-env", store.url_env.is_some()),
                ("pool", store.pool.is_some()),
                ("ca-file", store.ca_file.is_some()),
            ]
            .iter()
            .find_map(|(key, set)| set.then_some(key))
            {
                return Err(format!("store.{key}: set, but store.backend is \"embedded\"; set backend = \"postgres\""));
            }
            return Ok(None);
        }
        "postgres" => {}
        other => return Err(format!("store.backend: `{other}` is not a backend; use \"embedded\" or \"postgres\"")),
    }
    let url = match (&store.url, &store.url_env) {
        (Some(_), Some(_)) => return Err("store.url-env: set beside store.url; set one".into()),
        (Some(url), None) => url.clone(),
        (None, var) => {
            let var = var.as_deref().unwrap_or(DATABASE_URL_VAR);
            std::env::var(var).map_err(|_| {
                format!(
                    "store.url: backend \"postgres\" needs a database: set store.url, or the environment variable \
                     {var}{}",
                    if store.url_env.is_some() { " (store.url-env)" } else { "" }
                )
            })?
        }
    };
    let pool = store.pool.unwrap_or(16);
    if !(1..=1000).contains(&pool) {
        return Err(format!("store.pool: {pool} connections; use 1 to 1000"));
    }
    let ca_file = store.ca_file.as_ref().map(|f| base.join(f));
    if let Some(file) = ca_file.as_ref().filter(|f| !f.is_file()) {
        return Err(format!("store.ca-file: {} is not a file", file.display()));
    }
    let settings = PostgresSettings { pool, ca_file, ..PostgresSettings::new(&url) };
    settings.check().map_err(|e| format!("store.url: {e}"))?;
    Ok(Some(settings))
}

/// Each tenant's board limits: `[blackboard]` and the key and value caps.
pub(crate) fn board_limits(board: &BlackboardSection, caps: &SizeCaps) -> BoardLimits {
    BoardLimits {
        key_bytes: caps.key_bytes,
        value_bytes: caps.value_bytes,
        max_keys: board.max_keys.unwrap_or(100_000),
        max_bytes: board.max_bytes.map_or(256 << 20, |b| b.0),
        history: board.history.unwrap_or(4096),
        history_bytes: board.history_bytes.map_or(16 << 20, |b| b.0),
        per_tenant: false,
        shared: false,
    }
}
