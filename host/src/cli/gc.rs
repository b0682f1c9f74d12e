//! `paddock gc`: forgets at once what `[retention]` says is old — finished
//! runs with their steps and journals, settled questions, dead letters, and
//! per-day usage rows. A serving host does the same every
//! `retention.interval` ([`spawn_retention`]).

use super::{EXIT_CONFIG, fail};
use crate::config::{FlowsStore, Settings};
use crate::flow::{Flows, Pruned, now_ms};
use crate::quota::LedgerStore;
use clap::Args;
use std::time::{Duration, SystemTime};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print one JSON object
    #[arg(long)]
    json: bool,
}

/// Forgets the per-day usage rows older than `retention.usage`; how many (0
/// for a ledger in memory).
fn forget_usage(settings: &Settings) -> Result<u64, String> {
    match &settings.ledger {
        LedgerStore::Memory => Ok(0),
        LedgerStore::Sqlite(path) if !path.exists() => Ok(0),
        LedgerStore::Sqlite(path) => {
            let before = SystemTime::now().checked_sub(settings.retention.usage).unwrap_or(SystemTime::UNIX_EPOCH);
            crate::quota::forget_usage_days(path, before).map_err(|e| format!("host.ledger: {e}"))
        }
        LedgerStore::Postgres(database) => {
            let before = SystemTime::now().checked_sub(settings.retention.usage).unwrap_or(SystemTime::UNIX_EPOCH);
            crate::quota::forget_usage_days_in(database, before).map_err(|e| format!("host.ledger: {e}"))
        }
    }
}

fn line(p: &Pruned, versions: u64, usage_rows: u64) -> String {
    format!(
        "forgot {} finished runs, {} settled questions, {} dead letters ({}), {versions} kept versions \
         and {usage_rows} per-day usage rows",
        p.runs,
        p.approvals,
        p.dead_letters,
        crate::config::ByteSize(p.bytes)
    )
}

pub fn gc(settings: Settings, args: GcArgs) -> u8 {
    let store = match &settings.flows {
        // Nothing kept, nothing to forget: no file is made for it.
        FlowsStore::Memory => None,
        FlowsStore::Sqlite(path) if !path.exists() => None,
        at => match crate::flow::open_store(at, crate::flow::FlowBounds::default()) {
            Ok(s) => Some(s),
            Err(e) => return fail(EXIT_CONFIG, format!("host.flows: {e}")),
        },
    };
    let pruned = match &store {
        None => Pruned::default(),
        Some(store) => match crate::flow::prune(store.as_ref(), &settings.retention, now_ms()) {
            Ok(p) => p,
            Err(e) => return fail(EXIT_CONFIG, format!("host.flows: {e}")),
        },
    };
    let versions = match forget_versions(&settings, store.as_deref()) {
        Ok(n) => n,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    let usage_rows = match forget_usage(&settings) {
        Ok(n) => n,
        Err(e) => return fail(EXIT_CONFIG, e),
    };
    if args.json {
        println!("{}", serde_json::json!({ "flows": pruned, "versions": versions, "usage_rows": usage_rows }));
    } else {
        println!("{}", line(&pruned, versions, usage_rows));
    }
    0
}

/// Forgets the kept versions no run in `store` needs (all old ones, with no store).
fn forget_versions(settings: &Settings, store: Option<&dyn crate::flow::FlowStore>) -> Result<u64, String> {
    let versions = crate::runtime::plugins::Versions::open_at(&settings.plugins.book, &settings.data_dir)
        .map_err(|e| format!("host.plugin-state: {e}"))?;
    let empty = crate::flow::MemoryStore::default();
    crate::flow::forget_versions(store.unwrap_or(&empty), &versions, &settings.retention)
        .map_err(|e| format!("host.plugin-state: {e}"))
}

/// Forgets what is old every `retention.interval` (at once, then on each
/// tick), off the async threads; `None` when the interval is 0.
pub fn spawn_retention(flows: &Flows) -> Option<tokio::task::JoinHandle<()>> {
    let every = flows.runtime().settings().retention.interval;
    if every == Duration::ZERO {
        return None;
    }
    let flows = flows.clone();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pass = flows.clone();
            let done = tokio::task::spawn_blocking(move || {
                let settings = pass.runtime().settings();
                (pass.gc(), pass.forget_versions(), forget_usage(&settings))
            })
            .await;
            match done {
                Ok((Ok(p), Ok(versions), Ok(rows))) if p != Pruned::default() || versions > 0 || rows > 0 => {
                    tracing::info!("retention: {}", line(&p, versions, rows));
                }
                Ok((Ok(_), Ok(_), Ok(_))) => {}
                Ok((flows, versions, usage)) => {
                    for e in [flows.err(), versions.err(), usage.err()].into_iter().flatten() {
                        tracing::warn!("retention: {e}");
                    }
                }
                Err(e) => tracing::warn!("retention: {e}"),
            }
        }
    }))
}
