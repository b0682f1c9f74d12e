//! Behaviour across the sandbox boundary, with real components.
//!
//! One test binary made of modules; guests come from `paddock_test_guests`.

mod agents;
mod architecture;
mod blackboard;
mod budgets;
mod chaos;
mod cli;
mod doors;
mod fairness;
mod flows;
mod flows_sagas;
mod group_commit;
mod hostile_board;
mod hostile_flows;
mod hostile_plugins;
mod hostile_tenants;
mod http;
mod http_languages;
mod journal;
mod languages;
mod limits;
mod llm;
mod loading;
mod many_hosts;
mod many_hosts_flows;
mod mcp;
mod recovery;
mod reload;
mod resilience;
mod serve_auth;
mod serve_cli;
mod serve_flows;
mod serve_limits;
mod serve_logs;
mod serve_operate;
mod serve_reload;
mod serve_traces;
mod settings;
mod slots;
mod tenants;
mod tiers;
mod tools;
mod tools_agents;
mod util;
mod wasi;
