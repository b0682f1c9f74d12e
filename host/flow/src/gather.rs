//! Group commit across a run's tasks: the checkpoints that tasks of one run
//! write at the same moment (the items of a fan-out starting and ending)
//! go to the store in one commit.
//!
//! A commit costs much the same for one record as for many: on SQLite the
//! WAL's frames and its file and shared-memory locks, about 17 syscalls of a
//! few µs each in a VM; on PostgreSQL a round trip per statement and the
//! commit's. So a task with records to write queues them. When no write is
//! under way it writes the queue itself, its own records first; else it
//! waits, holding no thread, for the writer to write them or to hand it the
//! queue. Each writer writes one batch, then hands what queued meanwhile to
//! the first task that queued it. A task whose records are written learns
//! the outcome of the commit that holds them, and goes on only then.
//!
//! A batch the store refuses is written again a task at a time, so a
//! refusal (a bound, a record too large) fails only the task whose records
//! it was; a lost lease fails each, as it would alone. A task alone (a
//! sequence's steps) writes at once, as without this.

use super::store::{Finished, StepRecord};
use parking_lot::Mutex;
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// How a batch is written: in one commit, or refused as a whole
/// ([`FlowStore::put_steps`](super::store::FlowStore::put_steps) of the run).
pub(crate) type Put<'a> = &'a (dyn Fn(&[Finished], &[StepRecord]) -> Result<(), String> + Sync);

/// A run's writes from tasks at once, gathered into shared commits.
#[derive(Default)]
pub(crate) struct Gather {
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Whether a task is writing a batch now.
    writing: bool,
    waiting: VecDeque<Waiting>,
}

/// One task's records: finished attempts with their journals, then the
/// checkpoints after them.
pub(crate) struct Records {
    pub(crate) done: Vec<Finished>,
    pub(crate) next: Vec<StepRecord>,
}

struct Waiting {
    records: Records,
    /// Where its outcome goes; none for the writer's own records.
    reply: Option<Reply>,
}

type Reply = oneshot::Sender<Turn>;

/// What a waiting task is told.
enum Turn {
    /// Its records are written, or why not.
    Written(Result<(), String>),
    /// It writes the next batch, starting with these, its own.
    Write(Records),
}

impl Gather {
    /// Writes `records` with `put`, in one commit with those of other tasks
    /// writing at once.
    pub(crate) async fn write(&self, put: Put<'_>, records: Records) -> Result<(), String> {
        let rx = {
            let mut queue = self.queue.lock();
            if !queue.writing {
                queue.writing = true;
                drop(queue);
                return self.lead(put, records);
            }
            let (reply, rx) = oneshot::channel();
            queue.waiting.push_back(Waiting { records, reply: Some(reply) });
            rx
        };
        let mut turn = Waiter { gather: self, put, rx: Some(rx) };
        let told = turn.rx.as_mut().expect("not yet told").await;
        turn.rx = None;
        match told {
            Ok(Turn::Written(result)) => result,
            Ok(Turn::Write(records)) => self.lead(put, records),
            Err(_) => Err("flow store: the batch holding this write was dropped unwritten".to_string()),
        }
    }

    /// Writes `own` with everything queued, tells each task its outcome,
    /// and hands the queue on (or ends the writing); `own`'s outcome.
    fn lead(&self, put: Put<'_>, own: Records) -> Result<(), String> {
        let _leading = Leading(self, std::thread::panicking());
        let mut own = Some(own);
        let mut result = None;
        loop {
            let mut batch: Vec<Waiting> =
                own.take().map(|records| Waiting { records, reply: None }).into_iter().collect();
            batch.extend(std::mem::take(&mut self.queue.lock().waiting));
            for (reply, written) in write_batch(put, batch) {
                match reply {
                    Some(reply) => drop(reply.send(Turn::Written(written))),
                    // The first batch holds `own`; a later one, a gone task's records.
                    None => {
                        result.get_or_insert(written);
                    }
                }
            }
            let mut queue = self.queue.lock();
            let Some(next) = queue.waiting.pop_front() else {
                queue.writing = false;
                break;
            };
            drop(queue);
            let reply = next.reply.expect("a waiting task has a reply");
            match reply.send(Turn::Write(next.records)) {
                Ok(()) => break,
                // That task is gone: its records go in the next batch here.
                Err(Turn::Write(records)) => own = Some(records),
                Err(Turn::Written(_)) => unreachable!("a turn to write was sent"),
            }
        }
        result.unwrap_or(Ok(()))
    }
}

/// The writer's hold on the queue. Should the store panic, the queue is
/// let go and emptied: each task waiting learns its write was dropped,
/// rather than waiting for ever. (A writer that began during another panic's
/// unwinding, a waiter's drop, lets go only by handing on as usual.)
struct Leading<'a>(&'a Gather, bool);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.1 {
            let mut queue = self.0.queue.lock();
            queue.writing = false;
            queue.waiting.clear();
        }
    }
}

/// A task waiting for its turn. Dropped before it learned it (its task
/// cancelled, as a fan-out's items are when the join is met), it writes the
/// batch it was handed, so the tasks behind it are not left waiting.
struct Waiter<'a> {
    gather: &'a Gather,
    put: Put<'a>,
    rx: Option<oneshot::Receiver<Turn>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        rx.close();
        if let Ok(Turn::Write(records)) = rx.try_recv() {
            let _ = self.gather.lead(self.put, records);
        }
    }
}

/// Writes `batch` in one commit, or (refused) each task's records alone;
/// each task's reply with its outcome.
fn write_batch(put: Put<'_>, batch: Vec<Waiting>) -> Vec<(Option<Reply>, Result<(), String>)> {
    let (mut done, mut next, mut parts) = (Vec::new(), Vec::new(), Vec::with_capacity(batch.len()));
    for Waiting { records, reply } in batch {
        let d = done.len()..done.len() + records.done.len();
        let n = next.len()..next.len() + records.next.len();
        done.extend(records.done);
        next.extend(records.next);
        parts.push((reply, d, n));
    }
    let written = put(&done, &next);
    if written.is_ok() || parts.len() == 1 {
        return parts.into_iter().map(|(reply, _, _)| (reply, written.clone())).collect();
    }
    parts.into_iter().map(|(reply, d, n)| (reply, put(&done[d], &next[n]))).collect()
}

#[cfg(test)]
mod tests;
