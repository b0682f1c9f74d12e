//! The live events of the runs a host executes, kept for subscribers
//! (`GET /v1/runs/{id}/events`): a subscriber that arrives late still reads a
//! run from its first event, and one that keeps up wakes as each event lands.
//!
//! Bounded: a run keeps its last [`KEEP_EVENTS`] events (a subscriber further
//! behind skips to the oldest kept), and a finished run's events stay until
//! [`KEEP_FINISHED`] runs finished after it, or the finished runs' events
//! pass [`KEEP_FINISHED_BYTES`] (the newest run's are always kept).

use super::events::{Event, Sink};
use super::metrics::FlowMetrics;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;

/// Events kept per run.
pub const KEEP_EVENTS: usize = 10_000;
/// Finished runs whose events are kept.
pub const KEEP_FINISHED: usize = 64;
/// The most bytes the events of finished runs keep (their outputs, mostly).
pub const KEEP_FINISHED_BYTES: u64 = 64 << 20;

/// The events of every run this host executes.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Runs>,
    metrics: FlowMetrics,
}

#[derive(Default)]
struct Runs {
    logs: HashMap<String, Arc<Log>>,
    /// Finished runs, oldest first, with the bytes of their events.
    finished: VecDeque<(String, u64)>,
    finished_bytes: u64,
}

/// One run's events.
#[derive(Default)]
struct Log {
    state: Mutex<LogState>,
    changed: Notify,
}

#[derive(Default)]
struct LogState {
    /// The number of events dropped from the front.
    dropped: usize,
    events: VecDeque<Arc<Event>>,
    /// About how many bytes the kept events take.
    bytes: u64,
    finished: bool,
}

/// About how many bytes `event` takes: its output or question, or a line.
fn weight(event: &Event) -> u64 {
    match event {
        Event::RunFinished { output: Some(v), .. } => serde_json::to_vec(v).map_or(0, |b| b.len() as u64),
        Event::ApprovalWaiting { question, .. } => question.len() as u64 + 256,
        _ => 256,
    }
}

/// What a subscriber reads next.
#[derive(Debug, PartialEq)]
pub enum Next {
    /// The event at the cursor; the cursor moves past it.
    Event(Arc<Event>),
    /// The run finished and every event was read.
    End,
}

impl Hub {
    /// The runs and steps counted from the events.
    pub fn metrics(&self) -> &FlowMetrics {
        &self.metrics
    }

    /// A sink for run `run` that keeps its events here, then passes each on to `then`.
    pub fn sink(self: &Arc<Hub>, run: &str, then: Option<Sink>) -> Sink {
        let log = {
            let mut inner = self.inner.lock();
            inner.logs.entry(run.to_string()).or_default().clone()
        };
        // A resumed run starts a fresh log.
        *log.state.lock() = LogState::default();
        let (hub, run) = (self.clone(), run.to_string());
        // The run's tenant and flow, from its first event, label its series.
        let labels: Mutex<(String, String)> = Mutex::default();
        Arc::new(move |event: Event| {
            if let Event::RunStarted { tenant, flow, .. } = &event {
                *labels.lock() = (tenant.clone(), flow.clone());
            }
            {
                let labels = labels.lock();
                hub.metrics.observe(&labels.0, &labels.1, &event);
            }
            let last = matches!(event, Event::RunFinished { .. });
            let event = Arc::new(event);
            {
                let mut state = log.state.lock();
                if state.events.len() == KEEP_EVENTS
                    && let Some(old) = state.events.pop_front()
                {
                    state.dropped += 1;
                    state.bytes = state.bytes.saturating_sub(weight(&old));
                }
                state.bytes += weight(&event);
                state.events.push_back(event.clone());
                state.finished |= last;
            }
            log.changed.notify_waiters();
            if last {
                hub.retire(&run);
            }
            if let Some(then) = &then {
                then(Arc::unwrap_or_clone(event));
            }
        })
    }

    /// A sink that only counts the events of run `run` of `flow` for
    /// `tenant` in the metrics, then passes each on to `then`: for runs
    /// whose events a store shared by hosts keeps.
    pub fn counting(self: &Arc<Hub>, tenant: &str, flow: &str, then: Option<Sink>) -> Sink {
        let (hub, tenant, flow) = (self.clone(), tenant.to_string(), flow.to_string());
        Arc::new(move |event: Event| {
            hub.metrics.observe(&tenant, &flow, &event);
            if let Some(then) = &then {
                then(event);
            }
        })
    }

