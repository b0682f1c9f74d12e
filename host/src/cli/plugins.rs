//! `paddock plugins`: what is in the plugins folder.

use super::{EXIT_DENIED, EXIT_LOAD, fail};
use crate::config::Settings;
use crate::plugins::{Manifest, Registry};
use crate::tenants::{self, TenantPolicy};
use clap::Subcommand;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins: name, version, component, and any manifest error
    #[command(after_help = "Example:\n  paddock plugins list --json\n\nExit code 4 when a manifest is broken.")]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show what each plugin asks for, what its tenant grants, and what is refused
    #[command(
        after_help = "Examples:\n  paddock plugins check\n  paddock plugins check --tenant acme --json\n\nExit code 9 when a tenant refuses a plugin or a capability it asks for; 4 when a manifest is broken."
    )]
    Check {
        /// Only this tenant [default: every configured tenant, or host.default-tenant]
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn plugins(settings: Settings, command: PluginsCommand) -> u8 {
    match command {
        PluginsCommand::List { json } => list(settings, json),
        PluginsCommand::Check { tenant, json } => check(settings, tenant, json),
    }
}

fn list(settings: Settings, json: bool) -> u8 {
    let registry = Registry::new(&settings.plugins_dir);
    let mut code = 0;
    let mut rows = Vec::new();
    for manifest in registry.scan() {
        let row = match manifest {
            Ok(m) => serde_json::json!({
                "name": m.name,
                "version": m.version.to_string(),
                "description": m.description,
                "component": m.component,
                "built": m.component.is_file(),
                "capabilities": m.capabilities,
                "error": null,
            }),
            Err(e) => {
                code = EXIT_LOAD;
                serde_json::json!({ "manifest": e.file, "error": e.to_string() })
            }
        };
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return code;
    }
    if rows.is_empty() {
        println!("no plugins under {}", settings.plugins_dir.display());
    }
    for row in rows {
        match row["error"].as_str() {
            Some(error) => println!("!  {error}"),
            None => println!(
                "{:<20} {:<10} {:<9} {}",
                row["name"].as_str().unwrap_or(""),
                row["version"].as_str().unwrap_or(""),
                if row["built"].as_bool() == Some(true) { "built" } else { "not built" },
                row["description"].as_str().unwrap_or("")
            ),
        }
    }
    code
}

fn check(settings: Settings, tenant: Option<String>, json: bool) -> u8 {
    let policies: Vec<Arc<TenantPolicy>> = match tenant {
        Some(t) => match settings.tenants.get(&t) {
            Ok(p) => vec![p],
            Err(e) => return fail(EXIT_DENIED, e),
        },
        None if settings.tenants.configured() => settings.tenants.iter().cloned().collect(),
        None => match settings.tenants.get(&settings.default_tenant) {
            Ok(p) => vec![p],
            Err(e) => return fail(EXIT_DENIED, e),
        },
    };
    let registry = Registry::new(&settings.plugins_dir);
    let mut manifests = Vec::new();
    let mut code = 0;
    for m in registry.scan() {
        match m {
            Ok(m) => manifests.push(m),
            Err(e) => {
                code = EXIT_LOAD;
                eprintln!("error: {e}");
            }
        }
    }
    let mut rows = Vec::new();
    for policy in &policies {
        for m in &manifests {
            let row = check_one(policy, m);
            if row["refused"].as_array().is_some_and(|r| !r.is_empty()) || row["may_run"] == false {
                code = code.max(EXIT_DENIED);
            }
            rows.push(row);
        }
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return code;
    }
    for row in &rows {
        let may_run = row["may_run"].as_bool() == Some(true);
        println!(
            "{} {} for tenant {}: {}",
            row["plugin"].as_str().unwrap_or(""),
            row["version"].as_str().unwrap_or(""),
            row["tenant"].as_str().unwrap_or(""),
            if may_run { "may run" } else { "may NOT run" }
        );
        if !may_run {
            println!("    {}", row["why_not"].as_str().unwrap_or(""));
        }
        for (what, key) in [
            ("routes", "routes"),
            ("agents", "agents"),
            ("read", "read"),
            ("write", "write"),
            ("dirs", "dirs"),
            ("approvals", "approvals"),
        ] {
            let asked = &row["requested"][key];
            let granted = &row["granted"][key];
            if asked.as_array().is_some_and(Vec::is_empty) || asked == false {
                continue;
            }
            println!("    {what:<10} asked {asked}  granted {granted}");
        }
        for r in row["refused"].as_array().into_iter().flatten() {
            println!(
                "    refused   {}: {}",
                r["capability"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    code
}

fn check_one(policy: &TenantPolicy, m: &Manifest) -> serde_json::Value {
    let caps = &m.capabilities;
    let board = caps.board();
    let grants = tenants::resolve(policy, caps);
    let why_not = policy.check_agent(&m.name).err();
    serde_json::json!({
        "tenant": policy.name,
        "plugin": m.name,
        "version": m.version.to_string(),
        "may_run": why_not.is_none(),
        "why_not": why_not,
        "requested": {
            "routes": caps.routes, "agents": caps.agents, "read": board.read, "write": board.write,
            "dirs": caps.dirs, "approvals": caps.approvals,
        },
        "granted": {
            "routes": &*grants.routes, "agents": &*grants.agents, "read": &*grants.read, "write": &*grants.write,
            "dirs": grants.dirs.iter().map(|d| d.guest.clone()).collect::<Vec<_>>(), "approvals": grants.approvals,
        },
        "refused": &*grants.refused,
    })
}
