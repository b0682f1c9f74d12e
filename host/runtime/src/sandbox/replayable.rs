//! The clocks and random numbers of WASI, through the invocation's journal.
//!
//! They are the agent's only sources of nondeterminism besides its host
//! calls, so a replay must serve them from the journal too. They replace
//! (shadow) wasmtime-wasi's own `wasi:clocks` and `wasi:random` functions in
//! the linker and call them when the invocation keeps no journal. Wrapping
//! the functions rather than giving the `WasiCtxBuilder` recording clocks
//! and generators keeps one journal entry per call (a generator sees a
//! request for 32 bytes as 32 draws) and lets a divergence trap at once,
//! which a clock's `now` cannot.

use super::AgentState;
use paddock_journal::{self as journal, NO_ARGS, Tape};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi::clocks::WasiClocksCtxView;
use wasmtime_wasi::p2::DynPollable;
use wasmtime_wasi::p2::bindings::clocks::{monotonic_clock, wall_clock};
use wasmtime_wasi::p2::bindings::random::{insecure, insecure_seed, random};
use wasmtime_wasi::random::WasiRandomCtx;

/// One invocation's WASI context seen through its journal.
pub struct Replayable<'a> {
    wasi: &'a mut WasiCtx,
    table: &'a mut ResourceTable,
    journal: Option<&'a Tape>,
}

impl Replayable<'_> {
    fn clocks(&mut self) -> WasiClocksCtxView<'_> {
        WasiClocksCtxView { ctx: self.wasi.clocks(), table: self.table }
    }

    fn random(&mut self) -> &mut WasiRandomCtx {
        self.wasi.random()
    }
}

/// [`HasData`] marker for the journaled clocks and random numbers.
struct Journaled;

impl HasData for Journaled {
    type Data<'a> = Replayable<'a>;
}

fn view(state: &mut AgentState) -> Replayable<'_> {
    Replayable { wasi: &mut state.wasi, table: &mut state.table, journal: state.call.journal.as_deref() }
}

/// Replaces the `wasi:clocks` and `wasi:random` functions that
/// `wasmtime_wasi::p2::add_to_linker_async` added with journaled ones.
pub fn add_to_linker(linker: &mut Linker<AgentState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    wall_clock::add_to_linker::<AgentState, Journaled>(linker, view)?;
    monotonic_clock::add_to_linker::<AgentState, Journaled>(linker, view)?;
    random::add_to_linker::<AgentState, Journaled>(linker, view)?;
    insecure::add_to_linker::<AgentState, Journaled>(linker, view)?;
    insecure_seed::add_to_linker::<AgentState, Journaled>(linker, view)?;
    linker.allow_shadowing(false);
    Ok(())
}

impl wall_clock::Host for Replayable<'_> {
    fn now(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        let journal = self.journal;
        let now = |_| wall_clock::Host::now(&mut self.clocks()).map(|t| (t.seconds, t.nanoseconds));
        let (seconds, nanoseconds) = journal::through_sync(journal, "clock.wall", NO_ARGS, now)?;
        Ok(wall_clock::Datetime { seconds, nanoseconds })
    }

    /// Not journaled: a constant of the host.
    fn resolution(&mut self) -> wasmtime::Result<wall_clock::Datetime> {
        wall_clock::Host::resolution(&mut self.clocks())
    }
}

impl monotonic_clock::Host for Replayable<'_> {
    fn now(&mut self) -> wasmtime::Result<monotonic_clock::Instant> {
        let journal = self.journal;
        journal::through_sync(journal, "clock.monotonic", NO_ARGS, |_| monotonic_clock::Host::now(&mut self.clocks()))
    }

    /// Not journaled: a constant of the host.
    fn resolution(&mut self) -> wasmtime::Result<monotonic_clock::Duration> {
        monotonic_clock::Host::resolution(&mut self.clocks())
    }

    /// A deadline on the monotonic clock: the wait it comes to is journaled,
    /// since a replayed deadline is measured on the recorded clock.
    fn subscribe_instant(&mut self, when: monotonic_clock::Instant) -> wasmtime::Result<Resource<DynPollable>> {
        let journal = self.journal;
        let wait = |(when,): (u64,)| monotonic_clock::Host::now(&mut self.clocks()).map(|now| when.saturating_sub(now));
        let wait = journal::through_sync(journal, "clock.subscribe-instant", (when,), wait)?;
        monotonic_clock::Host::subscribe_duration(&mut self.clocks(), wait)
    }

    /// Not journaled: a sleep answers nothing, and a replay sleeps as long.
    fn subscribe_duration(&mut self, wait: monotonic_clock::Duration) -> wasmtime::Result<Resource<DynPollable>> {
        monotonic_clock::Host::subscribe_duration(&mut self.clocks(), wait)
    }
}

impl random::Host for Replayable<'_> {
    fn get_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        let journal = self.journal;
        let bytes = |(len,)| random::Host::get_random_bytes(self.random(), len);
        journal::through_sync(journal, "random.secure", (len,), bytes)
    }

    fn get_random_u64(&mut self) -> wasmtime::Result<u64> {
        let journal = self.journal;
        journal::through_sync(journal, "random.secure-u64", NO_ARGS, |_| random::Host::get_random_u64(self.random()))
    }
}

impl insecure::Host for Replayable<'_> {
    fn get_insecure_random_bytes(&mut self, len: u64) -> wasmtime::Result<Vec<u8>> {
        let journal = self.journal;
        let bytes = |(len,)| insecure::Host::get_insecure_random_bytes(self.random(), len);
        journal::through_sync(journal, "random.insecure", (len,), bytes)
    }

    fn get_insecure_random_u64(&mut self) -> wasmtime::Result<u64> {
        let journal = self.journal;
        let draw = |_| insecure::Host::get_insecure_random_u64(self.random());
        journal::through_sync(journal, "random.insecure-u64", NO_ARGS, draw)
    }
}

impl insecure_seed::Host for Replayable<'_> {
    fn insecure_seed(&mut self) -> wasmtime::Result<(u64, u64)> {
        let journal = self.journal;
        journal::through_sync(journal, "random.insecure-seed", NO_ARGS, |_| {
            insecure_seed::Host::insecure_seed(self.random())
        })
    }
}
