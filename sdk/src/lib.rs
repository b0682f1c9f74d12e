//! Write [Paddock](https://example.invalid/paddock) agents in Rust.
//!
//! An agent is a type implementing [`Agent`] plus one [`export_agent!`] call.
//! Build it with `cargo build --release --target wasm32-wasip2`; the `.wasm`
//! in `target/wasm32-wasip2/release/` is a component the host loads.
//!
//! ```no_run
//! use paddock_sdk::{Agent, blackboard, export_agent, log};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Input { name: String }
//!
//! struct Greeter;
//!
//! impl Agent for Greeter {
//!     fn run(input: String) -> Result<String, String> {
//!         let input: Input = paddock_sdk::parse_input(&input)?;
//!         log::info(&format!("greeting {}", input.name));
//!         // Count visits with compare-and-swap, so concurrent runs never lose one.
//!         let (visits, _revision) = blackboard::update_json(&format!("visits/{}", input.name), |n: Option<u64>| {
//!             n.unwrap_or(0) + 1
//!         })
//!         .map_err(|e| e.to_string())?;
//!         Ok(serde_json::json!({ "greeting": format!("Hello, {}!", input.name), "visits": visits }).to_string())
//!     }
//! }
//!
//! export_agent!(Greeter);
//! ```
//!
//! Host calls work only inside the Paddock host; on other targets they panic.

#![warn(missing_docs)]

extern crate self as paddock_sdk;

/// The raw bindings `wit-bindgen` generates for `paddock:agent/agent-world`.
#[allow(missing_docs)]
pub mod bindings {
    wit_bindgen::generate!({
        // Beside this crate: this repository's `wit/`, and in an agent from
        // `paddock new` (which copies the SDK into its `sdk/`) the agent's own.
        path: "../wit",
        world: "agent-world",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "paddock_sdk::bindings",
        runtime_path: "paddock_sdk::__private::wit_bindgen::rt",
    });
}

pub mod agents;
pub mod approval;
pub mod blackboard;
pub mod context;
pub mod http;
pub mod llm;
pub mod log;
pub mod settings;
pub mod tools;

#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;
}

/// What an agent does. Implement it, then call [`export_agent!`] once.
pub trait Agent {
    /// Does the agent's work. `input` is JSON text by convention; an `Err` is
    /// reported to the caller as the agent's own failure.
    fn run(input: String) -> Result<String, String>;

    /// Undoes what [`Agent::run`] did for `input` (saga compensation). The
    /// default does nothing, which is right for agents with no side effects.
    fn compensate(input: String) -> Result<(), String> {
        let _ = input;
        Ok(())
    }
}

impl<T: Agent> bindings::exports::paddock::agent::agent::Guest for T {
    fn run(input: String) -> Result<String, String> {
        <T as Agent>::run(input)
    }

    fn compensate(input: String) -> Result<(), String> {
        <T as Agent>::compensate(input)
    }
}

/// Exports a type implementing [`Agent`] as the component's `agent` interface.
#[macro_export]
macro_rules! export_agent {
    ($agent:ident) => {
        $crate::bindings::__export_agent_world!($agent with_types_in $crate::bindings);
    };
}

/// Parses JSON input into `T`, with an error text fit to return from `run`.
pub fn parse_input<T: serde::de::DeserializeOwned>(input: &str) -> Result<T, String> {
    serde_json::from_str(input).map_err(|e| format!("invalid input: {e}"))
}
