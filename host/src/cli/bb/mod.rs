//! `paddock bb`: read and write a tenant's blackboard from the shell.
//!
//! With the memory store (the default) the board lives only as long as this
//! command, which is rarely what an operator wants; every command says so.
//! Each command first removes the keys whose ttl ran out while no host did,
//! so `history` and `watch` show their deletions; `watch` keeps doing so.

use super::{EXIT_AGENT_ERROR, EXIT_CRASH, EXIT_USAGE, fail};
mod remote;

use super::host_api::HostApi;
use super::serve::board::{change_json, entry_json};
use crate::blackboard::{BoardError, Change, Namespace, SWEEP_EVERY, Writer, from_unix_millis, spawn_sweeper};
use crate::config::{BoardStore, Settings, Span};
use crate::core::names::validate_tenant;
use clap::Subcommand;
use serde_json::Value;
use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The agent recorded for changes made from the command line.
const CLI_AGENT: &str = "paddock-cli";
/// The run recorded for them.
const CLI_RUN: &str = "cli";

#[derive(Debug, Subcommand)]
pub enum BbCommand {
    /// Print a key's value (exit 1 when the key is absent)
    #[command(after_help = "Example:\n  paddock bb get tasks/1 --tenant acme --json")]
    Get {
        /// The key
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// Write a value (or, with --lines, one `KEY VALUE` per stdin line, printing each revision once stored)
    #[command(
        after_help = "Examples:\n  paddock bb put tasks/1 '{\"todo\":\"write\"}'\n  paddock bb put locks/report me --expect 0 --ttl 30s\n  paddock bb put --lines < batch.txt"
    )]
    Put {
        /// The key
        #[arg(required_unless_present = "lines")]
        key: Option<String>,
        /// The value (text)
        #[arg(required_unless_present = "lines")]
        value: Option<String>,
        /// Only if the key's revision is this (0 = absent): compare-and-swap
        #[arg(long, value_name = "REV")]
        expect: Option<u64>,
        /// Expire after this long (1ms to 365 days, e.g. 30s, 5m, 2h): the key then reads as absent
        #[arg(long, value_parser = Span::parse, value_name = "DURATION")]
        ttl: Option<Span>,
        /// Read `KEY VALUE` lines from stdin
        #[arg(long, conflicts_with_all = ["key", "value", "expect"])]
        lines: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Delete a key (exit 1 when it was absent)
    #[command(after_help = "Example:\n  paddock bb delete locks/report --tenant acme")]
    Delete {
        /// The key
        key: String,
        #[command(flatten)]
        common: Common,
    },
    /// List keys under a prefix
    #[command(after_help = "Example:\n  paddock bb list tasks/ --limit 100")]
    List {
        /// The prefix (empty: every key)
        #[arg(default_value = "")]
        prefix: String,
        /// Most keys to print
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Print changes under a prefix as they happen
    #[command(after_help = "Example:\n  paddock bb watch tasks/ --after 0 --count 10")]
    Watch {
        /// The prefix (empty: every key)
        #[arg(default_value = "")]
        prefix: String,
        /// Start after this revision [default: now]
        #[arg(long, value_name = "REV")]
        after: Option<u64>,
        /// Stop after this many changes
        #[arg(long)]
        count: Option<usize>,
        /// Stop when nothing changed for this long
        #[arg(long, value_parser = Span::parse)]
        timeout: Option<Span>,
        #[command(flatten)]
        common: Common,
    },
    /// Print the kept history of changes under a prefix
    #[command(after_help = "Example:\n  paddock bb history tasks/ --after 120 --json")]
    History {
        /// The prefix (empty: every key)
        #[arg(default_value = "")]
        prefix: String,
        /// Changes after this revision
        #[arg(long, default_value_t = 0, value_name = "REV")]
        after: u64,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
pub struct Common {
    /// The tenant [default: host.default-tenant]
    #[arg(long)]
    tenant: Option<String>,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub async fn bb(settings: Settings, command: BbCommand) -> u8 {
    let common = match &command {
        BbCommand::Get { common, .. }
        | BbCommand::Put { common, .. }
        | BbCommand::List { common, .. }
        | BbCommand::Watch { common, .. }
        | BbCommand::History { common, .. }
        | BbCommand::Delete { common, .. } => common,
    };
    let tenant = common.tenant.clone().unwrap_or_else(|| settings.default_tenant.clone());
    if let Err(e) = validate_tenant(&tenant) {
        return fail(EXIT_USAGE, format!("--tenant: {e}"));
    }
    if let Err(e) = settings.tenants.get(&tenant) {
        return fail(EXIT_USAGE, format!("--tenant: {e}"));
    }
    // Through a serving host: its watchers hear the write at once, and it is written by `paddock-api`.
    if let Some(host) = HostApi::find(&settings) {
        return match host {
            Ok(host) => remote::bb(&host, tenant, command).await,
            Err(e) => fail(EXIT_CRASH, e),
        };
    }
    if settings.board_store == BoardStore::Memory {
        eprintln!("note: blackboard.store is \"memory\": this board ends with this command (set store = \"durable\")");
    }
    let board = match crate::runtime::open_blackboard(&settings) {
        Ok(b) => Arc::new(b),
        Err(e) => return fail(EXIT_CRASH, e),
    };
    board.sweep_expired(board.now());
    let ns = board.namespace(&tenant);
    let json = common.json;
    let result = match command {
        BbCommand::Get { key, .. } => get(&ns, &key, json),
        BbCommand::Delete { key, .. } => {
            ns.delete(&key, &cli_writer()).map(|deleted| print_deleted(&key, ns.tenant(), deleted, json))
        }
        BbCommand::Put { lines: true, ttl, .. } => put_lines(&ns, ttl.map(|t| t.0), json),
        BbCommand::Put { key, value, expect, ttl, .. } => {
            put(&ns, &key.unwrap_or_default(), &value.unwrap_or_default(), expect, ttl.map(|t| t.0), json)
        }
        BbCommand::List { prefix, limit, .. } => list(&ns, &prefix, limit, json),
        BbCommand::Watch { prefix, after, count, timeout, .. } => {
            let sweeper = spawn_sweeper(&board, SWEEP_EVERY);
            let watched = watch(&ns, &prefix, after, count, timeout.map(|s| s.0), json).await;
            sweeper.abort();
            watched
        }
        BbCommand::History { prefix, after, .. } => ns.changes_after(&prefix, after).map(|changes| {
            for c in &changes {
                print_change(c, json);
            }
            0
        }),
    };
    result.unwrap_or_else(|e| fail(EXIT_AGENT_ERROR, e))
}

fn cli_writer() -> Writer {
    Writer::new(CLI_AGENT, CLI_RUN)
}

fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

fn get(ns: &Namespace, key: &str, json: bool) -> Result<u8, BoardError> {
    let Some(entry) = ns.get(key)? else {
        eprintln!("no key {key:?} in tenant {:?}", ns.tenant());
        return Ok(EXIT_AGENT_ERROR);
    };
    print_entry(&entry_json(key, &entry), json);
    Ok(0)
}

/// An entry as `GET /v1/board/keys/{key}` answers it.
fn print_entry(entry: &Value, json: bool) {
    if json {
        println!("{entry}");
    } else {
        // The value alone on stdout, so `$(paddock bb get KEY)` is the value; provenance on stderr.
        println!("{}", entry["value"].as_str().unwrap_or(""));
        eprintln!("{}", provenance(entry));
    }
}

/// `revision 3 by planner (run 0190…) at 2025-06-01T12:00:00.000Z[, expires …]`.
fn provenance(entry: &Value) -> String {
    let at = |field: &str| entry[field].as_u64().map(|ms| rfc3339(from_unix_millis(ms)));
    let expires = at("expires_at_ms").map_or(String::new(), |at| format!(", expires {at}"));
    format!(
        "revision {} by {} (run {}) at {}{expires}",
        entry["revision"].as_u64().unwrap_or(0),
        entry["writer"].as_str().unwrap_or(""),
        entry["run"].as_str().unwrap_or(""),
        at("written_at_ms").unwrap_or_default()
    )
}

fn put(
    ns: &Namespace,
    key: &str,
    value: &str,
    expect: Option<u64>,
    ttl: Option<Duration>,
    json: bool,
) -> Result<u8, BoardError> {
    let writer = cli_writer();
    let value = value.as_bytes();
    let revision = match (expect, ttl) {
        (Some(rev), Some(ttl)) => ns.compare_and_swap_expiring(key, rev, value, ttl, &writer)?,
        (Some(rev), None) => ns.compare_and_swap(key, rev, value, &writer)?,
        (None, Some(ttl)) => ns.put_expiring(key, value, ttl, &writer)?,
        (None, None) => ns.put(key, value, &writer)?,
    };
    print_written(key, revision, json);
    Ok(0)
}

/// One write per line; each revision is printed (and flushed) only once the
/// store has acknowledged it, so a caller can trust every printed line.
fn put_lines(ns: &Namespace, ttl: Option<Duration>, json: bool) -> Result<u8, BoardError> {
    let writer = cli_writer();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.map_err(|e| BoardError::Storage(format!("reading stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(' ') else {
            eprintln!("error: line {}: expected `KEY VALUE`", n + 1);
            return Ok(EXIT_USAGE);
        };
        let revision = match ttl {
            Some(ttl) => ns.put_expiring(key, value.as_bytes(), ttl, &writer)?,
            None => ns.put(key, value.as_bytes(), &writer)?,
        };
        print_written(key, revision, json);
    }
    Ok(0)
}

fn print_written(key: &str, revision: u64, json: bool) {
    if json {
        println!("{}", serde_json::json!({ "key": key, "revision": revision }));
    } else {
        println!("{key} {revision}");
    }
    let _ = std::io::stdout().flush();
}

fn list(ns: &Namespace, prefix: &str, limit: usize, json: bool) -> Result<u8, BoardError> {
    let mut keys: Vec<Arc<str>> = Vec::new();
    let mut after: Option<Arc<str>> = None;
    while keys.len() < limit {
        let page = ns.list_after(prefix, after.as_deref(), limit - keys.len())?;
        let Some(last) = page.last().cloned() else { break };
        keys.extend(page);
        after = Some(last);
    }
    let keys: Vec<&str> = keys.iter().map(|k| &**k).collect();
    print_keys(&keys, json);
    Ok(0)
}

/// `KEY deleted`; a key that was absent is said on stderr, with exit code 1.
fn print_deleted(key: &str, tenant: &str, deleted: bool, json: bool) -> u8 {
    if json {
        println!("{}", serde_json::json!({ "key": key, "deleted": deleted }));
    } else if deleted {
        println!("{key} deleted");
    }
    if deleted {
        0
    } else {
        eprintln!("no key {key:?} in tenant {tenant:?}");
        EXIT_AGENT_ERROR
    }
}

fn print_keys(keys: &[&str], json: bool) {
    if json {
        println!("{}", serde_json::json!(keys));
    } else {
        for key in keys {
            println!("{key}");
        }
    }
}

fn print_change(c: &Change, json: bool) {
    print_change_json(&change_json(c), json);
}

/// A change as the history and watch routes answer it.
fn print_change_json(c: &Value, json: bool) {
    if json {
        println!("{c}");
    } else {
        let by = format!("by {}, run {}", c["writer"].as_str().unwrap_or(""), c["run"].as_str().unwrap_or(""));
        let (revision, key) = (c["revision"].as_u64().unwrap_or(0), c["key"].as_str().unwrap_or(""));
        match c["value"].as_str() {
            Some(v) => println!("{revision} put {key} {v} ({by})"),
            None => println!("{revision} delete {key} ({by})"),
        }
    }
    let _ = std::io::stdout().flush();
}

async fn watch(
    ns: &Namespace,
    prefix: &str,
    after: Option<u64>,
    count: Option<usize>,
    timeout: Option<Duration>,
    json: bool,
) -> Result<u8, BoardError> {
    let mut cursor = match after {
        Some(rev) => rev,
        None => ns.revision()?,
    };
    let mut seen = 0;
    let wait = timeout.unwrap_or(Duration::from_secs(3600));
    loop {
        let changes = ns.watch(prefix, cursor, wait).await?;
        if changes.is_empty() {
            if timeout.is_some() {
                return Ok(0);
            }
            continue;
        }
        for c in &changes {
            print_change(c, json);
            cursor = c.revision;
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(0);
            }
        }
    }
}
