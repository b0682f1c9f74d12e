//! `paddock:agent/blackboard`: the calling tenant's [`Namespace`], and nothing else.

use super::wit::blackboard::{Change, Entry, Error, Host};
use super::{CallContext, traced};
use paddock_blackboard::{BoardError, LIST_MAX, Lookup, Namespace, Writer, unix_millis};
use paddock_core::TRACE_TARGET;
use paddock_journal::{self as journal, Tape};
use paddock_tenants::{BoardAccess, Grants};
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::HasData;

/// Per-invocation state of the `blackboard` interface.
#[derive(Debug)]
pub struct BoardCtx {
    board: Arc<Namespace>,
    /// The caller's agent and run, recorded with each write.
    writer: Writer,
    /// The prefixes it may read and write.
    grants: Arc<Grants>,
    /// Records (or replays) each call, when the run keeps a journal.
    journal: Option<Arc<Tape>>,
}

// Oversized keys and values are answered with `denied` and `too-large`, not a
// trap: the guest can act on them, and what it sent is already bounded by its
// memory limit.
impl BoardCtx {
    /// The blackboard interface over `board`, which must be the caller's
    /// tenant's, limited to the prefixes in `grants`.
    pub fn new(call: Arc<CallContext>, board: Arc<Namespace>, grants: Arc<Grants>) -> Self {
        debug_assert_eq!(board.tenant(), &*call.tenant);
        let writer = Writer { agent: call.agent.clone(), run: call.run.clone() };
        BoardCtx { board, writer, grants, journal: call.journal.clone() }
    }

    /// Refuses an access outside the granted prefixes with `denied`.
    fn allow(&self, access: BoardAccess<'_>) -> Result<(), Error> {
        self.grants
            .check_board(access, &self.writer.agent, self.board.tenant())
            .map_err(|e| Error::Denied(e.to_string()))
    }
}

impl BoardCtx {
    /// Runs a write. A durable write waits for its fsync (a few hundred
    /// microseconds) on a blocking thread, so the async workers keep running
    /// other agents meanwhile.
    async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Namespace, &Writer) -> Result<T, BoardError> + Send + 'static,
    ) -> Result<T, Error> {
        if !self.board.writes_block() {
            return write(&self.board, &self.writer).map_err(to_wit);
        }
        let (board, writer) = (self.board.clone(), self.writer.clone());
        tokio::task::spawn_blocking(move || write(&board, &writer))
            .await
            .unwrap_or_else(|e| Err(BoardError::Storage(format!("the write task failed: {e}"))))
            .map_err(to_wit)
    }
}

fn to_wit(e: BoardError) -> Error {
    match e {
        BoardError::InvalidKey(why) => Error::Denied(format!("blackboard key: {why}")),
        e @ BoardError::InvalidTtl { .. } => Error::Denied(e.to_string()),
        BoardError::Conflict { current } => Error::Conflict(current),
        BoardError::TooLarge { limit, .. } => Error::TooLarge(limit),
        BoardError::QuotaExceeded(why) => Error::QuotaExceeded(why),
        BoardError::Lagged { resume_after, .. } => Error::Lagged(resume_after),
        BoardError::Storage(why) => Error::Unavailable(why),
    }
}

impl BoardCtx {
    async fn get_now(&self, (key,): (String,)) -> wasmtime::Result<Result<Option<Entry>, Error>> {
        if let Err(e) = self.allow(BoardAccess::Read(&key)) {
            return Ok(Err(e));
        }
        let found = match self.board.lookup(&key) {
            Ok(Lookup::Found(entry)) => Some(entry),
            Ok(Lookup::Absent) => None,
            Ok(Lookup::Expired { revision }) => {
                // Removing it is a write: a durable one waits for its commit off the async workers.
                let _ = self.write(move |board, _| Ok(board.reap_expired(&key, revision))).await;
                None
            }
            Err(e) => return Ok(Err(to_wit(e))),
        };
        Ok(Ok(found.map(|e| Entry {
            value: e.value.to_vec(),
            revision: e.revision,
            writer: e.writer.agent.to_string(),
            run: e.writer.run.to_string(),
            written_at: unix_millis(e.written_at),
            expires_at: e.expires_at.map(unix_millis),
        })))
    }

    async fn put_now(
        &self,
        (key, value, ttl_ms): (String, Vec<u8>, Option<u64>),
    ) -> wasmtime::Result<Result<u64, Error>> {
        if let Err(e) = self.allow(BoardAccess::Write(&key)) {
            return Ok(Err(e));
        }
        Ok(self
            .write(move |board, writer| match ttl_ms.map(Duration::from_millis) {
                None => board.put(&key, &value, writer),
                Some(ttl) => board.put_expiring(&key, &value, ttl, writer),
            })
            .await)
    }

    async fn swap_now(
        &self,
        (key, expected, value, ttl_ms): (String, u64, Vec<u8>, Option<u64>),
    ) -> wasmtime::Result<Result<u64, Error>> {
        if let Err(e) = self.allow(BoardAccess::Write(&key)) {
            return Ok(Err(e));
        }
        Ok(self
            .write(move |board, writer| match ttl_ms.map(Duration::from_millis) {
                None => board.compare_and_swap(&key, expected, &value, writer),
                Some(ttl) => board.compare_and_swap_expiring(&key, expected, &value, ttl, writer),
            })
            .await)
    }

