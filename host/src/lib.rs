//! Paddock: a host in which AI agents run as sandboxed WebAssembly components.
//!
//! The host owns everything dangerous or expensive — provider connections,
//! keys, budgets, the blackboard — and lends it to agents through the WIT
//! package `paddock:agent`. Every agent is treated as hostile: it runs in a
//! fresh store per invocation under fuel, memory and wall-clock limits, with
//! no filesystem, network or environment unless the operator grants them.
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

pub mod blackboard;
pub mod caps;
pub mod cli;
pub mod config;
pub mod engine;
pub mod flow;
pub mod gateway;
pub mod journal;
pub mod plugins;
pub mod quota;
pub mod runtime;
pub mod sandbox;
pub mod tenants;
pub mod toolchain;
pub mod triggers;
