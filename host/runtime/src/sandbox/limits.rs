//! The resource limiter of one invocation, and the limits an invocation can hit.

use crate::caps::Violation;
use paddock_core::ByteSize;
use std::time::Duration;

/// A limit an invocation ran into. Each names the limit and its value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitHit {
    /// Fuel ran out.
    #[error("ran out of fuel (limit {0})")]
    Fuel(u64),
    /// Linear memory would have grown past the limit.
    #[error("exceeded its memory limit ({})", ByteSize(*.0))]
    Memory(u64),
    /// A table would have grown past the limit.
    #[error("exceeded its table limit ({0} elements, engine.max-table-elements)")]
    TableElements(u64),
    /// The wall-clock deadline passed.
    #[error("exceeded its wall-clock limit (timeout {})", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The wasm stack overflowed (unbounded recursion).
    #[error("overflowed its stack ({} of wasm stack)", ByteSize(*.0 as u64))]
    Stack(usize),
    /// A host-call argument broke a size cap.
    #[error("broke a host-call limit: {0}")]
    HostCall(Violation),
    /// The input given or output returned is over `limits.max-io-bytes`.
    #[error("{what} of {size} bytes is over limits.max-io-bytes ({limit} bytes)")]
    Io {
        /// "input", "output" or "error text".
        what: &'static str,
        /// Its size.
        size: u64,
        /// The cap.
        limit: u64,
    },
}

impl LimitHit {
    /// The limit's name in metrics: `fuel`, `memory`, `table-elements`,
    /// `timeout`, `stack`, `host-call` or `io`.
    pub fn name(&self) -> &'static str {
        match self {
            LimitHit::Fuel(_) => "fuel",
            LimitHit::Memory(_) => "memory",
            LimitHit::TableElements(_) => "table-elements",
            LimitHit::Timeout(_) => "timeout",
            LimitHit::Stack(_) => "stack",
            LimitHit::HostCall(_) => "host-call",
            LimitHit::Io { .. } => "io",
        }
    }
}

/// Caps memory and tables of one store, remembering the first cap hit so the
/// invocation's error can name it (a failed `memory.grow` is not a trap).
#[derive(Debug)]
pub struct Limiter {
    memory_limit: u64,
    memory_used: u64,
    table_elements: u64,
    instances: usize,
    tables: usize,
    /// The first limit hit, if any.
    pub hit: Option<LimitHit>,
}

impl Limiter {
    /// A limiter allowing `memory_limit` bytes of memory in all, tables of
    /// `table_elements`, and `instances`/`tables` of each per store.
    pub fn new(memory_limit: u64, table_elements: u64, instances: usize, tables: usize) -> Self {
        Limiter { memory_limit, memory_used: 0, table_elements, instances, tables, hit: None }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let after = self.memory_used.saturating_sub(current as u64) + desired as u64;
        if after > self.memory_limit {
            self.hit.get_or_insert(LimitHit::Memory(self.memory_limit));
            return Ok(false);
        }
        self.memory_used = after;
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.table_elements {
            self.hit.get_or_insert(LimitHit::TableElements(self.table_elements));
            return Ok(false);
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        self.tables
    }

    fn memories(&self) -> usize {
        self.instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_is_summed_across_growth_and_the_first_refusal_is_kept() {
        let mut l = Limiter::new(100, 10, 1, 1);
        assert!(l.memory_growing(0, 60, None).unwrap());
        assert!(l.memory_growing(60, 100, None).unwrap());
        assert!(!l.memory_growing(100, 101, None).unwrap());
        assert_eq!(l.hit, Some(LimitHit::Memory(100)));
    }

    #[test]
    fn limit_messages_name_the_limit_and_value() {
        assert_eq!(LimitHit::Fuel(50_000_000).to_string(), "ran out of fuel (limit 50000000)");
        assert_eq!(LimitHit::Memory(64 << 20).to_string(), "exceeded its memory limit (64 MiB)");
        assert_eq!(
            LimitHit::Timeout(Duration::from_millis(1500)).to_string(),
            "exceeded its wall-clock limit (timeout 1s 500ms)"
        );
    }
}
