//! `paddock:agent/log`: the agent's log records, kept per invocation and sent
//! to `tracing` under the agent's name. Captured stdout and stderr land here too.

use super::CallContext;
use super::wit::log::{Host, Level};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use wasmtime::component::HasData;

/// Where a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The `log` interface.
    Log,
    /// A line the agent wrote to stdout.
    Stdout,
    /// A line the agent wrote to stderr.
    Stderr,
    /// The host, about the agent (e.g. output dropped).
    Host,
}

/// Severity, as in the WIT `level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Normal.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

/// One record of an agent's log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LogRecord {
    /// Severity.
    pub level: Severity,
    /// Where it came from.
    pub source: Source,
    /// The text.
    pub message: String,
}

/// The log of one invocation, capped in total bytes.
#[derive(Debug)]
pub struct AgentLog {
    agent: Arc<str>,
    tenant: Arc<str>,
    /// The key its tenant's bytes a second are counted under.
    counted: Arc<str>,
    limit: u64,
    /// Bytes a second the tenant's records may take in the host log.
    rate: u64,
    state: Mutex<LogState>,
}

/// What each tenant's agents wrote to the host log in the current second.
/// One per process, as the host log is.
static HOST_LOG: LazyLock<Mutex<HashMap<Arc<str>, Second>>> = LazyLock::new(Mutex::default);

/// Tenants counted in [`HOST_LOG`] past which those whose second has
/// passed are forgotten.
const FORGET_PAST: usize = 1024;

#[derive(Debug)]
struct Second {
    start: Instant,
    bytes: u64,
    noted: bool,
}

/// Whether a record of `size` bytes of `tenant` may go to the host log,
/// at most `rate` bytes a second; the first record held back in a second
/// writes one note saying so.
fn to_host_log(tenant: &Arc<str>, size: u64, rate: u64) -> bool {
    let now = Instant::now();
    let mut seconds = HOST_LOG.lock();
    if seconds.len() >= FORGET_PAST && !seconds.contains_key(tenant) {
        seconds.retain(|_, s| now.duration_since(s.start) < Duration::from_secs(1));
    }
    let second = seconds.entry(tenant.clone()).or_insert(Second { start: now, bytes: 0, noted: false });
    if now.duration_since(second.start) >= Duration::from_secs(1) {
        *second = Second { start: now, bytes: 0, noted: false };
    }
    if second.bytes + size <= rate {
        second.bytes += size;
        return true;
    }
    if !second.noted {
        second.noted = true;
        let whose = match &**tenant {
            paddock_core::names::UNNAMED => format!("the agents of {}", paddock_core::names::UNNAMED_WHO),
            named => format!("tenant {named:?}'s agents"),
        };
        tracing::warn!(
            target: "paddock::agent",
            tenant = &**tenant,
            "{whose} logged over limits.log-bytes-per-second ({rate}) this second; their records stay in their invocations' results, not in the host log, until it ends"
        );
    }
    false
}

#[derive(Debug, Default)]
struct LogState {
    records: Vec<LogRecord>,
    bytes: u64,
    dropped: u64,
}

impl AgentLog {
    /// An empty log keeping at most `limit` bytes of messages, and writing
    /// at most `rate` bytes a second of its tenant's to the host log.
    /// `counted` is the key `tenant`'s bytes are counted under: its own
    /// name, or the one every tenant not named in `[tenants]` shares.
    pub fn new(agent: Arc<str>, (tenant, counted): (Arc<str>, Arc<str>), limit: u64, rate: u64) -> Self {
        AgentLog { agent, tenant, counted, limit, rate, state: Mutex::default() }
    }

    /// Records a message (and emits it to `tracing`), or counts it as dropped
    /// once the invocation has logged its limit.
    pub fn push(&self, level: Severity, source: Source, message: String) {
        let mut state = self.state.lock();
        let size = message.len() as u64;
        if state.bytes + size > self.limit {
            state.dropped += 1;
            return;
        }
        state.bytes += size;
        self.emit(level, source, &message);
        state.records.push(LogRecord { level, source, message });
    }

    /// Takes the records, ending with a note of how many were dropped.
    pub fn take(&self) -> Vec<LogRecord> {
        let mut state = self.state.lock();
        let mut records = std::mem::take(&mut state.records);
        if state.dropped > 0 {
            let message = format!(
                "{} log records dropped: this invocation logged more than limits.max-log-total-bytes ({} bytes)",
                state.dropped, self.limit
            );
            self.emit(Severity::Warn, Source::Host, &message);
            records.push(LogRecord { level: Severity::Warn, source: Source::Host, message });
            state.dropped = 0;
        }
        records
    }

    fn emit(&self, level: Severity, source: Source, message: &str) {
        if source != Source::Host && !to_host_log(&self.counted, message.len() as u64, self.rate) {
            return;
        }
        let (agent, tenant) = (&*self.agent, &*self.tenant);
        macro_rules! event {
            ($lvl:expr) => {
                tracing::event!(target: "paddock::agent", $lvl, agent, tenant, source = ?source, "{message}")
            };
        }
        match level {
            Severity::Trace => event!(tracing::Level::TRACE),
            Severity::Debug => event!(tracing::Level::DEBUG),
            Severity::Info => event!(tracing::Level::INFO),
            Severity::Warn => event!(tracing::Level::WARN),
            Severity::Error => event!(tracing::Level::ERROR),
        }
    }
}

/// Per-invocation state of the `log` interface.
#[derive(Debug)]
pub struct LogCtx {
    call: Arc<CallContext>,
}

impl LogCtx {
    /// The `log` interface for one invocation.
    pub fn new(call: Arc<CallContext>) -> Self {
        LogCtx { call }
    }
}

impl Host for LogCtx {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let call = &self.call;
        call.check_size("log message", message.len(), call.caps.log_bytes, "limits.max-log-bytes")?;
        let level = match level {
            Level::Trace => Severity::Trace,
            Level::Debug => Severity::Debug,
            Level::Info => Severity::Info,
            Level::Warn => Severity::Warn,
            Level::Error => Severity::Error,
        };
        call.log.push(level, Source::Log, message);
        Ok(())
    }
}

/// [`HasData`] marker for the `log` interface.
pub struct Log;

impl HasData for Log {
    type Data<'a> = &'a mut LogCtx;
}

impl super::Capability for LogCtx {
    const INTERFACE: &'static str = "log";

    fn new(call: &Arc<CallContext>, _lent: &super::Lent) -> Self {
        LogCtx::new(call.clone())
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::log::add_to_linker::<T, Log>(linker, get)
    }
}