    /// Marks run `run` finished without a `run-finished` event (it failed to
    /// start), so its subscribers end.
    pub fn close(&self, run: &str) {
        let log = self.inner.lock().logs.get(run).cloned();
        if let Some(log) = log {
            log.state.lock().finished = true;
            log.changed.notify_waiters();
            self.retire(run);
        }
    }

    fn retire(&self, run: &str) {
        let mut inner = self.inner.lock();
        let bytes = inner.logs.get(run).map_or(0, |l| l.state.lock().bytes);
        if let Some(at) = inner.finished.iter().position(|(r, _)| r == run) {
            let (_, was) = inner.finished.remove(at).unwrap_or_default();
            inner.finished_bytes -= was;
        }
        inner.finished.push_back((run.to_string(), bytes));
        inner.finished_bytes += bytes;
        while inner.finished.len() > KEEP_FINISHED
            || (inner.finished_bytes > KEEP_FINISHED_BYTES && inner.finished.len() > 1)
        {
            if let Some((old, bytes)) = inner.finished.pop_front() {
                inner.logs.remove(&old);
                inner.finished_bytes -= bytes;
            }
        }
    }

    /// Whether this host keeps events of run `run`.
    pub fn has(&self, run: &str) -> bool {
        self.inner.lock().logs.contains_key(run)
    }

    /// The next event of run `run` at `cursor` (the number of events read so
    /// far), waiting for it if the run goes on; `None` when this host keeps
    /// no events of the run.
    pub async fn next(&self, run: &str, cursor: &mut usize) -> Option<Next> {
        let log = self.inner.lock().logs.get(run).cloned()?;
        loop {
            // Registered before reading, so an event landing in between still wakes us.
            let changed = log.changed.notified();
            {
                let state = log.state.lock();
                *cursor = (*cursor).max(state.dropped);
                if let Some(event) = state.events.get(*cursor - state.dropped) {
                    *cursor += 1;
                    return Some(Next::Event(event.clone()));
                }
                if state.finished {
                    return Some(Next::End);
                }
            }
            changed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: usize) -> Event {
        Event::StepReused { step: format!("s{n}") }
    }

    fn finished(run: &str) -> Event {
        Event::RunFinished { run: run.into(), status: "succeeded".into(), output: None, error: None, ms: 1 }
    }

    #[tokio::test]
    async fn a_late_subscriber_reads_every_event_from_the_first_and_ends_with_the_run() {
        let hub = Arc::new(Hub::default());
        let sink = hub.sink("r", None);
        sink(step(0));
        sink(step(1));
        let mut cursor = 0;
        assert_eq!(hub.next("r", &mut cursor).await, Some(Next::Event(Arc::new(step(0)))));
        assert_eq!(hub.next("r", &mut cursor).await, Some(Next::Event(Arc::new(step(1)))));
        let waiting = {
            let hub = hub.clone();
            tokio::spawn(async move {
                let mut cursor = 2;
                let event = hub.next("r", &mut cursor).await;
                (event, hub.next("r", &mut cursor).await)
            })
        };
        tokio::task::yield_now().await;
        sink(finished("r"));
        assert_eq!(waiting.await.unwrap(), (Some(Next::Event(Arc::new(finished("r")))), Some(Next::End)));
        assert_eq!(hub.next("elsewhere", &mut 0).await, None);
    }

    #[tokio::test]
    async fn a_run_keeps_its_last_events_and_only_the_last_finished_runs_are_kept() {
        let hub = Arc::new(Hub::default());
        let sink = hub.sink("r", None);
        for n in 0..KEEP_EVENTS + 5 {
            sink(step(n));
        }
        let mut cursor = 0;
        assert_eq!(hub.next("r", &mut cursor).await, Some(Next::Event(Arc::new(step(5)))));
        assert_eq!(cursor, 6);
        for n in 0..=KEEP_FINISHED {
            hub.sink(&format!("f{n}"), None)(finished("f"));
        }
        assert!(!hub.has("f0"), "the oldest finished run is dropped");
        assert!(hub.has("f1") && hub.has(&format!("f{KEEP_FINISHED}")) && hub.has("r"));
        hub.close("r");
        let mut cursor = KEEP_EVENTS + 5;
        assert_eq!(hub.next("r", &mut cursor).await, Some(Next::End));
    }
}
