//! Paddock's shared vocabulary, used by every other crate and depending on
//! none of them: units of the config file ([`Span`], [`ByteSize`]), the name
//! rules ([`names`], [`tools`], [`hosts`]), per-invocation [`Limits`] and byte caps, the [`minutes`] of the last hour, what an agent
//! asks for ([`Capabilities`]), and the [`Clock`] services read.
//!
//! ```
//! use paddock_core::{ByteSize, Span, names};
//!
//! assert_eq!(ByteSize::parse("64MiB").unwrap(), ByteSize(64 << 20));
//! assert_eq!(Span::parse("250ms").unwrap().to_string(), "250ms");
//! assert!(names::validate_tenant("acme").is_ok());
//! ```

#![warn(missing_docs)]

pub mod capabilities;
pub mod clock;
pub mod front;
pub mod hosts;
pub mod limits;
pub mod minutes;
pub mod names;
pub mod tools;
pub mod units;

pub use capabilities::{BoardRequest, Capabilities};
pub use clock::{Clock, ManualClock, SystemClock};
pub use limits::{DirGrant, DirGrantError, Limits, OverrideError, Requested, SizeCaps, show};
pub use names::NameError;
pub use units::{ByteSize, Span, UnitError};

/// The `tracing` target of the spans made for traces alone (`invoke`, `llm`,
/// `llm.attempt`, a host call, a flow step): exported over OTLP when
/// `[telemetry]` is on, and never written to the log, whose lines keep the
/// request's `http` span (and so its request id) as their span.
pub const TRACE_TARGET: &str = "paddock::trace";
