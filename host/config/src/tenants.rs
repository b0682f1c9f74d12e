//! `[tenants.NAME]`: each tenant's grants, ceilings and budgets, validated
//! into [`TenantPolicy`].

use crate::file::{CeilingSection, DirSection};
use paddock_core::{ByteSize, DirGrant, Limits, show};
use paddock_quota::Budget;
use paddock_tenants::{AgentBudget, NameGrant, TenantCeiling, TenantPolicy};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TenantSection {
    #[serde(default)]
    agents: Vec<String>,
    #[serde(default)]
    routes: Vec<String>,
    #[serde(default)]
    blackboard: TenantBoardSection,
    #[serde(default)]
    approvals: bool,
    #[serde(default)]
    dirs: Vec<DirSection>,
    #[serde(default)]
    tools: Vec<String>,
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    http_private: Vec<String>,
    #[serde(default)]
    ceiling: CeilingSection,
    #[serde(default)]
    budget: BudgetSection,
    #[serde(default)]
    agent_budgets: BTreeMap<String, BudgetSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TenantBoardSection {
    read: Option<Vec<String>>,
    write: Option<Vec<String>>,
    max_keys: Option<u64>,
    max_bytes: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BudgetSection {
    tokens_per_day: Option<u64>,
    tokens_per_month: Option<u64>,
    usd_per_day: Option<f64>,
    usd_per_month: Option<f64>,
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    max_concurrent: Option<u32>,
    fuel_per_minute: Option<u64>,
    tool_calls_per_minute: Option<u32>,
}

/// What a tenant's policy is checked against.
pub(super) struct Known<'a> {
    pub routes: Vec<&'a str>,
    /// The MCP servers of `[mcp.NAME]`.
    pub servers: Vec<&'a str>,
    pub ceiling: &'a Limits,
    pub base: &'a Path,
    /// `limits.max-key-bytes`: the longest prefix that can match a key.
    pub key_bytes: u64,
}

/// Validates every `[tenants.NAME]` section.
pub(super) fn policies(
    sections: BTreeMap<String, TenantSection>,
    known: &Known<'_>,
) -> Result<Vec<TenantPolicy>, String> {
    sections.into_iter().map(|(name, section)| policy(name, section, known)).collect()
}

fn policy(name: String, t: TenantSection, known: &Known<'_>) -> Result<TenantPolicy, String> {
    let at = format!("tenants.{name}");
    paddock_core::names::validate_tenant(&name).map_err(|why| format!("{at}: {why}"))?;
    let agents = names(&t.agents, &format!("{at}.agents"), paddock_core::names::validate_agent)?;
    let routes = names(&t.routes, &format!("{at}.routes"), |route| {
        if known.routes.contains(&route) {
            Ok(())
        } else {
            Err(format!("no route named {route:?} (configured: {})", known.routes.join(", ")))
        }
    })?;
    let tools = tool_grant(&t.tools, &format!("{at}.tools"), &known.servers)?;
    let (http, http_private) = http_grant(t.http, t.http_private, &at)?;
    let board = t.blackboard;
    let read = board.read.unwrap_or_else(|| vec![String::new()]);
    let write = board.write.unwrap_or_else(|| vec![String::new()]);
    for (kind, prefixes) in [("read", &read), ("write", &write)] {
        for (i, p) in prefixes.iter().enumerate() {
            paddock_core::names::validate_key_prefix(p, known.key_bytes)
                .map_err(|why| format!("{at}.blackboard.{kind}[{i}]: {why}"))?;
        }
    }
    let mut dirs = Vec::new();
    for (i, d) in t.dirs.into_iter().enumerate() {
        if !d.guest.starts_with('/') {
            return Err(format!("{at}.dirs[{i}].guest must be an absolute path like \"/data\", not `{}`", d.guest));
        }
        dirs.push(DirGrant { host: known.base.join(d.host), guest: d.guest, write: d.write });
    }
    let ceiling = TenantCeiling {
        fuel: t.ceiling.fuel,
        memory: t.ceiling.memory.map(|m| m.0),
        timeout: t.ceiling.timeout.map(|s| s.0),
    };
    for (key, value, host) in [
        ("fuel", ceiling.fuel, known.ceiling.fuel),
        ("memory", ceiling.memory, known.ceiling.memory),
        ("timeout", ceiling.timeout.map(|t| t.as_millis() as u64), known.ceiling.timeout.as_millis() as u64),
    ] {
        match value {
            Some(0) => return Err(format!("{at}.ceiling.{key} must be greater than zero")),
            Some(v) if v > host => {
                return Err(format!(
                    "{at}.ceiling.{key} ({}) is above the host's ceiling.{key} ({}); a tenant can only lower it",
                    show(key, v),
                    show(key, host)
                ));
            }
            _ => {}
        }
    }
    for (key, value) in [("max-keys", board.max_keys), ("max-bytes", board.max_bytes.map(|b| b.0))] {
        if value == Some(0) {
            return Err(format!("{at}.blackboard.{key} must be greater than zero"));
        }
    }
    let budget_at = format!("{at}.budget");
    let (tenant_budget, max_concurrent) = budget(&t.budget, &budget_at)?;
    if t.budget.fuel_per_minute == Some(0) {
        return Err(format!("{budget_at}.fuel-per-minute must be greater than zero"));
    }
    if t.budget.tool_calls_per_minute == Some(0) {
        return Err(format!("{budget_at}.tool-calls-per-minute must be greater than zero"));
    }
    let mut agent_budgets = BTreeMap::new();
    for (agent, section) in &t.agent_budgets {
        let key = format!("{at}.agent-budgets.{agent}");
        paddock_core::names::validate_agent(agent).map_err(|why| format!("{key}: {why}"))?;
        if section.fuel_per_minute.is_some() {
            return Err(format!("{key}.fuel-per-minute: fuel is shared per tenant; set {budget_at}.fuel-per-minute"));
        }
        if section.tool_calls_per_minute.is_some() {
            return Err(format!(
                "{key}.tool-calls-per-minute: tool calls are counted per tenant; set {budget_at}.tool-calls-per-minute"
            ));
        }
        let (budget, max_concurrent) = budget(section, &key)?;
        agent_budgets.insert(agent.clone(), AgentBudget { budget, max_concurrent });
    }
    Ok(TenantPolicy {
        open: false,
        agents,
        routes,
        read,
        write,
        approvals: t.approvals,
        dirs,
        tools,
        tool_calls_per_minute: t.budget.tool_calls_per_minute,
        http,
        http_private,
        ceiling,
        board_max_keys: board.max_keys,
        board_max_bytes: board.max_bytes.map(|b| b.0),
        budget: tenant_budget,
        max_concurrent,
        fuel_per_minute: t.budget.fuel_per_minute,
        agent_budgets,
        name,
    })
}

/// Tool patterns (`server/tool`, `server/*`) of configured servers, or `["*"]`.
fn tool_grant(list: &[String], key: &str, servers: &[&str]) -> Result<NameGrant, String> {
    names(list, key, |pattern| {
        paddock_core::tools::validate_pattern(pattern).map_err(|e| e.to_string())?;
        let server = paddock_core::tools::server_of(pattern).unwrap_or_default();
        if servers.contains(&server) {
            return Ok(());
        }
        let configured = if servers.is_empty() { "none".to_string() } else { servers.join(", ") };
        Err(format!("no MCP server {server:?} (configured in [mcp]: {configured})"))
    })
}

/// Host patterns its agents may reach (or `["*"]`), and those that may
/// resolve to non-public addresses.
fn http_grant(http: Vec<String>, private: Vec<String>, at: &str) -> Result<(NameGrant, Vec<String>), String> {
    let http = names(&http, &format!("{at}.http"), paddock_core::hosts::validate_pattern)?;
    for (i, pattern) in private.iter().enumerate() {
        paddock_core::hosts::validate_pattern(pattern).map_err(|why| format!("{at}.http-private[{i}]: {why}"))?;
    }
    Ok((http, private))
}

/// A list of names, or `["*"]` for any; each checked by `check`.
fn names<E: std::fmt::Display>(
    list: &[String],
    key: &str,
    check: impl Fn(&str) -> Result<(), E>,
) -> Result<NameGrant, String> {
    if list.iter().any(|n| n == "*") {
        if list.len() > 1 {
            return Err(format!("{key}: \"*\" grants every name and cannot be combined with others"));
        }
        return Ok(NameGrant::Any);
    }
    for (i, n) in list.iter().enumerate() {
        check(n).map_err(|why| format!("{key}[{i}]: {why}"))?;
    }
    Ok(NameGrant::Only(list.to_vec()))
}

fn budget(b: &BudgetSection, at: &str) -> Result<(Budget, Option<u32>), String> {
    let usd = |key: &str, value: Option<f64>| -> Result<Option<u64>, String> {
        match value {
            None => Ok(None),
            Some(v) if v.is_finite() && v > 0.0 && v < 1e12 => Ok(Some((v * 1e6).round() as u64)),
            Some(v) => Err(format!("{at}.{key} ({v}) must be a positive amount of US dollars")),
        }
    };
    let budget = Budget {
        tokens_per_day: b.tokens_per_day,
        tokens_per_month: b.tokens_per_month,
        cost_micros_per_day: usd("usd-per-day", b.usd_per_day)?,
        cost_micros_per_month: usd("usd-per-month", b.usd_per_month)?,
        requests_per_minute: b.requests_per_minute,
        tokens_per_minute: b.tokens_per_minute,
    };
    for (key, value) in [
        ("tokens-per-day", b.tokens_per_day),
        ("tokens-per-month", b.tokens_per_month),
        ("requests-per-minute", b.requests_per_minute.map(u64::from)),
        ("tokens-per-minute", b.tokens_per_minute),
        ("max-concurrent", b.max_concurrent.map(u64::from)),
    ] {
        if value == Some(0) {
            return Err(format!(
                "{at}.{key} must be greater than zero (to deny, leave the agent out of the tenant's agents)"
            ));
        }
    }
    Ok((budget, b.max_concurrent))
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, Settings};
    use paddock_tenants::NameGrant;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Settings::parse(text, Path::new("conf/paddock.toml"))
    }

    #[test]
    fn a_tenant_section_becomes_its_policy() {
        let s = parse(
            r#"
[tenants.acme]
agents = ["planner", "executor"]
routes = ["fast"]
blackboard = { write = ["tasks/"], max-keys = 10 }
dirs = [{ host = "data/acme", guest = "/data", write = true }]
ceiling = { timeout = "5s" }
budget = { tokens-per-day = 1000, usd-per-month = 2.5, requests-per-minute = 60, max-concurrent = 4, fuel-per-minute = 1000000, tool-calls-per-minute = 30 }
agent-budgets.planner = { tokens-per-day = 100, max-concurrent = 1 }
tools = ["kit/*", "web/fetch"]
http = ["api.example.com", "*.internal.example"]
http-private = ["*.internal.example"]

[mcp.kit]
command = ["python3", "kit.py"]

[mcp.web]
url = "http://127.0.0.1:9/mcp"
"#,
        )
        .unwrap();
        let acme = s.tenants.get("acme").unwrap();
        assert_eq!(acme.agents, NameGrant::Only(vec!["planner".into(), "executor".into()]));
        assert_eq!((acme.read.as_slice(), acme.write.as_slice()), (&[String::new()][..], &["tasks/".to_string()][..]));
        assert_eq!(acme.dirs[0].host, Path::new("conf/data/acme"));
        assert_eq!(acme.ceiling.timeout, Some(Duration::from_secs(5)));
        assert_eq!(acme.board_max_keys, Some(10));
        assert_eq!(
            (acme.budget.tokens_per_day, acme.budget.cost_micros_per_month, acme.budget.requests_per_minute),
            (Some(1000), Some(2_500_000), Some(60))
        );
        assert_eq!((acme.max_concurrent, acme.fuel_per_minute), (Some(4), Some(1_000_000)));
        assert_eq!(acme.agent_budgets["planner"].budget.tokens_per_day, Some(100));
        assert_eq!(acme.agent_budgets["planner"].max_concurrent, Some(1));
        assert_eq!(acme.tools, NameGrant::Only(vec!["kit/*".into(), "web/fetch".into()]));
        assert_eq!(acme.tool_calls_per_minute, Some(30));
        assert_eq!(acme.http, NameGrant::Only(vec!["api.example.com".into(), "*.internal.example".into()]));
        assert_eq!(acme.http_private, ["*.internal.example"]);
        assert!(s.tenants.get("default").is_err(), "only configured tenants exist");
    }

    #[test]
    fn tenant_errors_name_the_key() {
        let cases = [
            ("[tenants.\"A B\"]\n", "tenants.A B: tenant name `A B` must be 1 to 64 of a-z, 0-9, '-' and '_'"),
            (
                "[tenants.a]\nroutes = [\"nope\"]\n",
                "tenants.a.routes[0]: no route named \"nope\" (configured: fast, smart)",
            ),
            (
                "[tenants.a]\nagents = [\"*\", \"x\"]\n",
                "tenants.a.agents: \"*\" grants every name and cannot be combined with others",
            ),
            (
                "[tenants.a]\nceiling = { memory = \"2GiB\" }\n",
                "tenants.a.ceiling.memory (2 GiB) is above the host's ceiling.memory (1 GiB); a tenant can only lower it",
            ),
            (
                "[tenants.a]\nbudget = { usd-per-day = -1.0 }\n",
                "tenants.a.budget.usd-per-day (-1) must be a positive amount of US dollars",
            ),
            (
                "[tenants.a]\nbudget = { requests-per-minute = 0 }\n",
                "tenants.a.budget.requests-per-minute must be greater than zero (to deny, leave the agent out of the tenant's agents)",
            ),
            (
                "[tenants.a]\ntools = [\"kit/echo\"]\n",
                "tenants.a.tools[0]: no MCP server \"kit\" (configured in [mcp]: none)",
            ),
            (
                "[mcp.kit]\ncommand = [\"kit\"]\n[tenants.a]\ntools = [\"kit\"]\n",
                "tenants.a.tools[0]: `kit` is not a tool pattern: use \"server/tool\" or \"server/*\", the server an \
                 [mcp.NAME] name and the tool 1 to 128 of A-Z, a-z, 0-9, '_', '-' and '.'",
            ),
            (
                "[tenants.a]\nhttp = [\"https://x\"]\n",
                "tenants.a.http[0]: `https://x` is not a host pattern: use a host name (\"api.example.com\"), \"*.\" and a \
                 domain, or an IP address, each with an optional \":port\"",
            ),
            (
                "[tenants.a]\nbudget = { tool-calls-per-minute = 0 }\n",
                "tenants.a.budget.tool-calls-per-minute must be greater than zero",
            ),
            (
                "[tenants.a.agent-budgets.p]\ntool-calls-per-minute = 5\n",
                "tenants.a.agent-budgets.p.tool-calls-per-minute: tool calls are counted per tenant; set \
                 tenants.a.budget.tool-calls-per-minute",
            ),
            (
                "[tenants.a.agent-budgets.p]\nfuel-per-minute = 5\n",
                "tenants.a.agent-budgets.p.fuel-per-minute: fuel is shared per tenant; set tenants.a.budget.fuel-per-minute",
            ),
            (
                "[tenants.a]\n[[triggers]]\ntenant = \"b\"\nprefix = \"x/\"\nagent = \"y\"\n",
                "triggers[0].tenant: denied: no tenant named \"b\" (configured: a)",
            ),
            (
                "[tenants.a]\n[[triggers]]\ntenant = \"a\"\nprefix = \"x/\"\nagent = \"y\"\n",
                "triggers[0].agent: denied: agent \"y\" is not granted to tenant \"a\" (tenants.a.agents = [])",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err().message, message, "{text}");
        }
    }
}
