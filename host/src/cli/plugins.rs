//! `paddock plugins`: what is in the plugins folder.

use super::{EXIT_CONFIG, EXIT_DENIED, EXIT_LOAD, EXIT_USAGE, fail};
use crate::config::Settings;
use crate::plugins::book::{self, Book};
use crate::plugins::load::read_component;
use crate::plugins::{Manifest, Registry, Widening};
use crate::runtime::PluginStatus;
use crate::tenants::{self, TenantPolicy};
use clap::Subcommand;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins: version, hash, what serves, held versions, errors
    #[command(
        after_help = "With a `paddock serve` host running on the same host.data, shows what it serves: version, hash,\nloaded at, invocations, held versions and the last error. Otherwise reads the plugins folder.\n\nExample:\n  paddock plugins list --json\n\nExit code 4 when a manifest is broken or a plugin has no version serving."
    )]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Let a held version go live: one that asks for capabilities its predecessor did not have
    #[command(
        after_help = "Example:\n  paddock plugins approve planner 1.3.0+3fa2c9d1e0b4\n\nThe version id is the one `paddock plugins list` shows."
    )]
    Approve {
        /// The plugin
        name: String,
        /// The version id to approve
        version: String,
    },
    /// Show what each plugin asks for, what its tenant grants, and what is refused
    #[command(
        after_help = "Examples:\n  paddock plugins check\n  paddock plugins check --tenant acme --json\n\nExit code 9 when a tenant that may run a plugin refuses a capability it asks for (a tenant not listing a plugin is\nshown, not an error); 4 when a manifest is broken."
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

pub async fn plugins(settings: Settings, command: PluginsCommand) -> u8 {
    match command {
        PluginsCommand::List { json } => match super::serve::serving(&settings.data_dir) {
            Some(host) => match live(&host).await {
                Ok(rows) => show_live(&format!("{}://{}", host.scheme, host.address), rows, json),
                Err(e) => {
                    eprintln!("note: the host at {} did not answer ({e}); reading the plugins folder", host.address);
                    list(settings, json)
                }
            },
            None => list(settings, json),
        },
        PluginsCommand::Approve { name, version } => approve(settings, &name, &version).await,
        PluginsCommand::Check { tenant, json } => check(settings, tenant, json),
    }
}

