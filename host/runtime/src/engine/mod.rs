//! The wasmtime [`Engine`]: fuel metering, epoch interruption, the pooling
//! allocator, and the thread that ticks epochs.

pub mod memory;
pub mod os;

use paddock_config::{Compiler, EngineSettings, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

/// Wasm stack an invocation may use. Deep recursion must end in a
/// stack-overflow trap long before the fiber's own native stack is exhausted.
pub const MAX_WASM_STACK: usize = 1 << 20;

/// Native stack of each invocation's fiber: room for [`MAX_WASM_STACK`] plus host calls.
const FIBER_STACK: usize = 2 << 20;

/// Decommits (madvise) batched per pool shard. One at a time, every
/// invocation's teardown paid a syscall and a cross-core TLB shootdown;
/// batching 64 cut `hello`'s instantiate+run from ~58 µs to ~52 µs here.
const DECOMMIT_BATCH: usize = 64;

/// Builds the engine every agent runs on (with `engine.compiler = "tiered"`,
/// the one of optimized code; see [`baseline`]).
///
/// `ceiling` sizes the pooling allocator's slots: no invocation may use more
/// memory than the operator's ceiling, so no slot needs more.
pub fn build(settings: &EngineSettings, ceiling: &Limits) -> wasmtime::Result<Engine> {
    let mut config = sandboxed(match settings.compiler {
        Compiler::Cranelift | Compiler::Tiered => Strategy::Cranelift,
        Compiler::Winch => Strategy::Winch,
    });
    // A tiered host compiles Cranelift's code behind the baseline code it
    // serves, on one thread of the lowest priority (`runtime::tiers`), so the
    // compile takes only what serving leaves: spread over every core it took
    // them from invocations (a Python agent's 5 s timeout ran out in tests).
    if settings.compiler == Compiler::Tiered {
        config.parallel_compilation(false);
    }
    if settings.pooling {
        let mut pool = PoolingAllocationConfig::new();
        let queued = decommit_headroom();
        pool.total_component_instances(settings.max_instances)
            .total_stacks(settings.max_instances.saturating_add(queued))
            // Components of interpreted languages hold many core instances and memories.
            .total_core_instances(settings.max_instances.saturating_mul(4))
            .total_memories(settings.max_instances.saturating_mul(2).saturating_add(queued))
            .total_tables(settings.max_instances.saturating_mul(4).saturating_add(queued))
            .max_core_instances_per_component(settings.max_core_instances)
            .max_memories_per_component(settings.max_core_instances)
            .max_tables_per_component(settings.max_tables)
            .table_elements(settings.max_table_elements as usize)
            .max_memory_size(ceiling.memory as usize)
            .max_tables_per_module(settings.max_tables)
            .max_memories_per_module(1)
            .decommit_batch_size(DECOMMIT_BATCH);
        keep_resident(&mut pool, settings.keep_resident, PoolingAllocationConfig::is_pagemap_scan_available());
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if let Some(reserved) = settings.memory_reservation {
        config.memory_reservation(reserved);
    }
    Engine::new(&config).map_err(|e| match settings.pooling {
        // The pool reserves its address space up front: two memories a slot,
        // each of `memory-reservation` (4 GiB by default) and a guard.
        true => e.context(format!(
            "cannot reserve the instance pool for engine.max-instances = {} (two memories a slot, each reserving {} \
             of address space): lower engine.max-instances, or set engine.memory-reservation (smaller reservations \
             cost a bounds check on each memory access)",
            settings.max_instances,
            settings.memory_reservation.map_or("4 GiB".to_string(), |b| paddock_core::ByteSize(b).to_string()),
        )),
        false => e,
    })
}

/// The engine of Winch's code on a tiered host: what a new version serves
/// from until its optimized code is ready, so for seconds at a time and for
/// few invocations. It is the engine of `engine.compiler = "winch"` with
/// `engine.pooling = false`: instances allocated on demand (no pool
/// reserved of its own), each invocation's limits held by its store's
/// limiter (memory, tables, instances) as they are on the pool.
pub fn baseline(settings: &EngineSettings, ceiling: &Limits) -> wasmtime::Result<Engine> {
    build(&EngineSettings { compiler: Compiler::Winch, pooling: false, ..settings.clone() }, ceiling)
}

/// An engine compiling exactly what `engine` does (its configuration, so the
/// same code, stored in the same code-cache folder) with no instance pool,
/// to compile one component on and drop.
///
/// wasmtime's compilers keep a context for each thread that compiled at
/// once, for the engine's life, and a context keeps the buffers the largest
/// function it compiled needed: after a Python agent's compile, 70–90 MiB
/// that no later compile of a small agent would use. Compiled on a scratch
/// engine, the code is serialized, the engine dropped with its contexts, and
/// the code loaded into `engine` (`plugins::load::compile`).
pub fn scratch(engine: &Engine) -> wasmtime::Result<Engine> {
    let mut config = engine.config().clone();
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Engine::new(&config)
}

/// What every engine of agents has: the compiler, fuel, epochs and stacks.
fn sandboxed(strategy: Strategy) -> Config {
    let mut config = Config::new();
    config.strategy(strategy);
    if matches!(strategy, Strategy::Winch) {
        // Winch compiles function bodies; the trampolines between host and
        // guest are still Cranelift's, thousands of them for an
        // interpreter's component (its function table), and they were most
        // of the compile: the quickest settings for them.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        config.cranelift_regalloc_algorithm(wasmtime::RegallocAlgorithm::SinglePass);
    }
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(FIBER_STACK);
    config
}

/// What of a slot stays resident for the next invocation in it.
///
/// With the kernel's `PAGEMAP_SCAN` (Linux 6.7 and later), wasmtime finds
/// the pages an invocation dirtied and copies their initial contents back,
/// up to `keep` bytes of each memory, instead of unmapping them: the next
/// invocation takes no page faults on them and the teardown no TLB shootdown.
/// Measured here, `hello`'s instantiate + run went from 29 to 19 µs, `echo`'s
/// from 21 to 13 µs. Every invocation still starts from a pristine instance.
///
/// Without it, keeping the first `keep` bytes would memset them whether
/// dirtied or not, and a Rust guest's 1 MiB shadow stack sits at the bottom
/// of its memory, touched only at its top (1 MiB cost ~20 µs per invocation
/// here): then nothing of a memory is kept, and decommitting is cheaper.
fn keep_resident(pool: &mut PoolingAllocationConfig, keep: u64, scan: bool) {
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    if scan && keep > 0 {
        pool.pagemap_scan(Enabled::Yes).linear_memory_keep_resident(keep).table_keep_resident(keep.min(1 << 16));
    } else {
        pool.linear_memory_keep_resident(0).table_keep_resident(1 << 16);
    }
}

/// Slots of each kind that may wait, freed, in the decommit queues: up to a
/// batch less one in each shard (one per CPU, at most 16, as wasmtime shards
/// them). Without this room a pool sized for `max-instances` can run out
/// while fewer run: 8 clients invoking one agent on a host of 32 instances
/// (128 table slots) saw "maximum concurrent limit of 128 for tables
/// reached" on a busy machine. wasmtime flushes the queues and retries, but
/// another thread may take the flushed slots first.
fn decommit_headroom() -> u32 {
    let shards = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    u32::try_from(shards * (DECOMMIT_BATCH - 1)).unwrap_or(u32::MAX)
}

/// Increments the engine's epoch every `tick` until dropped, so that wall-clock
/// deadlines are checked and busy guests yield.
#[derive(Debug)]
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine, tick: Duration) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("paddock-epoch".into()).spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(tick);
                match engine.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => return,
                }
            }
        })?;
        Ok(EpochTicker { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paddock_config::Settings;

    #[test]
    fn a_scratch_engine_compiles_the_code_of_the_engine_it_is_made_from() {
        let settings = Settings::default();
        let engine = EngineSettings { max_instances: 4, ..settings.engine.clone() };
        for compiler in [Compiler::Cranelift, Compiler::Tiered, Compiler::Winch] {
            let pooled = build(&EngineSettings { compiler, ..engine.clone() }, &settings.ceiling).unwrap();
            let scratch = scratch(&pooled).unwrap();
            // The code cache's folder is named by this hash.
            let hash = |e: &Engine| {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                e.precompile_compatibility_hash().hash(&mut h);
                h.finish()
            };
            assert_eq!(hash(&scratch), hash(&pooled), "{compiler:?}");
            let code = wasmtime::component::Component::new(&scratch, "(component (core module (func (export \"f\"))))")
                .unwrap()
                .serialize()
                .unwrap();
            // SAFETY: serialized just now by an engine of `pooled`'s configuration.
            unsafe { wasmtime::component::Component::deserialize(&pooled, &code) }.unwrap();
        }
    }

    #[test]
    fn a_pool_too_big_for_the_address_space_names_the_knobs_that_shrink_it() {
        let settings = Settings::default();
        // A million slots of two 4 GiB memories: 8 PiB, more than any process may map.
        let engine = EngineSettings { max_instances: 1_000_000, ..settings.engine.clone() };
        let error = build(&engine, &settings.ceiling).expect_err("the pool cannot be reserved");
        assert_eq!(
            error.to_string(),
            "cannot reserve the instance pool for engine.max-instances = 1000000 (two memories a slot, each reserving \
             4 GiB of address space): lower engine.max-instances, or set engine.memory-reservation (smaller \
             reservations cost a bounds check on each memory access)"
        );
    }
}
