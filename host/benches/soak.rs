//! The soak: a real `paddock serve` under a mixed hostile workload for a few
//! minutes, its memory and disk sampled, and an ordinary tenant's latency
//! measured throughout. Bounded resources mean flat lines after the first
//! minute, whatever the hostile tenants keep doing.
//!
//! Each hostile tenant loops without pause:
//! - `cpu`: 4 requests to `spin` in flight (CPU-bound, stopped by fuel);
//! - `fan`: 2 flows in flight, each a fan-out of 50 items whose agent returns
//!   60 KB each from a tiny input (stopped at `limits.max-run-bytes`);
//! - `board`: rewrites one key with 512 KB values through the HTTP API
//!   (history bounded by `blackboard.history-bytes`);
//! - `chatty`: an agent printing 10,000 lines (the host log bounded per second);
//! - `lists`: `GET /v1/runs` in a loop.
//!
//! Tenant `b` calls `echo` 20 times a second, open-loop.
//!
//! `cargo bench -p paddock --bench soak` runs 3 minutes
//! (`PADDOCK_SOAK_SECONDS=600` for longer). It prints the samples and a
//! summary, and writes them to `target/soak-bench.json`.

use paddock_test_guests::guests;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
#[path = "common/report.rs"]
mod report;
#[path = "common/served.rs"]
mod served;
use served::Host;

/// How often memory and disk are sampled.
const SAMPLE: Duration = Duration::from_secs(5);

const FAN: &str = "[flow]\nname = \"fan\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input/items\"\ndo = \"item\"\n\
                   [steps.item]\nagent = \"step\"\ninput = { name = \"{{item}}\", pad = 60000 }\n";

/// Each tenant named, so each has its own bounds (unnamed ones share one set).
const TENANTS: &str = "[tenants.b]\nagents = [\"echo\"]\n[tenants.cpu]\nagents = [\"spin\"]\n\
                       [tenants.fan]\nagents = [\"step\"]\n[tenants.board]\nagents = []\n\
                       [tenants.chatty]\nagents = [\"chatty\"]\n";

/// A durable host with the plugins and the flow the hostile tenants use.
fn start_host() -> Host {
    let plugins = [
        ("echo", guests::ECHO, ""),
        ("spin", guests::SPIN, "[limits]\nfuel = 2_500_000_000\n"),
        ("step", guests::FLOW_STEP, ""),
        ("chatty", guests::CHATTY, ""),
    ];
    // Durable stores, default bounds but for a smaller run and tenant share
    // of the flow store and a pass of retention every 10 s.
    Host::start(&plugins, &[("flows/fan.toml", FAN)], |component_dirs| {
        format!(
            "[host]\nplugin-state = \"memory\"\n{component_dirs}\
             [blackboard]\nstore = \"durable\"\n\
             [limits]\nmax-run-bytes = \"4MiB\"\nmax-flow-bytes = \"64MiB\"\n\
             [retention]\nruns-per-tenant = 50\ninterval = \"10s\"\n\
             [serve]\nauth = \"none\"\nmax-connections = 4096\nmax-connections-per-source = 4096\n{TENANTS}"
        )
    })
}

/// The resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.split_whitespace().next());
    kb.and_then(|k| k.parse::<u64>().ok()).unwrap_or(0) * 1024
}

/// The bytes of every file under `dir`.
fn disk(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Every file under `dir` with its bytes, largest first.
fn files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => out.extend(files(&e.path())),
            Ok(m) => out.push((e.path().display().to_string(), m.len())),
            Err(_) => {}
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.1));
    out
}

/// Sends `request` for `tenant` in a loop until `stop`, `copies` at once.
fn hostile(
    client: &reqwest::Client,
    copies: usize,
    stop: &Arc<AtomicBool>,
    request: impl Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
) {
    let request = Arc::new(request);
    for _ in 0..copies {
        let (client, stop, request) = (client.clone(), stop.clone(), request.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if let Ok(response) = request(&client, n).send().await {
                    let _ = response.bytes().await;
                }
            }
        });
    }
}

/// Tenant b's requests, open-loop at 20 a second: (seconds since the start, latency ms, ok).
fn ordinary(
    client: &reqwest::Client,
    url: &str,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(f64, f64, bool)>> {
    let (client, url, stop) = (client.clone(), url.to_string(), stop.clone());
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tasks = Vec::new();
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let due = start + Duration::from_millis(50) * i;
            i += 1;
            tokio::time::sleep_until(due.into()).await;
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let sent = client.post(format!("{url}/v1/agents/echo/run")).header("x-paddock-tenant", "b").body("{}");
                let ok = matches!(sent.send().await, Ok(r) if r.status() == 200);
                (due.duration_since(start).as_secs_f64(), due.elapsed().as_secs_f64() * 1e3, ok)
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.expect("b's request task"));
        }
        out
    })
}

