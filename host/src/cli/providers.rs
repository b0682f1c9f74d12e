//! `paddock providers`: the configured routes, and a live check of each target.

use super::EXIT_PROVIDER;
use super::host_api::HostApi;
use crate::config::Settings;
use crate::gateway::{Gateway, TargetReport};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ProvidersCommand {
    /// List routes and their targets: provider, kind, model, price (no network)
    #[command(after_help = "Example:\n  paddock providers list --json")]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Send a tiny request to every route target; print status, latency, breaker state and headroom
    #[command(after_help = "Example:\n  paddock providers check\n\nExit code 8 when any target fails its check.")]
    Check {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn providers(settings: Settings, command: ProvidersCommand) -> u8 {
    // A serving host's breakers and headroom are the live ones: check from there.
    if let ProvidersCommand::Check { json } = command
        && let Some(host) = HostApi::find(&settings)
    {
        return match host {
            Ok(host) => check_through(&host, json).await,
            Err(e) => super::fail(super::EXIT_CRASH, e),
        };
    }
    let gateway = match Gateway::new(&settings.gateway) {
        Ok(g) => g,
        Err(e) => return super::fail(super::EXIT_CRASH, e),
    };
    if gateway.is_simulated_default() {
        eprintln!("note: no providers are configured; the routes below answer from the simulated provider");
    }
    match command {
        ProvidersCommand::List { json } => list(&settings, json),
        ProvidersCommand::Check { json } => check(&gateway, json).await,
    }
}

fn list(settings: &Settings, json: bool) -> u8 {
    let g = &settings.gateway;
    let rows: Vec<serde_json::Value> = g
        .routes
        .iter()
        .flat_map(|(route, r)| {
            r.targets.iter().map(move |t| {
                let provider = &g.providers[&t.provider];
                serde_json::json!({
                    "route": route,
                    "strategy": format!("{:?}", r.strategy).to_lowercase(),
                    "provider": t.provider,
                    "kind": provider.kind.as_str(),
                    "model": t.model,
                    "base_url": provider.base_url,
                    "key": provider.key.is_some(),
                    "price": g.price(&t.provider, &t.model).map(|p| serde_json::json!({
                        "input_usd_per_mtok": p.input as f64 / 1e6,
                        "output_usd_per_mtok": p.output as f64 / 1e6,
                    })),
                })
            })
        })
        .collect();
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    if rows.is_empty() {
        println!("no routes configured");
    }
    println!("{:<12} {:<16} {:<10} {:<28} {:<5} price in/out $/Mtok", "route", "provider", "kind", "model", "key");
    for row in rows {
        let price = match &row["price"] {
            serde_json::Value::Null => "-".to_string(),
            p => format!("{}/{}", p["input_usd_per_mtok"], p["output_usd_per_mtok"]),
        };
        println!(
            "{:<12} {:<16} {:<10} {:<28} {:<5} {price}",
            row["route"].as_str().unwrap_or(""),
            row["provider"].as_str().unwrap_or(""),
            row["kind"].as_str().unwrap_or(""),
            row["model"].as_str().unwrap_or(""),
            if row["key"] == true { "yes" } else { "no" },
        );
    }
    0
}

async fn check(gateway: &Gateway, json: bool) -> u8 {
    let reports: Vec<Checked> = gateway.check().await.into_iter().map(Checked::from).collect();
    print_check(&reports, json)
}

/// A [`TargetReport`] as printed, and as read back from a host's answer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Checked {
    route: String,
    provider: String,
    kind: String,
    model: String,
    status: String,
    latency_ms: f64,
    breaker: String,
    headroom: Option<f64>,
}

impl From<TargetReport> for Checked {
    fn from(r: TargetReport) -> Self {
        let TargetReport { route, provider, kind, model, status, latency_ms, breaker, headroom } = r;
        Checked { route, provider, kind: kind.into(), model, status, latency_ms, breaker: breaker.into(), headroom }
    }
}

/// `POST /v1/providers/check` on the serving host.
async fn check_through(host: &HostApi, json: bool) -> u8 {
    let answer = match host.url(&["v1", "providers", "check"], &[]) {
        Ok(url) => host.call(reqwest::Method::POST, url, None).await,
        Err(e) => Err(e),
    };
    let answer = match answer {
        Ok(a) if a.status.is_success() => a,
        Ok(a) => return super::fail(super::EXIT_CRASH, a.message()),
        Err(e) => return super::fail(super::EXIT_CRASH, e),
    };
    if answer.body["simulated_defaults"] == true {
        eprintln!("note: no providers are configured; the routes below answer from the simulated provider");
    }
    match serde_json::from_value::<Vec<Checked>>(answer.body["targets"].clone()) {
        Ok(reports) => print_check(&reports, json),
        Err(e) => super::fail(super::EXIT_CRASH, format!("the host's check: {e}")),
    }
}

fn print_check(reports: &[Checked], json: bool) -> u8 {
    let failed = reports.iter().filter(|r| r.status != "ok").count();
    if json {
        println!("{}", serde_json::to_string(&reports).unwrap_or_else(|_| "[]".into()));
    } else {
        println!(
            "{:<12} {:<16} {:<28} {:>9} {:<9} {:<8} status",
            "route", "provider", "model", "latency", "breaker", "headroom"
        );
        for r in reports {
            let headroom = r.headroom.map_or("-".to_string(), |h| format!("{:.0}%", h * 100.0));
            println!(
                "{:<12} {:<16} {:<28} {:>7.1}ms {:<9} {:<8} {}",
                r.route, r.provider, r.model, r.latency_ms, r.breaker, headroom, r.status
            );
        }
    }
    if failed > 0 { EXIT_PROVIDER } else { 0 }
}
