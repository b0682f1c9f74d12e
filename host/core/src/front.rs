//! The front threads of `paddock serve`: each serves the connections handed
//! to it from the first byte to the last, with a runtime of its own, so a
//! request's parsing, its agent and its LLM call run on one thread and wake
//! no other. Services that hold per-thread state (the gateway's connection
//! pools) ask [`index`] which front, if any, they run on; work that must
//! not live on one front (a flow run, a session every front uses) is started
//! with [`spawn_shared`].

use std::cell::{Cell, RefCell};
use std::future::Future;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

thread_local! {
    static FRONT: Cell<Option<usize>> = const { Cell::new(None) };
    /// On a front thread, the host's shared runtime.
    static SHARED: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Marks the calling thread as front thread `index` of the host whose shared
/// runtime is `shared` (once, as it starts).
pub fn enter(index: usize, shared: Option<Handle>) {
    FRONT.with(|f| f.set(Some(index)));
    SHARED.with(|s| *s.borrow_mut() = shared);
}

/// Starts `future` on the host's shared runtime when called on a front
/// thread, else on the caller's: for work that outlives the request that
/// starts it, or that requests on every front use. Tasks the future spawns,
/// and the I/O it registers (sockets, child processes), live there too.
pub fn spawn_shared<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match SHARED.with(|s| s.borrow().clone()) {
        Some(shared) => shared.spawn(future),
        None => tokio::spawn(future),
    }
}

/// The front thread the caller runs on, or `None` off them.
pub fn index() -> Option<usize> {
    FRONT.with(Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_thread_marked_as_a_front_reports_one() {
        assert_eq!(index(), None);
        let shared = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let handle = shared.handle().clone();
        let marked = std::thread::spawn(move || {
            enter(3, Some(handle));
            index()
        });
        assert_eq!(marked.join().unwrap(), Some(3));
        assert_eq!(index(), None, "marking another thread leaves this one as it was");
    }
}
