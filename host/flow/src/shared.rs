//! Runs' events through a store that every host shares
//! ([`FlowStore::keeps_events`]): the host running a run writes its events
//! in batches, off the run's tasks ([`Outbox`]), and any host follows them
//! ([`Follow`]), woken by the store's doorbell for the run.
//!
//! A run's events are numbered by the store, on from the last whichever host
//! wrote it (a resumed run goes on where its events stopped), so a client
//! that reconnects to another host with `Last-Event-ID` misses nothing.

use super::bells::{Bell, Doorbells, rung};
use super::events::{Event, Sink};
use super::store::{FlowStore, RunRecord, RunStatus};
use super::{Flows, lease};
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Events waiting to be written; past this many, new ones are dropped (and
/// the drop logged) rather than slow a run down.
const QUEUE: usize = 8_192;
/// The most events one write carries.
const BATCH: usize = 512;
/// How long the writer waits for more events before it writes a batch.
const LINGER: Duration = Duration::from_millis(2);
/// How often a follower with no ring looks again (the store's notification
/// may be lost while its host reconnects).
const LOOK_AGAIN: Duration = Duration::from_secs(5);
/// How long a follower waits for a finished run's last events before it
/// ends the stream with the run's record.
const LAST_EVENTS: Duration = Duration::from_millis(750);

/// The writer of this host's runs' events to the shared store.
pub(crate) struct Outbox {
    queue: mpsc::Sender<Queued>,
}

enum Queued {
    /// An event of a run, as JSON.
    Event(Arc<str>, String),
    /// Answered once everything queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

impl Outbox {
    /// A writer to `store`, on a task of the current tokio runtime (`None` outside one).
    pub(crate) fn start(store: Arc<dyn FlowStore>) -> Option<Outbox> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (queue, waiting) = mpsc::channel(QUEUE);
        runtime.spawn(write(store, waiting));
        Some(Outbox { queue })
    }

    /// A sink for run `run` that queues each event for the store, then
    /// passes it on to `then`.
    pub(crate) fn sink(&self, run: &str, then: Option<Sink>) -> Sink {
        let (queue, run): (_, Arc<str>) = (self.queue.clone(), Arc::from(run));
        let warned = Mutex::new(false);
        Arc::new(move |event: Event| {
            let text = serde_json::to_string(&event).unwrap_or_default();
            if queue.try_send(Queued::Event(run.clone(), text)).is_err()
                && !std::mem::replace(&mut *warned.lock(), true)
            {
                tracing::warn!(%run, "the events of run {run} come faster than the flow store takes them; some are not kept for other hosts");
            }
            if let Some(then) = &then {
                then(event);
            }
        })
    }

    /// Waits until every event queued so far is written (or refused).
    pub(crate) async fn flush(&self) {
        let (done, written) = tokio::sync::oneshot::channel();
        if self.queue.send(Queued::Flush(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

/// Writes what `waiting` brings, a batch per run at a time, until every
/// sender is gone.
async fn write(store: Arc<dyn FlowStore>, mut waiting: mpsc::Receiver<Queued>) {
    let mut batch = Vec::with_capacity(BATCH);
    // Runs whose events were refused, each logged once.
    let mut refused: HashSet<Arc<str>> = HashSet::new();
    while waiting.recv_many(&mut batch, BATCH).await > 0 {
        // A moment for the events that come together (a step's start and
        // end, a fan-out's items) to share one write.
        if batch.len() < BATCH && !batch.iter().any(|q| matches!(q, Queued::Flush(_))) {
            tokio::time::sleep(LINGER).await;
            while batch.len() < BATCH
                && let Ok(more) = waiting.try_recv()
            {
                batch.push(more);
            }
        }
        let mut runs: Vec<(Arc<str>, Vec<String>)> = Vec::new();
        let mut flushes = Vec::new();
        for queued in batch.drain(..) {
            match queued {
                Queued::Event(run, text) => match runs.iter_mut().find(|(r, _)| *r == run) {
                    Some((_, texts)) => texts.push(text),
                    None => runs.push((run, vec![text])),
                },
                Queued::Flush(done) => flushes.push(done),
            }
        }
        for (run, texts) in runs {
            let (store, id) = (store.clone(), run.clone());
            let written = tokio::task::spawn_blocking(move || store.add_events(&id, lease::this_process(), &texts))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            if let Err(e) = written {
                if refused.len() >= 1_024 {
                    refused.clear();
                }
                if refused.insert(run.clone()) {
                    tracing::warn!(%run, "events of run {run} are not kept for other hosts: {e}");
                }
            }
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

impl Flows {
    /// The writer of runs' events to the store, when it keeps them
    /// (started on first use, on the current tokio runtime).
    pub(crate) fn outbox(&self) -> Option<Arc<Outbox>> {
        let store = &self.store;
        let start = || store.keeps_events().then(|| Outbox::start(store.clone()).map(Arc::new)).flatten();
        self.outbox.get_or_init(start).clone()
    }

    /// Waits until the events of this host's runs so far are in the store
    /// (what a process does before it exits).
    pub async fn flush_events(&self) {
        if let Some(Some(outbox)) = self.outbox.get() {
            outbox.flush().await;
        }
    }

    /// Follows run `id`'s events from number `from` in the store, when the
    /// store keeps them for every host; `None` when only the host running
    /// a run has its events (its [`hub`](Flows::hub)).
    pub fn follow(&self, id: &str, from: u64) -> Option<Follow> {
        self.store.keeps_events().then(|| Follow::new(self.store.clone(), id, from))
    }
}

/// A follower of one run's events in the shared store.
pub struct Follow {
    store: Arc<dyn FlowStore>,
    bell: Option<Bell>,
    run: String,
    /// The number of the next event.
    next: u64,
    read: VecDeque<(u64, String)>,
    /// The run's last event was read.
    ended: bool,
}

impl Follow {
    /// Follows run `run` in `store` from its event numbered `from`.
    pub fn new(store: Arc<dyn FlowStore>, run: &str, from: u64) -> Follow {
        let bell = store.bells().map(|bells: Arc<Doorbells>| bells.bell(format!("events {run}")));
        Follow { store, bell, run: run.to_string(), next: from, read: VecDeque::new(), ended: false }
    }

    /// The next event and its number, waiting for it while the run goes on;
    /// `None` after the last. A run that ended without its last event
    /// reaching the store (its host died) ends with one made from its record.
    pub async fn next(&mut self) -> Option<(u64, String)> {
        let mut finished_since: Option<tokio::time::Instant> = None;
        loop {
            if let Some((n, text)) = self.read.pop_front() {
                self.next = n + 1;
                self.ended = kind(&text) == Some("run-finished");
                return Some((n, text));
            }
            if self.ended {
                return None;
            }
            let ring = self.bell.as_ref().map(Bell::next);
            let (store, run, from) = (self.store.clone(), self.run.clone(), self.next);
            let found = tokio::task::spawn_blocking(move || {
                let events = store.events(&run, from, 256)?;
                let record = if events.is_empty() { store.run(&run)? } else { None };
                Ok::<_, String>((events, record))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            let (events, record) = match found {
                Ok(found) => found,
                Err(e) => {
                    tracing::warn!(run = %self.run, "cannot follow the events of run {}: {e}", self.run);
                    return None;
                }
            };
            if !events.is_empty() {
                self.read.extend(events);
                continue;
            }
            let wait = match record {
                Some(r) if r.status != RunStatus::Running => {
                    let since = *finished_since.get_or_insert_with(tokio::time::Instant::now);
                    if since.elapsed() >= LAST_EVENTS {
                        self.ended = true;
                        let text = serde_json::to_string(&finished(&r)).unwrap_or_default();
                        return Some((self.next, text));
                    }
                    LAST_EVENTS / 3
                }
                Some(_) => LOOK_AGAIN,
                None => return None,
            };
            tokio::select! {
                () = rung(ring) => {}
                () = tokio::time::sleep(if self.bell.is_some() { wait } else { wait.min(LAST_EVENTS / 3) }) => {}
            }
        }
    }
}

/// The kind of event `text` is (`step-started`…): the outbox writes each
/// as serde writes an [`Event`], its tag first.
pub fn kind(text: &str) -> Option<&str> {
    text.strip_prefix(r#"{"event":""#)?.split('"').next()
}

/// The `run-finished` event of a run that has ended, made from its record.
pub fn finished(run: &RunRecord) -> Event {
    Event::RunFinished {
        run: run.id.clone(),
        status: run.status.word().into(),
        output: run.output.as_deref().and_then(|o| serde_json::from_str(o).ok()),
        error: run.error.clone(),
        ms: run.updated_ms.saturating_sub(run.created_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_of_an_event_is_read_from_its_text_as_the_outbox_writes_it() {
        let record = crate::testing::run("r", "t", 1, RunStatus::Succeeded);
        let text = serde_json::to_string(&finished(&record)).unwrap();
        assert_eq!(kind(&text), Some("run-finished"));
        let started = serde_json::to_string(&Event::StepReused { step: "main".into() }).unwrap();
        assert_eq!(kind(&started), Some("step-reused"));
        assert_eq!(kind("not an event"), None);
    }
}
