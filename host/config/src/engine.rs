//! `[engine]`: how the wasmtime engine is shaped.

use crate::file::EngineSection;
use paddock_core::{ByteSize, Span};
use std::time::Duration;

/// How the wasmtime engine is shaped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineSettings {
    /// Use the pooling instance allocator (fast instantiation, fixed capacity).
    pub pooling: bool,
    /// Invocations that may run at once (pooling slots).
    pub max_instances: u32,
    /// Tables per invocation.
    pub max_tables: u32,
    /// Elements per table.
    pub max_table_elements: u32,
    /// Core instances per component instance.
    pub max_core_instances: u32,
    /// How often the wall-clock deadline is checked and busy guests yield.
    pub epoch_tick: Duration,
    /// Guests that may compute at once, shared fairly between tenants
    /// (default: the number of CPUs; 0 turns fair scheduling off).
    pub cpu_slots: usize,
    /// Bytes of each pooled memory's pages an invocation dirtied that stay
    /// resident for the next one in its slot, reset by copying rather than
    /// unmapped (where the kernel has `PAGEMAP_SCAN`, Linux 6.7 and later).
    pub keep_resident: u64,
    /// Address space reserved for each pooled linear memory; `None` is
    /// wasmtime's 4 GiB, with which compiled code needs no bounds checks.
    pub memory_reservation: Option<u64>,
    /// What compiles agents' code.
    pub compiler: Compiler,
}

/// What compiles agents' code (`engine.compiler`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Compiler {
    /// Both, one after the other: a version whose optimized code is not in
    /// the code cache serves at once from Winch's, while Cranelift compiles
    /// in the background; its code is then swapped in under the same
    /// version, invocations already running finishing on the code they
    /// started with.
    #[default]
    Tiered,
    /// Cranelift alone, optimizing: the fastest code, compiled in seconds
    /// for an interpreter's component, which a new version waits for.
    Cranelift,
    /// Winch alone, wasmtime's baseline compiler: compiled five to seven
    /// times faster, into slower code.
    Winch,
}

/// The default of `engine.keep-resident`: more than a Rust or C agent
/// dirties in one invocation (measured: `hello`'s instantiate + run 29 → 19 µs
/// with 256 KiB or more; 1 MiB leaves room for a bigger heap).
pub const DEFAULT_KEEP_RESIDENT: u64 = 1 << 20;

/// The most `engine.keep-resident` may be: kept per slot, it multiplies by
/// the slots in use at the busiest moment.
pub const MAX_KEEP_RESIDENT: u64 = 64 << 20;

/// Validates `[engine]`.
pub(crate) fn engine(e: &EngineSection, ceiling_memory: u64) -> Result<EngineSettings, String> {
    let engine = EngineSettings {
        pooling: e.pooling.unwrap_or(true),
        max_instances: e.max_instances.unwrap_or(1000),
        max_tables: e.max_tables.unwrap_or(16),
        max_table_elements: e.max_table_elements.unwrap_or(100_000),
        max_core_instances: e.max_core_instances.unwrap_or(32),
        epoch_tick: e.epoch_tick.map_or(Duration::from_millis(10), |s| s.0),
        cpu_slots: e
            .cpu_slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get)),
        keep_resident: e.keep_resident.map_or(DEFAULT_KEEP_RESIDENT, |b| b.0),
        memory_reservation: e.memory_reservation.map(|b| b.0),
        compiler: match e.compiler.as_deref() {
            None | Some("tiered") => Compiler::Tiered,
            Some("cranelift") => Compiler::Cranelift,
            Some("winch") => Compiler::Winch,
            Some(other) => {
                return Err(format!("engine.compiler ({other:?}) must be \"tiered\", \"cranelift\" or \"winch\""));
            }
        },
    };
    if engine.keep_resident > MAX_KEEP_RESIDENT {
        return Err(format!(
            "engine.keep-resident ({}) must be at most {} (it is kept in every pool slot used at the busiest moment)",
            ByteSize(engine.keep_resident),
            ByteSize(MAX_KEEP_RESIDENT)
        ));
    }
    if let Some(reserved) = engine.memory_reservation
        && reserved < ceiling_memory
    {
        return Err(format!(
            "engine.memory-reservation ({}) is below ceiling.memory ({}): no memory could grow past it; raise it or lower the ceiling",
            ByteSize(reserved),
            ByteSize(ceiling_memory)
        ));
    }
    if engine.max_instances == 0 {
        return Err("engine.max-instances must be greater than zero".into());
    }
    if engine.epoch_tick < Duration::from_millis(1) || engine.epoch_tick > Duration::from_secs(1) {
        return Err(format!("engine.epoch-tick ({}) must be between 1ms and 1s", Span(engine.epoch_tick)));
    }
    Ok(engine)
}
