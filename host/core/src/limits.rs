//! Per-invocation limits and the byte caps at the sandbox boundary.

use crate::units::{ByteSize, Span};
use std::path::PathBuf;
use std::time::Duration;

/// Per-invocation limits an agent may lower (manifest, command line) but never
/// raise above the operator's ceiling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wasm fuel: a deterministic CPU budget (~44 G/s of a tight loop here).
    pub fuel: u64,
    /// Linear memory, in bytes, summed over the component's memories.
    pub memory: u64,
    /// Wall-clock time for the whole invocation.
    pub timeout: Duration,
}

/// Limits asked for by an agent's manifest or on the command line; `None`
/// keeps the value it would otherwise have.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Requested {
    /// Fuel.
    pub fuel: Option<u64>,
    /// Memory in bytes.
    pub memory: Option<u64>,
    /// Wall-clock time.
    pub timeout: Option<Duration>,
}

impl Limits {
    fn pairs(req: &Requested) -> [(&'static str, Option<u64>); 3] {
        [("fuel", req.fuel), ("memory", req.memory), ("timeout", req.timeout.map(|t| t.as_millis() as u64))]
    }

    fn set(&mut self, key: &str, value: u64) {
        match key {
            "fuel" => self.fuel = value,
            "memory" => self.memory = value,
            _ => self.timeout = Duration::from_millis(value),
        }
    }

    fn get(&self, key: &str) -> u64 {
        match key {
            "fuel" => self.fuel,
            "memory" => self.memory,
            _ => self.timeout.as_millis() as u64,
        }
    }

    /// Applies what an agent's manifest asks for. A value above the ceiling is
    /// cut down to it, and a note says so (the agent still loads).
    pub fn with_request(mut self, ceiling: &Limits, req: &Requested) -> (Limits, Vec<String>) {
        let mut notes = Vec::new();
        for (key, value) in Limits::pairs(req) {
            let Some(value) = value else { continue };
            let max = ceiling.get(key);
            if value > max {
                notes.push(format!(
                    "limits.{key} ({}) is above the operator's ceiling.{key}; using {}",
                    show(key, value),
                    show(key, max)
                ));
            }
            self.set(key, value.min(max));
        }
        (self, notes)
    }

    /// Each limit lowered to `ceiling` where it is above it.
    pub fn capped(self, ceiling: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(ceiling.fuel),
            memory: self.memory.min(ceiling.memory),
            timeout: self.timeout.min(ceiling.timeout),
        }
    }

    /// Applies the operator's overrides (the command line). A value above the
    /// ceiling is an error naming the option and the ceiling.
    pub fn with_overrides(mut self, ceiling: &Limits, req: &Requested) -> Result<Limits, OverrideError> {
        for (key, value) in Limits::pairs(req) {
            let Some(value) = value else { continue };
            if value == 0 {
                return Err(OverrideError::Zero { key });
            }
            let max = ceiling.get(key);
            if value > max {
                return Err(OverrideError::AboveCeiling { key, value, ceiling: max });
            }
            self.set(key, value);
        }
        Ok(self)
    }
}

/// An operator's override of a limit that cannot apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    /// The value is zero.
    #[error("--{key} must be greater than zero")]
    Zero {
        /// The limit: `fuel`, `memory` or `timeout`.
        key: &'static str,
    },
    /// The value is above the ceiling.
    #[error("--{key} {} is above ceiling.{key} ({})", show(.key, *.value), show(.key, *.ceiling))]
    AboveCeiling {
        /// The limit: `fuel`, `memory` or `timeout`.
        key: &'static str,
        /// The value asked for, in the limit's unit (bytes, milliseconds).
        value: u64,
        /// The ceiling, in the same unit.
        ceiling: u64,
    },
}

/// Byte caps on what crosses the sandbox boundary. Operator-only: agents cannot change them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeCaps {
    /// Any single string or list argument of a host call (an LLM request as a whole).
    pub arg_bytes: u64,
    /// One `log` message.
    pub log_bytes: u64,
    /// Everything one invocation may log (messages and captured output) before
    /// further records are dropped.
    pub log_total_bytes: u64,
    /// A blackboard key or prefix.
    pub key_bytes: u64,
    /// A blackboard value.
    pub value_bytes: u64,
    /// Captured stdout, and separately stderr, per invocation; the rest is dropped.
    pub output_bytes: u64,
    /// The input given to an agent and the output it returns.
    pub io_bytes: u64,
    /// Bytes of agents' log records one tenant may write to the host log
    /// per second; the rest stay in their invocations' results only.
    pub log_rate: u64,
    /// The body of one outbound HTTP request an agent sends.
    pub http_request_bytes: u64,
    /// The body of one HTTP response an agent receives (read whole by the host).
    pub http_response_bytes: u64,
    /// The longest one outbound HTTP request may take, connecting to the
    /// response's last byte.
    pub http_timeout: std::time::Duration,
}

/// A host directory the operator lends to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Where the agent sees it, e.g. `/data`.
    pub guest: String,
    /// Whether the agent may create, change and delete files in it.
    pub write: bool,
}

impl DirGrant {
    /// Parses the command-line form `HOST[::GUEST]` (guest defaults to `/data`).
    pub fn parse(text: &str, write: bool) -> Result<Self, DirGrantError> {
        let (host, guest) = match text.split_once("::") {
            Some((h, g)) => (h, g),
            None => (text, "/data"),
        };
        if host.is_empty() || guest.is_empty() {
            return Err(DirGrantError { text: text.to_string() });
        }
        Ok(DirGrant { host: PathBuf::from(host), guest: guest.to_string(), write })
    }
}

/// A directory grant that is not `HOST[::GUEST]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not HOST[::GUEST]")]
pub struct DirGrantError {
    /// The grant as written.
    pub text: String,
}

/// Renders a limit value in the unit its key uses.
pub fn show(key: &str, value: u64) -> String {
    match key {
        "memory" => ByteSize(value).to_string(),
        "timeout" => Span(Duration::from_millis(value)).to_string(),
        _ => value.to_string(),
    }
}
