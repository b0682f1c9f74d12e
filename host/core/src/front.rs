//! The front threads of `paddock serve`: each serves the connections handed
//! to it from the first byte to the last, with a runtime of its own, so a
//! request's parsing, its agent and its LLM call run on one thread and wake
//! no other. Services that hold per-thread state (the gateway's connection
//! pools) ask [`index`] which front, if any, they run on.

use std::cell::Cell;

thread_local! {
    static FRONT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Marks the calling thread as front thread `index` (once, as it starts).
pub fn enter(index: usize) {
    FRONT.with(|f| f.set(Some(index)));
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
        let marked = std::thread::spawn(|| {
            enter(3);
            index()
        });
        assert_eq!(marked.join().unwrap(), Some(3));
        assert_eq!(index(), None, "marking another thread leaves this one as it was");
    }
}
