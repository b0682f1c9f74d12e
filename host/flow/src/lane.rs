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
//! lane written before the item counts as done, so one item's write never
//! carries (or fails with) another's.

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

    /// Writes what the lane holds, if anything; why it was refused, at the
    /// path of the last step in it.
    fn write(&self, ctx: &Ctx) -> Result<(), StepErr> {
        let done = self.take();
        let Some((last, _)) = done.last() else { return Ok(()) };
        ctx.store
            .put_steps(&ctx.run, super::lease::this_process(), &done, None)
            .map_err(|e| StepErr::new(&last.path, e))
    }

    /// Writes what the lane holds; `out`, or why the write was refused
    /// when `out` was a success.
    pub(crate) fn close(&self, ctx: &Ctx, out: Out) -> Out {
        match self.write(ctx) {
            Err(e) if out.is_ok() => Err(e),
            _ => out,
        }
    }
}

impl Ctx {
    /// Writes the task's finished steps now: before it waits on work of
    /// other tasks (a fan-out's items), which writes nothing of this lane.
    pub(super) fn write_lane(&self) -> Result<(), StepErr> {
        Lane::current().map_or(Ok(()), |lane| lane.write(self))
    }

    /// Writes a checkpoint, with the task's finished steps before it in the
    /// same commit; the step after it starts only once it is stored.
    pub(super) fn record(&self, rec: StepRecord) -> Result<(), StepErr> {
        let done = Lane::current().map(|l| l.take()).unwrap_or_default();
        self.store
            .put_steps(&self.run, super::lease::this_process(), &done, Some(&rec))
            .map_err(|e| StepErr::new(&rec.path, e))?;
        self.checkpoints.lock().insert(rec.path.clone(), rec);
        Ok(())
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