fn start_hostiles(client: &reqwest::Client, url: &str, stop: &Arc<AtomicBool>) {
    let u = url.to_string();
    hostile(client, 4, stop, move |c, _| {
        c.post(format!("{u}/v1/agents/spin/run")).header("x-paddock-tenant", "cpu").body("{}")
    });
    let u = url.to_string();
    let items: Vec<u32> = (0..50).collect();
    let body = json!({ "items": items }).to_string();
    hostile(client, 2, stop, move |c, _| {
        c.post(format!("{u}/v1/flows/fan/runs?wait=true")).header("x-paddock-tenant", "fan").body(body.clone())
    });
    let u = url.to_string();
    let value = "v".repeat(512 << 10);
    hostile(client, 1, stop, move |c, n| {
        let body = format!("{n}{value}");
        c.put(format!("{u}/v1/board/keys/big")).header("x-paddock-tenant", "board").body(body)
    });
    let u = url.to_string();
    hostile(client, 1, stop, move |c, _| {
        c.post(format!("{u}/v1/agents/chatty/run")).header("x-paddock-tenant", "chatty").body("{}")
    });
    let u = url.to_string();
    hostile(client, 2, stop, move |c, _| c.get(format!("{u}/v1/runs")).header("x-paddock-tenant", "fan"));
}

fn p99(latencies: &mut [f64]) -> f64 {
    latencies.sort_by(f64::total_cmp);
    latencies.get(((latencies.len() as f64 * 0.99).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0.0)
}

fn main() {
    let seconds: u64 = std::env::var("PADDOCK_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    paddock::gateway::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let host = start_host();
    let data = host.dir.path().join(".paddock");
    let (samples, b, largest) = runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("a client");
        let stop = Arc::new(AtomicBool::new(false));
        start_hostiles(&client, &host.url, &stop);
        let b = ordinary(&client, &host.url, &stop);
        let start = Instant::now();
        let mut samples = Vec::new();
        while start.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(SAMPLE).await;
            let (t, rss, bytes) = (start.elapsed().as_secs(), rss(host.pid()), disk(&data));
            eprintln!("{t:>4} s  rss {:>7.1} MiB  disk {:>7.1} MiB", rss as f64 / 1048576.0, bytes as f64 / 1048576.0);
            samples.push(json!({ "seconds": t, "rss": rss, "disk": bytes }));
        }
        let largest: Vec<(String, u64)> = files(&data).into_iter().take(6).collect();
        stop.store(true, Ordering::Relaxed);
        (samples, b.await.expect("b's loop"), largest)
    });
    let at = |t: u64, key: &str| {
        samples.iter().find(|s| s["seconds"].as_u64().unwrap_or(0) >= t).map_or(0, |s| s[key].as_u64().unwrap_or(0))
    };
    let most_after = |key: &str| {
        samples.iter().filter(|s| s["seconds"].as_u64().unwrap_or(0) >= 60).filter_map(|s| s[key].as_u64()).max()
    };
    let mut minutes = Vec::new();
    for m in 0..seconds.div_ceil(60) {
        let window = |(t, _, _): &&(f64, f64, bool)| *t >= (m * 60) as f64 && *t < ((m + 1) * 60) as f64;
        let mut lat: Vec<f64> = b.iter().filter(window).map(|s| s.1).collect();
        let failed = b.iter().filter(window).filter(|s| !s.2).count();
        minutes
            .push(json!({ "minute": m + 1, "b_requests": lat.len(), "b_failed": failed, "b_p99_ms": p99(&mut lat) }));
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    println!("| after | host RSS | data folder |");
    println!("|---|---|---|");
    println!("| 1 min | {:.1} MiB | {:.1} MiB |", mib(at(60, "rss")), mib(at(60, "disk")));
    println!("| end ({seconds} s) | {:.1} MiB | {:.1} MiB |", mib(at(seconds, "rss")), mib(at(seconds, "disk")));
    println!(
        "| most after 1 min | {:.1} MiB | {:.1} MiB |",
        mib(most_after("rss").unwrap_or(0)),
        mib(most_after("disk").unwrap_or(0))
    );
    let data = data.display().to_string();
    for (file, bytes) in &largest {
        println!("|   {} | | {:.1} MiB |", file.strip_prefix(&data).unwrap_or(file), mib(*bytes));
    }
    println!();
    println!("| minute | B requests | B failed | B p99 |");
    println!("|---|---|---|---|");
    for m in &minutes {
        println!(
            "| {} | {} | {} | {:.2} ms |",
            m["minute"],
            m["b_requests"],
            m["b_failed"],
            m["b_p99_ms"].as_f64().unwrap_or(0.0)
        );
    }
    report::write(
        "soak",
        &json!({ "seconds": seconds, "samples": samples, "b_minutes": minutes, "largest_files": largest }),
    );
}