fn list(settings: Settings, json: bool) -> u8 {
    let registry = Registry::of(&settings);
    let book = open_book(&settings);
    let mut code = 0;
    let mut rows = Vec::new();
    for manifest in registry.scan().unwrap_or_else(|e| vec![Err(e)]) {
        let row = match manifest {
            Ok(m) => {
                let id = version_id(&m);
                serde_json::json!({
                "name": m.name,
                "version": m.version.to_string(),
                "held": held(&settings, &book, &m, id.as_deref()),
                "version_id": id,
                "description": m.description,
                "component": m.component,
                "built": m.component.is_file(),
                "capabilities": m.capabilities,
                "error": null,
                })
            }
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
            None => {
                println!(
                    "{:<20} {:<26} {:<9} {}",
                    row["name"].as_str().unwrap_or(""),
                    row["version_id"].as_str().or(row["version"].as_str()).unwrap_or(""),
                    if row["built"].as_bool() == Some(true) { "built" } else { "not built" },
                    row["description"].as_str().unwrap_or("")
                );
                if let Some(asks) = row["held"].as_array() {
                    let asks: Vec<&str> = asks.iter().filter_map(|a| a.as_str()).collect();
                    println!("   held: asks for {} beyond the accepted version", asks.join(", "));
                }
            }
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
    let registry = Registry::of(&settings);
    let mut manifests = Vec::new();
    let mut code = 0;
    for m in registry.scan().unwrap_or_else(|e| vec![Err(e)]) {
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
            // A tenant that does not list a plugin chose so; one that lists it
            // but refuses what it asks for has set it up to fail its calls.
            if row["may_run"] == true && row["refused"].as_array().is_some_and(|r| !r.is_empty()) {
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
            ("tools", "tools"),
            ("http", "http"),
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
    let why_not = policy.check_agent(&m.name).err().map(|e| e.to_string());
    serde_json::json!({
        "tenant": policy.name,
        "plugin": m.name,
        "version": m.version.to_string(),
        "may_run": why_not.is_none(),
        "why_not": why_not,
        "requested": {
            "routes": caps.routes, "agents": caps.agents, "read": board.read, "write": board.write,
            "dirs": caps.dirs, "tools": caps.tools, "http": caps.http, "approvals": caps.approvals,
        },
        "granted": {
            "routes": &*grants.routes, "agents": &*grants.agents, "read": &*grants.read, "write": &*grants.write,
            "dirs": grants.dirs.iter().map(|d| d.guest.clone()).collect::<Vec<_>>(), "tools": &*grants.tools,
            "http": &*grants.http,
            "approvals": grants.approvals,
        },
        "refused": &*grants.refused,
    })
}

/// The version id `m` and its component make (`Manifest::version_id`),
/// when the component is built.
pub(crate) fn version_id(m: &Manifest) -> Option<String> {
    read_component(&m.component).ok().map(|f| m.version_id(&f.hash))
}

fn open_book(settings: &Settings) -> Book {
    Book::open_at(&settings.plugins.book).unwrap_or_else(|e| {
        eprintln!("warning: host.plugin-state: {e}");
        Book::memory()
    })
}

/// What `m` (of version `id`, when built) asks for beyond the accepted version, when a host would hold it.
fn held(settings: &Settings, book: &Book, m: &Manifest, id: Option<&str>) -> Option<Vec<String>> {
    let accepted = book.accepted(&m.name)?;
    let widening = Widening::between(&accepted.capabilities, &m.capabilities);
    let approved = id.is_some_and(|v| book.approved(&m.name, v));
    if widening.is_empty() || approved || widening.granted_in_advance(&settings.tenants, &m.name) {
        return None;
    }
    Some(widening.describe())
}

/// The plugins of the host serving at `address`.
async fn live(host: &super::serve::Serving) -> Result<Vec<PluginStatus>, String> {
    let client = host.client()?;
    let request = host.request(&client, reqwest::Method::GET, "/v1/plugins");
    let response = request.send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("it answered {}", response.status()));
    }
    response.json().await.map_err(|e| e.to_string())
}

fn show_live(url: &str, rows: Vec<PluginStatus>, json: bool) -> u8 {
    let code = if rows.iter().any(|r| r.serving.is_none()) { EXIT_LOAD } else { 0 };
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
        return code;
    }
    println!("served by the host at {url}");
    for row in rows {
        match &row.serving {
            Some(v) => println!(
                "{:<20} {:<26} {} invocations, loaded {} ({})",
                row.name,
                v.version,
                v.invocations,
                v.loaded_at,
                v.compiled.describe(),
            ),
            None => println!("{:<20} {:<26} nothing serving", row.name, "-"),
        }
        if let Some(h) = &row.held {
            println!(
                "   held: {} asks for {}; approve with `paddock plugins approve {} {}`",
                h.version.version,
                h.asks.join(", "),
                row.name,
                h.version.version
            );
        }
        if let Some(e) = &row.last_error {
            println!("   last error ({}): {}", e.at, e.message);
        }
    }
    code
}

async fn approve(settings: Settings, name: &str, version: &str) -> u8 {
    if settings.plugins.book == crate::config::BookStore::Memory {
        return fail(
            EXIT_CONFIG,
            "host.plugin-state is \"memory\": approvals are not kept; a host in memory mode approves through its API",
        );
    }
    let registry = Registry::of(&settings);
    let on_disk = registry.find(name).ok().and_then(|m| version_id(&m));
    let held = match super::serve::serving(&settings.data_dir) {
        Some(host) => live(&host)
            .await
            .ok()
            .and_then(|rows| rows.into_iter().find(|r| r.name == name)?.held.map(|h| h.version.version)),
        None => None,
    };
    // A version a run pinned, kept for resuming it (here or in the database).
    let kept = crate::runtime::plugins::Versions::open_at(&settings.plugins.book, &settings.data_dir)
        .and_then(|versions| versions.find(name, version))
        .is_ok_and(|found| found.is_some());
    if on_disk.as_deref() != Some(version) && held.as_deref() != Some(version) && !kept {
        let known: Vec<String> =
            [held.map(|h| format!("held: {h}")), on_disk.map(|d| format!("in the plugins folder: {d}"))]
                .into_iter()
                .flatten()
                .collect();
        let known = if known.is_empty() { "none".to_string() } else { known.join(", ") };
        return fail(EXIT_USAGE, format!("plugin {name:?} has no version {version} ({known})"));
    }
    match book::approve_at(&settings.plugins.book, name, version).map(|kept| kept.unwrap_or(true)) {
        Ok(true) => {
            println!("approved {name} {version}");
            0
        }
        Ok(false) => {
            println!("{name} {version} was approved already");
            0
        }
        Err(e) => fail(EXIT_CONFIG, e),
    }
}
