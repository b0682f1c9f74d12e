//! The guest threads: where wasm runs, apart from the threads that accept,
//! parse, authenticate and route requests.
//!
//! A computing guest keeps its thread until its next epoch tick, and one
//! that holds a CPU slot nobody else wants keeps computing past its ticks.
//! On the host's own runtime that starves every other task of that thread:
//! two spinning guests of one tenant on a 2-core host held another tenant's
//! HTTP requests for up to 1.3 s, though its invocation took 0.3 ms. So each
//! invocation is a task on a runtime of its own, one per process, made at
//! the first invocation: the host's threads then wait for a core, which the
//! OS hands over within a time slice, never for a guest's tick. The pool has
//! two threads more than the machine has cores, so a new invocation finds a
//! thread to start on while the holders of every CPU slot compute.

use std::future::Future;
use std::sync::OnceLock;
use tokio::task::JoinHandle;

/// The pool, or `None` when its threads could not be started (then guests
/// run on the caller's runtime, as before there was a pool).
static POOL: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();

fn pool() -> Option<&'static tokio::runtime::Runtime> {
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let built = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores + 2)
            .thread_name("paddock-guest")
            .on_thread_start(lower_priority)
            .enable_all()
            .build();
        match built {
            Ok(pool) => Some(pool),
            Err(e) => {
                tracing::error!("cannot start the guest threads ({e}); guests run on the host's threads");
                None
            }
        }
    })
    .as_ref()
}

/// How much less CPU a guest thread gets than a host thread when both want a
/// core (Linux nice values: +10 weighs about a tenth of 0). Guests still get
/// every core nobody else wants.
const GUEST_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`GUEST_NICE`]: the host's threads
/// (accepting, parsing, routing) then win a contended core at once.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only reads its arguments; on Linux, PRIO_PROCESS
    // with id 0 names the calling thread alone.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, GUEST_NICE);
    }
}

/// Aborts the task when the caller stops waiting for it (a cancelled flow,
/// a timed-out caller), so no invocation outlives its caller.
struct Abort<T>(JoinHandle<T>);

impl<T> Drop for Abort<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work` (an invocation) on the guest threads and waits for it; a panic
/// in it goes on in the caller, as if it had run there.
pub(super) async fn run<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let Some(pool) = pool() else { return work.await };
    let mut task = Abort(pool.spawn(work));
    match (&mut task.0).await {
        Ok(done) => done,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // Only `Abort::drop` aborts it, and the pool is never shut down: a
        // task is cancelled only when nobody waits for it any more.
        Err(e) => unreachable!("an invocation awaited was cancelled: {e}"),
    }
}
