//! Group commit: a writer that finds others waiting for the connection
//! leaves its transaction open for them, and the last of them commits for
//! all, with one `fsync`.
//!
//! The board's file is `synchronous = FULL`: every commit waits for the disk
//! (a few hundred µs here), whatever it holds. Durable writes run on tokio's
//! blocking threads, so when many agents write at once their threads queue
//! here, each for its own commit and `fsync`. Instead, a writer that has done
//! its work and sees another already waiting does not commit: it hands the
//! open transaction on and waits to learn the outcome of the commit that
//! holds its work. The last writer of a batch (nobody waiting, or
//! [`MAX_BATCH`] writers in it) commits. A writer who joins an open
//! transaction works inside a savepoint, so its error undoes its own writes
//! only. A writer alone commits its own transaction at once, as before.
//!
//! Nothing reads on this connection (the board reads on one of its own), so
//! nothing sees a batch before it is committed; a writer returns, and its
//! watchers are told, only once its batch is.

use parking_lot::{Condvar, Mutex};
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// The most writers one commit holds, so another process waiting for the
/// file's write lock (`paddock bb`, `paddock run`) waits for a bounded
/// transaction: a few milliseconds.
pub(super) const MAX_BATCH: usize = 64;

/// A connection whose writers share commits.
pub(super) struct Committer {
    held: Mutex<Held>,
    /// Writers that asked for the connection and do not hold it yet.
    waiting: AtomicUsize,
    /// Commits made (or tried).
    commits: AtomicU64,
}

struct Held {
    conn: Connection,
    /// The transaction left open for a waiting writer, if any.
    open: Option<Batch>,
}

struct Batch {
    /// Writers whose work it holds.
    members: usize,
    outcome: Arc<Outcome>,
}

/// How a batch's commit ended, for the writers waiting on it.
#[derive(Default)]
struct Outcome {
    settled: Mutex<Option<Result<(), String>>>,
    ready: Condvar,
}

impl Outcome {
    fn settle(&self, result: Result<(), String>) {
        *self.settled.lock() = Some(result);
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<(), String> {
        let mut settled = self.settled.lock();
        loop {
            if let Some(result) = settled.as_ref() {
                return result.clone();
            }
            self.ready.wait(&mut settled);
        }
    }
}

/// Why a write did not happen.
#[derive(Debug)]
pub(super) enum Failed<E> {
    /// Its work failed; its writes were undone.
    Work(E),
    /// The transaction could not be begun or committed.
    Commit(String),
}

fn exec(conn: &Connection, sql: &str) -> Result<(), String> {
    conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(drop).map_err(|e| e.to_string())
}

impl Committer {
    pub(super) fn new(conn: Connection) -> Committer {
        Committer {
            held: Mutex::new(Held { conn, open: None }),
            waiting: AtomicUsize::new(0),
            commits: AtomicU64::new(0),
        }
    }

    /// Runs `work` in an immediate transaction (no other writer between its
    /// reads and its writes), or inside the one a writer before it left
    /// open; `Ok` once a commit holds what it wrote. An error or a panic in
    /// `work` undoes its writes and nobody else's.
    pub(super) fn write<T, E>(&self, work: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, Failed<E>> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut held = self.held.lock();
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let joined = held.open.is_some();
        if let Err(e) = exec(&held.conn, if joined { "SAVEPOINT joined" } else { "BEGIN IMMEDIATE" }) {
            // A batch left open still needs its commit.
            self.hand_on_or_commit(&mut held);
            return Err(Failed::Commit(e));
        }
        let out = catch_unwind(AssertUnwindSafe(|| work(&held.conn)));
        let done = matches!(out, Ok(Ok(_)));
        match (joined, done) {
            (true, true) => {
                let _ = exec(&held.conn, "RELEASE joined");
            }
            (true, false) => {
                let _ = exec(&held.conn, "ROLLBACK TO joined");
                let _ = exec(&held.conn, "RELEASE joined");
            }
            (false, true) => held.open = Some(Batch { members: 0, outcome: Arc::default() }),
            (false, false) => {
                let _ = exec(&held.conn, "ROLLBACK");
            }
        }
        let mine = match (done, held.open.as_mut()) {
            (true, Some(batch)) => {
                batch.members += 1;
                Some(batch.outcome.clone())
            }
            _ => None,
        };
        self.hand_on_or_commit(&mut held);
        drop(held);
        let committed = mine.map_or(Ok(()), |outcome| outcome.wait());
        match out {
            Ok(Ok(value)) => committed.map(|()| value).map_err(Failed::Commit),
            Ok(Err(e)) => Err(Failed::Work(e)),
            Err(panic) => resume_unwind(panic),
        }
    }

    /// Leaves the open batch to a writer already waiting for the connection,
    /// or commits it.
    fn hand_on_or_commit(&self, held: &mut Held) {
        let room = held.open.as_ref().is_some_and(|b| b.members < MAX_BATCH);
        if !(room && self.waiting.load(Ordering::SeqCst) > 0) {
            self.commit(held);
        }
    }

    /// Commits the open batch, if any, and tells its writers how it went.
    fn commit(&self, held: &mut Held) {
        let Some(batch) = held.open.take() else { return };
        let result = exec(&held.conn, "COMMIT");
        if result.is_err() {
            let _ = exec(&held.conn, "ROLLBACK");
        }
        self.commits.fetch_add(1, Ordering::Relaxed);
        batch.outcome.settle(result);
    }

    /// How many commits were made (or tried): with writers at once, fewer
    /// than the writes.
    #[cfg(test)]
    fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;
