//! Where the host keeps its state: the blackboard, the budget ledger and
//! flow runs, each in memory or on disk under `host.data`.

use crate::file::{BlackboardSection, HostSection};
use paddock_blackboard::BoardLimits;
use paddock_core::SizeCaps;
use paddock_quota::LedgerStore;
use std::path::{Path, PathBuf};

/// Where the blackboard is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoardStore {
    /// In memory: fast, gone when the process ends.
    Memory,
    /// In a redb file that survives restarts and crashes (one process at a time).
    Durable(PathBuf),
}

/// The three stores, validated.
pub(crate) struct Stores {
    pub(crate) ledger: LedgerStore,
    pub(crate) flows: Option<PathBuf>,
    pub(crate) board: BoardStore,
}

/// Validates `host.ledger`, `host.flows` and `blackboard.store`.
pub(crate) fn stores(
    host: &HostSection,
    board: &BlackboardSection,
    data_dir: &Path,
    base: &Path,
) -> Result<Stores, String> {
    let ledger = match host.ledger.as_deref().unwrap_or("durable") {
        "memory" => LedgerStore::Memory,
        "durable" => LedgerStore::Sqlite(data_dir.join("ledger.sqlite")),
        other => return Err(format!("host.ledger: `{other}` is not a store; use \"durable\" or \"memory\"")),
    };
    let flows = match host.flows.as_deref().unwrap_or("durable") {
        "memory" => None,
        "durable" => Some(data_dir.join("flows.sqlite")),
        other => return Err(format!("host.flows: `{other}` is not a store; use \"durable\" or \"memory\"")),
    };
    let board = match board.store.as_deref().unwrap_or("memory") {
        "memory" => BoardStore::Memory,
        "durable" => {
            BoardStore::Durable(board.path.as_ref().map_or_else(|| data_dir.join("blackboard.redb"), |p| base.join(p)))
        }
        other => return Err(format!("blackboard.store: `{other}` is not a store; use \"memory\" or \"durable\"")),
    };
    Ok(Stores { ledger, flows, board })
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
