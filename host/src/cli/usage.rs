//! `paddock usage`: what the ledger holds — spend, tokens, requests and
//! refusals per tenant, agent and window, beside the budgets configured.

use super::host_api::HostApi;
use super::{EXIT_CONFIG, EXIT_USAGE, fail};
use crate::config::Settings;
use crate::quota::{Budget, LedgerStore, UsageRow};
use clap::Args;

#[derive(Debug, Args)]
pub struct UsageArgs {
    /// Only this tenant
    #[arg(long)]
    tenant: Option<String>,
    /// Print JSON (one array of rows)
    #[arg(long)]
    json: bool,
}

pub async fn usage(settings: Settings, args: UsageArgs) -> u8 {
    // A serving host has commits not yet in the file, and keeps usage even
    // with a memory ledger: ask it.
    if let Some(host) = HostApi::find(&settings) {
        return match host {
            Ok(host) => match usage_of_host(&host, args.tenant.as_deref()).await {
                Ok(rows) => print(&settings, &rows, args.json),
                Err(e) => fail(EXIT_CONFIG, e),
            },
            Err(e) => fail(EXIT_CONFIG, e),
        };
    }
    let path = match &settings.ledger {
        LedgerStore::Sqlite(path) => path.clone(),
        LedgerStore::Postgres(database) => {
            return match crate::quota::read_usage_in(database, args.tenant.as_deref()) {
                Ok(rows) => print(&settings, &rows, args.json),
                Err(e) => fail(EXIT_CONFIG, format!("host.ledger: {e}")),
            };
        }
        LedgerStore::Memory => {
            return fail(
                EXIT_USAGE,
                format!(
                    "{}: host.ledger is \"memory\", so usage is not kept between runs; set it to \"durable\"",
                    settings.source_name()
                ),
            );
        }
    };
    if !path.exists() {
        if args.json {
            println!("[]");
        } else {
            println!("no usage recorded yet ({} does not exist)", path.display());
        }
        return 0;
    }
    let rows = match crate::quota::read_usage(&path, args.tenant.as_deref()) {
        Ok(rows) => rows,
        Err(e) => return fail(EXIT_CONFIG, format!("host.ledger: {e}")),
    };
    print(&settings, &rows, args.json)
}

/// The rows `GET /v1/usage` answers.
async fn usage_of_host(host: &HostApi, tenant: Option<&str>) -> Result<Vec<UsageRow>, String> {
    let url = host.url(&["v1", "usage"], &[("tenant", tenant.map(String::from))])?;
    let answer = host.call(reqwest::Method::GET, url, None).await?;
    if !answer.status.is_success() {
        return Err(answer.message());
    }
    serde_json::from_value(answer.body["rows"].clone()).map_err(|e| format!("the host's usage rows: {e}"))
}

/// The rows as a table, or as JSON with each row's budget.
fn print(settings: &Settings, rows: &[UsageRow], json: bool) -> u8 {
    if json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(budget) = budget_of(settings, r).and_then(|b| budget_json(&b, &r.window)) {
                    v["budget"] = budget;
                }
                v
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    if rows.is_empty() {
        println!("no usage recorded yet");
        return 0;
    }
    println!(
        "{:<16} {:<16} {:<10} {:>9} {:>12} {:>12} {:>12} {:>9}",
        "TENANT", "AGENT", "WINDOW", "REQUESTS", "TOKENS IN", "TOKENS OUT", "COST USD", "REFUSALS"
    );
    for r in rows {
        let budget = budget_of(settings, r);
        let tokens_budget = budget.and_then(|b| if is_day(&r.window) { b.tokens_per_day } else { b.tokens_per_month });
        let cost_budget =
            budget.and_then(|b| if is_day(&r.window) { b.cost_micros_per_day } else { b.cost_micros_per_month });
        println!(
            "{:<16} {:<16} {:<10} {:>9} {:>12} {:>12} {:>12} {:>9}{}",
            r.tenant,
            r.agent.as_deref().unwrap_or("*"),
            r.window,
            r.requests,
            r.input_tokens,
            r.output_tokens,
            usd(r.cost_micros),
            r.refusals,
            match (tokens_budget, cost_budget) {
                (None, None) => String::new(),
                (t, c) => format!(
                    "   budget:{}{}",
                    t.map_or(String::new(), |t| format!(" {} of {t} tokens", r.input_tokens + r.output_tokens)),
                    c.map_or(String::new(), |c| format!(" ${} of ${}", usd(r.cost_micros), usd(c))),
                ),
            }
        );
    }
    0
}

/// A day window is `YYYY-MM-DD`, a month `YYYY-MM`.
fn is_day(window: &str) -> bool {
    window.len() == 10
}

/// Dollars from micro-dollars, exact to the micro-dollar (40 is `0.000040`,
/// where four decimals showed `0.0000`).
fn usd(micros: u64) -> String {
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// The budget of `row`'s scope: its tenant's, or its agent's within it.
pub(crate) fn budget_of(settings: &Settings, row: &UsageRow) -> Option<Budget> {
    let policy = settings.tenants.iter().find(|p| p.name == row.tenant)?;
    match &row.agent {
        None => Some(policy.budget),
        Some(agent) => policy.agent_budgets.get(agent).map(|b| b.budget),
    }
}

/// The row's budgets, when its window has any.
pub(crate) fn budget_json(b: &Budget, window: &str) -> Option<serde_json::Value> {
    let (tokens, cost) = if is_day(window) {
        (b.tokens_per_day, b.cost_micros_per_day)
    } else {
        (b.tokens_per_month, b.cost_micros_per_month)
    };
    (tokens.is_some() || cost.is_some()).then(|| serde_json::json!({ "tokens": tokens, "cost_micros": cost }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cost_shows_every_micro_dollar() {
        assert_eq!(super::usd(40), "0.000040");
        assert_eq!(super::usd(0), "0.000000");
        assert_eq!(super::usd(12_345_678), "12.345678");
        assert_eq!(super::usd(5_000_000), "5.000000");
    }
}
