//! Tiered compilation (`engine.compiler = "tiered"`, the default): a version
//! whose optimized code is not in the code cache serves at once from code
//! Winch compiles (five to seven times faster than Cranelift), and its
//! optimized code, compiled by Cranelift on one thread in the background, is
//! swapped in under the same version when ready (`Agent::swap_code`).
//!
//! Nothing else sees the swap: the version id, the slot, the runs pinned to
//! the version and their journals stay as they were; an invocation running
//! on Winch's code ends on it. Both codes are kept in the code cache by
//! their engine's hash, so a restart maps the optimized code at once, or,
//! after a crash before it was ready, the baseline code while Cranelift
//! compiles again.
//!
//! The optimizing compiles run one at a time on a thread of the lowest
//! priority, each on that thread alone (no parallel compilation on a tiered
//! host's Cranelift engine), so they take only the CPU that serving leaves.
//!
//! Winch's engine allocates its instances on demand (no pool reserved for a
//! few seconds of use) with the same fuel, epochs and stack limits, ticked
//! by its own epoch thread; each invocation's memory, table and instance
//! limits are its store's limiter, which holds on either engine.

use super::agent::{Agent, Code};
use super::metrics::{CacheLabels, count_optimized};
use crate::engine::{self, EpochTicker, memory};
use crate::plugins::cache::{CodeCache, Compiled};
use crate::plugins::load::{self, ComponentFile, LoadError, Prepared};
use crate::sandbox::{self, AgentState};
use paddock_config::Settings;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Weak};
use std::time::Instant;
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// Winch's engine, and the queue of optimizing compiles.
pub(super) struct Tiers {
    engine: Engine,
    linker: Linker<AgentState>,
    http_linker: Linker<AgentState>,
    cache: Option<Arc<CodeCache>>,
    queue: Sender<Upgrade>,
    pending: Arc<Pending>,
    _ticker: EpochTicker,
}

/// Compiles queued or running, and a signal when the count falls to zero.
#[derive(Default)]
struct Pending {
    count: parking_lot::Mutex<usize>,
    done: parking_lot::Condvar,
}

impl Pending {
    fn add(&self) {
        *self.count.lock() += 1;
    }

    /// Whether the compile running is the only one queued or running.
    fn is_last(&self) -> bool {
        *self.count.lock() <= 1
    }

    fn finish(&self) {
        let mut count = self.count.lock();
        *count = count.saturating_sub(1);
        if *count == 0 {
            self.done.notify_all();
        }
    }
}

/// What compiles the optimized code: the host's own engine, linkers and cache.
pub(super) struct Optimizer {
    pub engine: Engine,
    pub linker: Linker<AgentState>,
    pub http_linker: Linker<AgentState>,
    pub cache: Option<Arc<CodeCache>>,
    pub loads: Family<CacheLabels, Counter>,
}

/// A version serving Winch's code, to compile with Cranelift.
struct Upgrade {
    agent: Weak<Agent>,
    file: ComponentFile,
    http: bool,
    /// Winch's code compiled for it, to store in its cache first.
    baseline: Option<(Arc<CodeCache>, Component)>,
    /// Whether to compile the optimized code too (a one-shot process, which
    /// ends before it could serve it, only stores the baseline code).
    optimize: bool,
}

impl Tiers {
    /// Winch's engine for `settings`, and the thread compiling optimized code
    /// with `optimizer`, which ends when these tiers are dropped.
    pub fn start(settings: &Settings, optimizer: Optimizer) -> wasmtime::Result<Tiers> {
        let engine = engine::baseline(&settings.engine, &settings.ceiling)?;
        let ticker = EpochTicker::start(&engine, settings.engine.epoch_tick)
            .map_err(|e| wasmtime::format_err!("cannot start the baseline engine's epoch thread: {e}"))?;
        let (queue, jobs) = std::sync::mpsc::channel();
        let pending = Arc::new(Pending::default());
        let counted = pending.clone();
        std::thread::Builder::new()
            .name("paddock-tiering".into())
            .spawn(move || {
                lowest_priority();
                optimize_each(&optimizer, &jobs, &counted)
            })
            .map_err(|e| wasmtime::format_err!("cannot start the tiering thread: {e}"))?;
        Ok(Tiers {
            linker: sandbox::linker(&engine)?,
            http_linker: sandbox::http_linker(&engine)?,
            cache: settings.plugins.code_cache.as_ref().map(|dir| Arc::new(CodeCache::new(dir, &engine))),
            queue,
            pending,
            engine,
            _ticker: ticker,
        })
    }

