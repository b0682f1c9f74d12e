//! The memory a compile used, handed back to the system when compiling is
//! done.
//!
//! Compiling a component takes far more memory than its code keeps (a
//! Python agent's compiles, several hundred MiB, for code of a few dozen).
//! The allocator keeps what was freed for the thread that freed it, and
//! returns it to the system only as that thread goes on allocating; the
//! compiler's threads then sit idle, so an idle host would keep the peak of
//! its last compile for good.
//!
//! How freed memory is handed back is the allocator's business, and the
//! allocator is the binary's choice: the binary names it once at start
//! ([`set_hand_back`]); a process that names none (tests, embedders on the
//! system allocator) hands nothing back.

use std::sync::OnceLock;

static HAND_BACK: OnceLock<fn()> = OnceLock::new();

/// Sets what hands the memory the calling thread's allocator keeps, freed,
/// back to the system; the first call wins.
pub fn set_hand_back(hand_back: fn()) {
    let _ = HAND_BACK.set(hand_back);
}

/// Hands back what the calling thread and every thread of the compiler's
/// pool (wasmtime's parallel compilation runs on rayon's global pool) keep
/// freed: called when a compile is done and no other follows at once.
pub(crate) fn after_compiling() {
    let Some(hand_back) = HAND_BACK.get().copied() else { return };
    let started = std::time::Instant::now();
    hand_back();
    rayon::broadcast(|_| hand_back());
    tracing::debug!(us = started.elapsed().as_micros() as u64, "the memory compiling used is handed back");
}
