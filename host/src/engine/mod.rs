//! The wasmtime [`Engine`]: fuel metering, epoch interruption, the pooling
//! allocator, and the thread that ticks epochs.

use crate::config::{EngineSettings, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Wasm stack an invocation may use. Deep recursion must end in a
/// stack-overflow trap long before the fiber's own native stack is exhausted.
pub const MAX_WASM_STACK: usize = 1 << 20;

/// Native stack of each invocation's fiber: room for [`MAX_WASM_STACK`] plus host calls.
const FIBER_STACK: usize = 2 << 20;

/// Builds the engine every agent runs on.
///
/// `ceiling` sizes the pooling allocator's slots: no invocation may use more
/// memory than the operator's ceiling, so no slot needs more.
pub fn build(settings: &EngineSettings, ceiling: &Limits) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(FIBER_STACK);
    if settings.pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(settings.max_instances)
            .total_stacks(settings.max_instances)
            // Components of interpreted languages hold many core instances and memories.
            .total_core_instances(settings.max_instances.saturating_mul(4))
            .total_memories(settings.max_instances.saturating_mul(2))
            .total_tables(settings.max_instances.saturating_mul(4))
            .max_core_instances_per_component(settings.max_core_instances)
            .max_memories_per_component(settings.max_core_instances)
            .max_tables_per_component(settings.max_tables)
            .table_elements(settings.max_table_elements as usize)
            .max_memory_size(ceiling.memory as usize)
            .max_tables_per_module(settings.max_tables)
            .max_memories_per_module(1)
            // Keep a warm slot's pages resident up to 1 MiB: re-zeroing with
            // memset is cheaper than madvise for small agents.
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&config)
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
    pub fn start(engine: &Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("paddock-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .expect("spawn the epoch thread");
        EpochTicker { stop, thread: Some(thread) }
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
