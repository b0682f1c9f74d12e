//! The sandbox side of Paddock: the wasmtime [`engine`], one [`sandbox`]
//! store per invocation under every limit, the capabilities agents import
//! ([`caps`]), the plugins folder and hot reload ([`plugins`], [`runtime`]),
//! and blackboard [`triggers`]. The services it lends to agents (gateway,
//! blackboard, quota, tenants, journal) are crates below it that know nothing
//! of wasmtime.
//!
//! ```no_run
//! use paddock_config::Settings;
//! use paddock_runtime::{RunOptions, Runtime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new(Settings::load(None)?)?;
//! let agent = runtime.load("hello")?; // plugins/hello/agent.toml
//! let outcome = runtime.run(&agent, r#"{"name":"ada"}"#, &RunOptions::default()).await?;
//! println!("{}", outcome.result?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod caps;
pub mod engine;
pub mod plugins;
pub mod runtime;
pub mod sandbox;
pub mod triggers;

pub use runtime::*;