    async fn delete_now(&self, (key,): (String,)) -> wasmtime::Result<Result<bool, Error>> {
        if let Err(e) = self.allow(BoardAccess::Write(&key)) {
            return Ok(Err(e));
        }
        Ok(self.write(move |board, writer| board.delete(&key, writer)).await)
    }

    async fn list_now(&self, (prefix,): (String,)) -> wasmtime::Result<Result<Vec<String>, Error>> {
        if let Err(e) = self.allow(BoardAccess::ReadPrefix(&prefix)) {
            return Ok(Err(e));
        }
        Ok(self.board.list(&prefix, LIST_MAX).map(|keys| keys.iter().map(|k| k.to_string()).collect()).map_err(to_wit))
    }

    async fn watch_now(
        &self,
        (prefix, after, timeout_ms): (String, u64, u32),
    ) -> wasmtime::Result<Result<Vec<Change>, Error>> {
        if let Err(e) = self.allow(BoardAccess::ReadPrefix(&prefix)) {
            return Ok(Err(e));
        }
        let changes = self.board.watch(&prefix, after, Duration::from_millis(timeout_ms.into())).await;
        Ok(changes
            .map(|changes| {
                changes
                    .into_iter()
                    .map(|c| Change {
                        key: c.key.to_string(),
                        value: c.value.map(|v| v.to_vec()),
                        revision: c.revision,
                        writer: c.writer.agent.to_string(),
                        run: c.writer.run.to_string(),
                    })
                    .collect()
            })
            .map_err(to_wit))
    }
}

/// The span of one blackboard call, named for it (`blackboard.put`), with
/// the key or prefix it touched.
fn span(call: &'static str, key: &str) -> tracing::Span {
    tracing::info_span!(target: TRACE_TARGET, "blackboard", otel.name = call, key, outcome = tracing::field::Empty)
}

// Every call goes through the journal: recorded, or answered from it in a
// replay without touching the board; and is a span of the invocation's trace.
impl Host for BoardCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Entry>, Error>> {
        let span = span("blackboard.get", &key);
        traced(span, journal::through(self.journal.as_deref(), "blackboard.get", (key,), |a| self.get_now(a))).await
    }

    async fn put(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<u64, Error>> {
        let span = span("blackboard.put", &key);
        let put = |(k, v)| self.put_now((k, v, None));
        traced(span, journal::through(self.journal.as_deref(), "blackboard.put", (key, value), put)).await
    }

    async fn put_expiring(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) -> wasmtime::Result<Result<u64, Error>> {
        let span = span("blackboard.put-expiring", &key);
        let put = |(k, v, ttl)| self.put_now((k, v, Some(ttl)));
        traced(span, journal::through(self.journal.as_deref(), "blackboard.put-expiring", (key, value, ttl_ms), put))
            .await
    }

    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: u64,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let span = span("blackboard.compare-and-swap", &key);
        let swap = |(k, e, v)| self.swap_now((k, e, v, None));
        let args = (key, expected, value);
        traced(span, journal::through(self.journal.as_deref(), "blackboard.compare-and-swap", args, swap)).await
    }

    async fn compare_and_swap_expiring(
        &mut self,
        key: String,
        expected: u64,
        value: Vec<u8>,
        ttl_ms: u64,
    ) -> wasmtime::Result<Result<u64, Error>> {
        let span = span("blackboard.compare-and-swap-expiring", &key);
        let args = (key, expected, value, ttl_ms);
        let swap = |(k, e, v, ttl)| self.swap_now((k, e, v, Some(ttl)));
        traced(span, journal::through(self.journal.as_deref(), "blackboard.compare-and-swap-expiring", args, swap))
            .await
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, Error>> {
        let span = span("blackboard.delete", &key);
        traced(span, journal::through(self.journal.as_deref(), "blackboard.delete", (key,), |a| self.delete_now(a)))
            .await
    }

    async fn list(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, Error>> {
        let span = span("blackboard.list", &prefix);
        traced(span, journal::through(self.journal.as_deref(), "blackboard.list", (prefix,), |a| self.list_now(a)))
            .await
    }

    async fn watch(
        &mut self,
        prefix: String,
        after: u64,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<Change>, Error>> {
        let span = span("blackboard.watch", &prefix);
        let args = (prefix, after, timeout_ms);
        traced(span, journal::through(self.journal.as_deref(), "blackboard.watch", args, |a| self.watch_now(a))).await
    }
}

/// [`HasData`] marker for the `blackboard` interface.
pub struct Blackboard;

impl HasData for Blackboard {
    type Data<'a> = &'a mut BoardCtx;
}

impl super::Capability for BoardCtx {
    const INTERFACE: &'static str = "blackboard";

    fn new(call: &Arc<CallContext>, lent: &super::Lent) -> Self {
        BoardCtx::new(call.clone(), lent.board.clone(), lent.grants.clone())
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::blackboard::add_to_linker::<T, Blackboard>(linker, get)
    }
}
