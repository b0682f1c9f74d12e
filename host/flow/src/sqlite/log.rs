//! The store's log (`flows.sqlite-wal`): written out to the disk as it
//! grows, and copied into the file behind the writers.
//!
//! A commit appends its pages to the log (`synchronous = NORMAL`: into the
//! OS's cache). SQLite's own hook has the commit that fills the log copy it
//! into the file: it `fsync`s the log (every page written since the last
//! copy goes to the disk), copies the pages, and `fsync`s the file, while
//! that commit's step waits (13.8 ms for 2,000 pages on this machine, once
//! every ~475 steps of a sequence), and the 16 MiB written at once hold up
//! every other `fsync` on the disk meanwhile (the board's commits: 12–17 ms
//! at p99 for an end-to-end step). Here a thread of the store's own:
//! - writes the log out every [`FLUSH_FRAMES`] pages a commit adds
//!   (`fdatasync`), so the disk takes it a megabyte at a time;
//! - makes the copy, from a connection of its own while writers go on;
//!   then, holding the store's connection so this process's writers wait,
//!   copies the few pages written meanwhile, so the log is all in the file
//!   and the next commit starts it over from its beginning (a log never all
//!   copied only grows, and writing past its end costs a commit more than
//!   writing over pages it had).

use parking_lot::Mutex;
use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How many pages the log holds before it is copied into the file (16 MiB
/// on pages of 8 KiB; SQLite's default, 1,000, measured slower: a page
/// written by many commits is copied once).
pub(super) const CHECKPOINT_FRAMES: c_int = 2000;

/// How many pages a commit may add to the log before the thread writes
/// them out to the disk (1 MiB on pages of 8 KiB, about 30 steps of a
/// sequence).
pub(super) const FLUSH_FRAMES: c_int = 128;

/// A log this long is copied by the commit that finds it so, as SQLite
/// would: the thread has fallen behind (a slow disk, another process
/// holding the log).
pub(super) const BEHIND_FRAMES: c_int = 4 * CHECKPOINT_FRAMES;

/// At most this many pages left for the copy made while holding the store's
/// connection; more, and the thread copies again without holding it.
const LAST_FRAMES: c_int = 64;

/// The copies made from the thread's own connection before the last.
const MAX_PASSES: usize = 4;

/// What the store and its thread share.
#[derive(Default)]
pub(super) struct Log {
    /// The pages in the log after the last commit.
    pages: AtomicI32,
    /// Copies the thread has finished with the log all in the file.
    copies: AtomicU64,
    /// Times the thread has written the log out between copies.
    flushes: AtomicU64,
}

#[cfg(test)]
impl Log {
    pub(super) fn pages(&self) -> c_int {
        self.pages.load(Ordering::Relaxed)
    }

    pub(super) fn copies(&self) -> u64 {
        self.copies.load(Ordering::Relaxed)
    }

    pub(super) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}

/// Has `conn`'s log written out every [`FLUSH_FRAMES`] pages and copied
/// into the file once it holds [`CHECKPOINT_FRAMES`] pages, by a thread of
/// its own that starts when first needed and ends when the connection closes.
pub(super) fn copy_behind_writers(conn: &Arc<Mutex<Connection>>, path: PathBuf) -> rusqlite::Result<Arc<Log>> {
    let log = Arc::new(Log::default());
    let (store, shared) = (Arc::downgrade(conn), log.clone());
    let mut thread: Option<SyncSender<()>> = None;
    let mut started = false;
    // The log's pages when the thread was last asked to write them out.
    let mut asked: c_int = 0;
    conn.lock().wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        shared.pages.store(pages, Ordering::Relaxed);
        if pages < asked {
            asked = 0; // the log started over
        }
        let flush = pages - asked >= FLUSH_FRAMES;
        if pages < CHECKPOINT_FRAMES && !flush {
            return Ok(());
        }
        asked = pages;
        if !started {
            started = true;
            thread = spawn(store.clone(), path.clone(), shared.clone());
        }
        match &thread {
            // The thread looks at the log's length to know which is asked;
            // a full channel is a nudge it has yet to act on, which covers these pages too.
            Some(nudge) if pages < BEHIND_FRAMES => drop(nudge.try_send(())),
            // The thread's copy is slow (a busy disk): this commit copies the
            // log, waiting for the thread's pass to end, so the log stays bounded
            // and this process's writers wait meanwhile, as they would on SQLite's
            // own hook.
            Some(_) => copy_waiting(wal),
            // Without a thread the log is written out when it is copied.
            None if pages < CHECKPOINT_FRAMES => {}
            // Refused only while another connection copies or holds the log.
            None => drop(wal.checkpoint()),
        }
        // An error here would be reported as the commit's, which is done.
        Ok(())
    }))?;
    Ok(log)
}

/// Copies the log from the committing connection, waiting up to 5 s while
/// another connection copies it (SQLite refuses a second copy at once).
fn copy_waiting(wal: &mut Wal) {
    let until = Instant::now() + Duration::from_secs(5);
    while let Err(e) = wal.checkpoint() {
        if e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy) || Instant::now() >= until {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The thread, when one can be started; without it each commit copies a
/// full log, as SQLite's own hook does.
fn spawn(store: Weak<Mutex<Connection>>, path: PathBuf, log: Arc<Log>) -> Option<SyncSender<()>> {
    let (nudge, nudged) = sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("paddock-flows-log".into())
        .spawn(move || copy_when_nudged(&store, &path, &log, &nudged));
    match thread {
        Ok(_) => Some(nudge),
        Err(e) => {
            tracing::warn!(error = %e, "flow store: no thread to copy its log; commits copy it when it is long");
            None
        }
    }
}

fn copy_when_nudged(store: &Weak<Mutex<Connection>>, path: &Path, log: &Log, nudged: &Receiver<()>) {
    let mut own: Option<Connection> = None;
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let wal = PathBuf::from(wal);
    for () in nudged {
        if log.pages.load(Ordering::Relaxed) < CHECKPOINT_FRAMES {
            // Pages written since the last time, out to the disk now rather
            // than all at once when the log is copied.
            match std::fs::File::open(&wal).and_then(|f| f.sync_data()) {
                Ok(()) => drop(log.flushes.fetch_add(1, Ordering::Relaxed)),
                Err(e) => tracing::debug!(log = %wal.display(), error = %e, "flow store: the log not written out"),
            }
            continue;
        }
        if own.is_none() {
            own = open(path);
        }
        // The bulk, while writers go on.
        for _ in 0..MAX_PASSES {
            let Some(Ok((_, copied))) =
                own.as_ref().map(|c| c.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE))
            else {
                break;
            };
            if copied < 0 || log.pages.load(Ordering::Relaxed) - copied <= LAST_FRAMES {
                break;
            }
        }
        // The rest, with this process's writers waiting for the connection.
        let Some(store) = store.upgrade() else { return };
        let done = store.lock().wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE);
        if let Ok((pages, copied)) = done
            && pages == copied
        {
            log.copies.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The thread's own connection, its file read once so it is in WAL mode
/// (a connection that has read nothing has no log to copy).
fn open(path: &Path) -> Option<Connection> {
    let opened = Connection::open(path).and_then(|c| {
        c.query_row("PRAGMA schema_version", [], |_| Ok(()))?;
        Ok(c)
    });
    opened
        .inspect_err(
            |e| tracing::warn!(path = %path.display(), error = %e, "flow store: the log's copier cannot open the file"),
        )
        .ok()
}