    /// Winch's code for `file`, compiled or mapped from the cache, with the
    /// code compiled now, which the tiering thread stores later
    /// ([`optimize_later`](Self::optimize_later)); an error when Winch cannot
    /// compile it (the caller then asks Cranelift, whose error names what is
    /// wrong with the file, if anything is).
    pub fn compile(&self, file: &ComponentFile, http: bool) -> Result<(Prepared, Option<Component>), LoadError> {
        let linker = if http { &self.http_linker } else { &self.linker };
        let (prepared, unstored) = load::compile_unstored(&self.engine, (linker, http), file, self.cache.as_deref())?;
        Ok((Prepared { compiled: Compiled::Baseline, ..prepared }, unstored))
    }

    /// Queues the optimizing compile of `agent` (when `optimize`), serving
    /// `baseline` code compiled from `file`; its code is stored first when
    /// compiled now.
    pub fn optimize_later(
        &self,
        agent: &Arc<Agent>,
        file: ComponentFile,
        http: bool,
        baseline: Option<Component>,
        optimize: bool,
    ) {
        let baseline = baseline.and_then(|component| Some((self.cache.clone()?, component)));
        if baseline.is_none() && !optimize {
            return;
        }
        let upgrade = Upgrade { agent: Arc::downgrade(agent), file, http, baseline, optimize };
        self.pending.add();
        if self.queue.send(upgrade).is_err() {
            self.pending.finish();
            tracing::warn!(agent = &*agent.name, "the tiering thread has stopped: baseline code keeps serving");
        }
    }

    /// Waits until no optimizing compile is queued or running, at most
    /// `timeout`; whether none is.
    pub fn wait(&self, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut count = self.pending.count.lock();
        while *count > 0 {
            if self.pending.done.wait_until(&mut count, deadline).timed_out() {
                break;
            }
        }
        *count == 0
    }
}

/// Gives the calling thread the lowest priority (nice 19): it then runs
/// only on what the host's other threads leave. On Linux a nice value is a
/// thread's own; where it cannot be set, the thread runs as it is.
fn lowest_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `gettid` has no preconditions; `setpriority` on this
        // thread's id changes only this thread's nice value.
        let changed = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19)
        };
        if changed != 0 {
            tracing::debug!("the tiering thread keeps its priority: {}", std::io::Error::last_os_error());
        }
    }
}

/// Compiles each queued version in turn, until the queue is closed.
fn optimize_each(optimizer: &Optimizer, jobs: &Receiver<Upgrade>, pending: &Pending) {
    while let Ok(job) = jobs.recv() {
        // A compile that panics costs its version the optimized code, not the
        // versions queued behind it (nor `wait`ers their answer).
        let named = job.agent.upgrade().map_or_else(String::new, |a| format!("{} {}", a.name, a.version));
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| optimize(optimizer, job)));
        if compiled.is_err() {
            tracing::error!(agent = named, "the optimizing compile panicked; the baseline code keeps serving");
        }
        // Compiles queued back to back reuse one another's memory; the last
        // hands it back (before `wait`ers hear that none is left).
        if compiled.unwrap_or(true) && pending.is_last() {
            memory::after_compiling();
        }
        pending.finish();
    }
}

/// Compiles `job`'s optimized code and swaps it in, unless its version is
/// gone; whether it compiled.
fn optimize(optimizer: &Optimizer, job: Upgrade) -> bool {
    if let Some((cache, component)) = &job.baseline {
        cache.keep(component, &job.file.hash);
    }
    // A version replaced before its turn needs no optimized code.
    if !job.optimize || job.agent.strong_count() == 0 {
        return false;
    }
    let started = Instant::now();
    let linker = if job.http { &optimizer.http_linker } else { &optimizer.linker };
    let compiled = load::compile(&optimizer.engine, (linker, job.http), &job.file, optimizer.cache.as_deref());
    let Some(agent) = job.agent.upgrade() else { return true };
    match compiled {
        Ok(prepared) => {
            count_optimized(&optimizer.loads);
            agent.swap_code(Code { pre: prepared.pre, compiled: prepared.compiled });
            tracing::info!(
                agent = &*agent.name,
                version = &*agent.version,
                ms = started.elapsed().as_millis() as u64,
                "optimized code serving"
            );
        }
        Err(e) => tracing::warn!(
            agent = &*agent.name,
            version = &*agent.version,
            "optimized code not compiled, the baseline code keeps serving: {e}"
        ),
    }
    true
}
