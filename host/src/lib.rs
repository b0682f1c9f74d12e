//! Paddock: a host in which AI agents run as sandboxed WebAssembly components.
//!
//! The host owns everything dangerous or expensive — provider connections,
//! keys, budgets, the blackboard — and lends it to agents through the WIT
//! package `paddock:agent`. Every agent is treated as hostile: it runs in a
//! fresh store per invocation under fuel, memory and wall-clock limits, with
//! no filesystem, network or environment unless the operator grants them.
//!
//! This crate is the `paddock` command line and HTTP server. The host itself
//! is a stack of crates, each re-exported here under its short name:
//! [`core`] (shared vocabulary) at the bottom; the services [`gateway`],
//! [`blackboard`], [`journal`], [`toolchain`], [`quota`] and [`tenants`], which
//! know nothing of wasmtime; [`config`], which reads `paddock.toml` into their
//! settings; [`runtime`] (engine, sandbox, capabilities, plugins, hot reload);
//! and [`flow`], durable workflows of agents.
//!
//! ```no_run
//! use paddock::config::Settings;
//! use paddock::runtime::{RunOptions, Runtime};
//!
//! # async fn demo() -> anyhow::Result<()> {
//! let runtime = Runtime::new(Settings::load(None)?)?;
//! let agent = runtime.load("hello")?; // plugins/hello/agent.toml
//! let outcome = runtime.run(&agent, r#"{"name":"ada"}"#, &RunOptions::default()).await?;
//! println!("{}", outcome.result?);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod cli;

pub use paddock_blackboard as blackboard;
pub use paddock_config as config;
pub use paddock_core as core;
pub use paddock_flow as flow;
pub use paddock_gateway as gateway;
pub use paddock_journal as journal;
pub use paddock_keys as keys;
pub use paddock_quota as quota;
pub use paddock_runtime as runtime;
pub use paddock_runtime::{caps, engine, plugins, sandbox, triggers};
pub use paddock_tenants as tenants;
pub use paddock_toolchain as toolchain;
pub use paddock_tools as tools;
