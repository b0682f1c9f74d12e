//! State one server shares across its connections and dialects: the script,
//! the settings, the counters and the request log.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::behavior::{Behavior, Chaos, DEFAULT_REPLY, Fault, RateLimitHeaders, Reply};
use crate::record::RequestLog;

/// Settings that change only on command; requests read a snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct Settings {
    pub default: Arc<Behavior>,
    pub chaos: Option<Chaos>,
    pub rate_limit: Option<RateLimitHeaders>,
}

impl Settings {
    /// The reply that faults shaping a successful answer start from.
    pub fn base_reply(&self) -> &Reply {
        match &*self.default {
            Behavior::Reply(reply) => reply,
            Behavior::Fault(_) => &DEFAULT_REPLY,
        }
    }
}

/// What one request gets.
pub(crate) struct Turn {
    /// Its number since start (or the last clear), from 0.
    pub index: u64,
    pub behavior: Arc<Behavior>,
    pub settings: Arc<Settings>,
}

pub(crate) struct Shared {
    script: Mutex<VecDeque<Behavior>>,
    /// The script's length, so that the common case (no script) takes no lock.
    scripted: AtomicUsize,
    /// Behind a read-write lock: readers clone an `Arc` and leave; writers are tests.
    settings: RwLock<Arc<Settings>>,
    total: AtomicU64,
    /// Unscripted requests since the last `set_chaos` or clear: the chaos index.
    unscripted: AtomicU64,
    pub log: RequestLog,
    /// Turns true when the server shuts down; waits end early on it.
    closing: watch::Sender<bool>,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            script: Mutex::default(),
            scripted: AtomicUsize::new(0),
            settings: RwLock::default(),
            total: AtomicU64::new(0),
            unscripted: AtomicU64::new(0),
            log: RequestLog::default(),
            closing: watch::Sender::new(false),
        }
    }

    /// Takes the next behavior: the script's head, else chaos, else the default.
    pub fn next_turn(&self) -> Turn {
        let index = self.total.fetch_add(1, Ordering::Relaxed);
        let settings = self.settings();
        if self.scripted.load(Ordering::Acquire) > 0 {
            let mut script = self.script.lock();
            if let Some(behavior) = script.pop_front() {
                self.scripted.store(script.len(), Ordering::Release);
                return Turn { index, behavior: Arc::new(behavior), settings };
            }
        }
        let chaos_index = self.unscripted.fetch_add(1, Ordering::Relaxed);
        let behavior = match settings.chaos.as_ref().and_then(|chaos| chaos.fault_for(chaos_index)) {
            Some(fault) => Arc::new(Behavior::Fault(fault)),
            None => settings.default.clone(),
        };
        Turn { index, behavior, settings }
    }

    /// The turn of a request whose body is not JSON: refused as invalid,
    /// leaving the script and the chaos sequence untouched.
    pub fn rejected_turn(&self) -> Turn {
        let index = self.total.fetch_add(1, Ordering::Relaxed);
        Turn { index, behavior: Arc::new(Behavior::Fault(Fault::InvalidRequest)), settings: self.settings() }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    fn update(&self, change: impl FnOnce(&mut Settings)) {
        let mut settings = self.settings.write();
        change(Arc::make_mut(&mut settings));
    }

    pub fn push(&self, behaviors: impl IntoIterator<Item = Behavior>) {
        let mut script = self.script.lock();
        script.extend(behaviors);
        self.scripted.store(script.len(), Ordering::Release);
    }

    pub fn set_default(&self, behavior: Behavior) {
        self.update(|s| s.default = Arc::new(behavior));
    }

    pub fn set_chaos(&self, chaos: Option<Chaos>) {
        self.update(|s| s.chaos = chaos);
        self.unscripted.store(0, Ordering::Relaxed);
    }

    pub fn set_rate_limit(&self, rate_limit: Option<RateLimitHeaders>) {
        self.update(|s| s.rate_limit = rate_limit);
    }

    pub fn request_count(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Empties the script and the log and zeroes the counters; settings stay.
    pub fn clear(&self) {
        let script = {
            let mut script = self.script.lock();
            self.scripted.store(0, Ordering::Release);
            std::mem::take(&mut *script)
        };
        drop(script);
        self.log.clear();
        self.total.store(0, Ordering::Relaxed);
        self.unscripted.store(0, Ordering::Relaxed);
    }

    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A handle that waits can watch to end early at shutdown.
    pub fn closing(&self) -> Closing {
        Closing(self.closing.subscribe())
    }
}

/// Tells waits that the server is shutting down, so that no stall outlives it.
#[derive(Clone)]
pub(crate) struct Closing(watch::Receiver<bool>);

impl Closing {
    /// Resolves when the server starts shutting down.
    pub async fn closed(&mut self) {
        let _ = self.0.wait_for(|closing| *closing).await;
    }

    /// Sleeps for `duration`; false if the server began shutting down first.
    pub async fn pause(&mut self, duration: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            () = self.closed() => false,
        }
    }
}
