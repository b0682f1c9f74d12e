//! Group commit along a task: an agent step's success is kept in its
//! task's lane and written with the task's next checkpoint (in a sequence,
//! the next step's start) in one commit, or when the task ends (a run's
//! with the run's end: [`FlowStore::end_run`](super::store::FlowStore::end_run)).
//!
//! No agent runs, and no reader of the store sees a step's result, before
//! its lane is written: the step after it starts only once both are stored
//! (the step's `finished` event may go out first). A crash in between finds the step started and not
//! finished, and runs it again as its next attempt, as a crash while it ran
//! would. A fan-out's items run in tasks of their own, each with its own
//! lane written before the item counts as done. Items writing at once share
//! a commit ([`gather`](super::gather)), and a refused batch is written again
//! an item at a time, so one item's write never fails with another's.

use super::gather::Records;
use super::run::{Ctx, Out, StepErr};
use super::store::{Finished, StepRecord};
use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;

tokio::task_local! {
    static LANE: Lane;
}

/// A task's finished steps not yet written.
#[derive(Clone, Default)]
pub(crate) struct Lane(Arc<Mutex<Vec<Finished>>>);

impl Lane {
    /// Runs `work` with this lane as its task's.
    pub(crate) fn scope<F: Future>(&self, work: F) -> impl Future<Output = F::Output> {
        LANE.scope(self.clone(), work)
    }

    /// The lane of the task running now, if it has one.
    fn current() -> Option<Lane> {
        LANE.try_with(Lane::clone).ok()
    }

    pub(crate) fn take(&self) -> Vec<Finished> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Writes what the lane holds, if anything, in one commit with what
    /// other tasks of the run write at once; why it was refused, at the
    /// path of the last step in it.
    async fn write(&self, ctx: &Ctx) -> Result<(), StepErr> {
        let done = self.take();
        let Some(last) = done.last().map(|(step, _)| step.path.clone()) else { return Ok(()) };
        ctx.gather.write(&ctx.put(), Records { done, next: Vec::new() }).await.map_err(|e| StepErr::new(&last, e))
    }

    /// Writes what the lane holds; `out`, or why the write was refused
    /// when `out` was a success.
    pub(crate) async fn close(&self, ctx: &Ctx, out: Out) -> Out {
        match self.write(ctx).await {
            Err(e) if out.is_ok() => Err(e),
            _ => out,
        }
    }
}

impl Ctx {
    /// Writes the task's finished steps now: before it waits on work of
    /// other tasks (a fan-out's items), which writes nothing of this lane.
    pub(super) async fn write_lane(&self) -> Result<(), StepErr> {
        match Lane::current() {
            Some(lane) => lane.write(self).await,
            None => Ok(()),
        }
    }

    /// Writes a checkpoint, with the task's finished steps before it in the
    /// same commit (and with what other tasks of the run write at once);
    /// the step after it starts only once it is stored.
    pub(super) async fn record(&self, rec: StepRecord) -> Result<(), StepErr> {
        let done = Lane::current().map(|l| l.take()).unwrap_or_default();
        let records = Records { done, next: vec![rec.clone()] };
        self.gather.write(&self.put(), records).await.map_err(|e| StepErr::new(&rec.path, e))?;
        self.checkpoints.lock().insert(rec.path.clone(), rec);
        Ok(())
    }

    /// How the run's records are written: one commit of the store.
    fn put(&self) -> impl Fn(&[Finished], &[StepRecord]) -> Result<(), String> + Sync + '_ {
        |done, next| self.store.put_steps(&self.run, super::lease::this_process(), done, next)
    }

    /// Keeps a finished attempt's checkpoint and journal: in the task's
    /// lane, or written at once by a task without one.
    pub(super) fn keep_finished(&self, rec: &StepRecord, journal: Vec<paddock_journal::Entry>) -> Result<(), StepErr> {
        match Lane::current() {
            Some(lane) => {
                lane.0.lock().push((rec.clone(), journal));
                Ok(())
            }
            None => self
                .store
                .finish_step(&self.run, super::lease::this_process(), rec, &journal)
                .map_err(|e| StepErr::new(&rec.path, e)),
        }
    }
}
