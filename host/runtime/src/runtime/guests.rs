//! The guest threads: where wasm runs, apart from the threads that accept,
//! parse, authenticate and route requests.
//!
//! A computing guest keeps its thread until its next epoch tick, and one
//! that holds a CPU slot nobody else wants keeps computing past its ticks.
//! On the host's own runtime that starves every other task of that thread:
//! two spinning guests of one tenant on a 2-core host held another tenant's
//! HTTP requests for up to 1.3 s, though its invocation took 0.3 ms. So an
//! invocation that computes for a whole tick on its caller's thread moves to
//! a runtime of its own, one per process, made at the first move
//! ([`crate::sandbox::threads`]): the host's threads then wait for a core,
//! which the OS hands over within a time slice, never for a guest's whole
//! run. One shorter than a tick (most) ends where it started: a hand-over
//! between threads costs it 85–140 µs here, more than it runs — unless its
//! tenant already runs more invocations than the machine has cores
//! ([`busy`]) while the host is shared (another tenant's invocations ran
//! beside one within the last ten seconds,
//! [`RuntimeMetrics::shared`](super::metrics::RuntimeMetrics::shared)):
//! then it starts on the guest threads. A tenant alone on the host has
//! nobody to be kept from. The pool has two threads more than the machine
//! has cores, so a moved invocation finds a thread while the holders of
//! every CPU slot compute.
//!
//! The tick that moves an invocation may find it just back from a wait (an
//! LLM's answer) rather than computing: its callback runs at the guest's
//! first check after the tick. At 64 concurrent requests, each waiting
//! about 8 ms on a 10 ms tick, most are moved so, and a third of the serving
//! process's CPU runs on the guest threads. Counting only the time an
//! invocation's polls held the thread kept them all on the host's threads
//! and cost more, not less: 187–192 µs of CPU a request against 169–184
//! (`--bench gateway`, `http-key`, three alternating runs, 2026-12-06). So
//! the rule stays the tick.

use crate::sandbox::threads;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
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
            .on_thread_start(|| {
                threads::enter_guest_thread();
                lower_priority();
            })
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

/// Where an invocation is polled: on its caller's thread until it asks to
/// move, then on the guest threads.
enum Place<F: Future> {
    Here {
        work: Pin<Box<F>>,
        moving: Arc<AtomicBool>,
    },
    There(Abort<F::Output>),
    /// Between the two, for a moment of `poll`.
    Moved,
}

/// An invocation that moves to the guest threads once it has computed a tick.
struct Moving<F: Future>(Place<F>);

impl<F> Future for Moving<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Place::Here { work, moving } = &mut self.0 {
            let polled = threads::polling(moving, || work.as_mut().poll(cx));
            if polled.is_ready() || !moving.load(Ordering::Relaxed) {
                return polled;
            }
            let Some(pool) = pool() else { return Poll::Pending };
            // The work is boxed: moving the box moves no state the guest holds.
            if let Place::Here { work, .. } = std::mem::replace(&mut self.0, Place::Moved) {
                self.0 = Place::There(Abort(pool.spawn(work)));
            }
        }
        let Place::There(task) = &mut self.0 else { unreachable!("moved above") };
        match Pin::new(&mut task.0).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(done)) => Poll::Ready(done),
            Poll::Ready(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only `Abort::drop` aborts it, and the pool is never shut down: a
            // task is cancelled only when nobody waits for it any more.
            Poll::Ready(Err(e)) => unreachable!("an invocation awaited was cancelled: {e}"),
        }
    }
}

/// Runs `work` (an invocation) where it starts, and on the guest threads
/// once it has computed a whole tick (see the module docs) — or there from
/// the start when its tenant is `busy`; a panic in it goes on in the caller,
/// as if it had run there.
///
/// Boxed at once: an invocation's state is kilobytes, and the futures
/// that await this one would otherwise hold and move it.
pub(super) fn run<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
    busy: bool,
) -> impl Future<Output = T> + Send + 'static {
    let work = Box::pin(work);
    async move {
        match pool() {
            Some(pool) => placed(pool, work, busy).await,
            None => work.await,
        }
    }
}

/// `work` on its caller's thread, or on `pool` when `busy`.
fn placed<F>(pool: &tokio::runtime::Runtime, work: Pin<Box<F>>, busy: bool) -> Moving<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match busy {
        true => Moving(Place::There(Abort(pool.spawn(work)))),
        false => Moving(Place::Here { work, moving: Arc::default() }),
    }
}

/// Invocations of one tenant running at once past which its next ones start
/// on the guest threads, on a shared host: as many as the machine has cores. A tenant running
/// more than the machine can has its instantiations and first ticks (a wave
/// of hundreds when a flood of sleeping requests is admitted at once) spent
/// at the guests' lower priority, not on the threads that answer requests.
pub(super) fn busy() -> i64 {
    static CORES: OnceLock<i64> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an epoch tick does off the guest threads: asks to move, and
    /// yields when the invocation will.
    async fn tick() -> bool {
        let asked = threads::ask_to_move();
        if asked {
            tokio::task::yield_now().await;
        }
        asked
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_invocation_runs_on_its_callers_thread_until_a_tick_then_on_the_guest_threads() {
        let (before, asked, after) = run(
            async {
                let before = threads::on_guest_thread();
                let asked = tick().await;
                (before, asked, threads::on_guest_thread())
            },
            false,
        )
        .await;
        assert_eq!((before, asked, after), (false, true, true));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_busy_tenants_invocation_starts_on_the_guest_threads_and_is_not_asked_to_move_again() {
        let (there, asked) = run(async { (threads::on_guest_thread(), tick().await) }, true).await;
        assert_eq!((there, asked), (true, false));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panic_in_a_moved_invocation_goes_on_in_its_caller() {
        let caller = tokio::spawn(run(
            async {
                tick().await;
                panic!("the agent's host code panicked");
            },
            false,
        ));
        let panic = caller.await.expect_err("the caller panics too").into_panic();
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"the agent's host code panicked"));
    }
}
