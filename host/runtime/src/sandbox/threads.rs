//! Which invocations leave the thread they started on.
//!
//! An invocation starts on its caller's thread, so a short one costs no
//! hand-over between threads. At its first epoch tick off the guest threads
//! it has computed a whole tick: the epoch callback asks to move it
//! ([`ask_to_move`]) and yields, and its wrapper (`runtime/guests.rs`)
//! carries it to the guest threads, where it computes the rest.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Whether this thread is a guest thread.
    static GUEST_THREAD: Cell<bool> = const { Cell::new(false) };
    /// The move flag of the invocation being polled on this thread, if it may move.
    static MOVABLE: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Marks the calling thread a guest thread (a guest runtime's `on_thread_start`).
pub fn enter_guest_thread() {
    GUEST_THREAD.with(|g| g.set(true));
}

/// Whether the calling thread is a guest thread.
pub fn on_guest_thread() -> bool {
    GUEST_THREAD.with(Cell::get)
}

/// Polls `poll` with `flag` as the move flag of the invocation on this thread.
pub fn polling<T>(flag: &Arc<AtomicBool>, poll: impl FnOnce() -> T) -> T {
    let outer = MOVABLE.with(|m| m.replace(Some(flag.clone())));
    let polled = poll();
    MOVABLE.with(|m| *m.borrow_mut() = outer);
    polled
}

/// From an epoch callback: asks that the invocation computing here move to
/// the guest threads. `true` when it will (the callback then yields); `false`
/// on a guest thread, or for an invocation that cannot move.
pub fn ask_to_move() -> bool {
    if on_guest_thread() {
        return false;
    }
    MOVABLE.with(|m| m.borrow().as_ref().map(|flag| flag.store(true, Ordering::Relaxed)).is_some())
}
