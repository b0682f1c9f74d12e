//! The noisy neighbour over HTTP: tenant B's request latency through a real
//! `paddock serve` while tenant A floods it, against B alone.
//!
//! B sends `POST /v1/agents/echo/run` open-loop, at `B_RATE` requests a
//! second on a fixed schedule for `B_SECONDS`: each request's latency counts
//! from when it was due, so a host that stalls is charged for the requests
//! that queue behind the stall (no coordinated omission). Each floods:
//!
//! - `cpu`: A keeps `A_CPU` requests to `spin` in flight (CPU-bound, about
//!   200 ms of one core each, stopped by fuel), a new one as each ends;
//! - `sleep`: A keeps `A_SLEEP` requests to `sleeper` in flight (each waits
//!   5 s in a host call, holding an instance);
//! - `connections`: A opens `A_CONNECTIONS` connections that send half a
//!   request head and then nothing, and keeps them open;
//! - `requests`: A keeps `A_REQUESTS` requests to `echo` in flight, each
//!   sent as the last is answered: far past `serve.requests-per-tenant`,
//!   so most are answered 429 at once.
//!
//! A's load runs on a tokio runtime of its own (its own threads), as another
//! client would, so B's open loop never waits behind A's client work inside
//! the load generator (they still share the machine's cores).
//!
//! The host has the default settings but for the connection limits and the
//! requests in flight per tenant and key, raised so that A's floods reach
//! what they flood (instances, CPU slots, sockets) rather than stopping at
//! 429.
//!
//! The goal: B's p99 under each flood at most twice its p99 alone, and no
//! error. Client and host share the machine (2 cores here): the figures
//! include the load generator's own CPU.
//!
//! `cargo bench -p paddock --bench noisy_http` (`PADDOCK_BENCH_QUICK=1` for
//! shorter runs, `PADDOCK_BENCH_SCENARIOS=cpu,sleep` for some floods only). It prints a markdown table and writes the figures as JSON
//! to `target/noisy_http-bench.json`. `PADDOCK_BENCH_SERVE_THREADS=<N>` sets
//! the host's `serve.threads`.

use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
#[path = "common/report.rs"]
mod report;
#[path = "common/served.rs"]
mod served;
use served::Host;

/// B's requests a second.
const B_RATE: u64 = 50;
/// A's CPU-bound requests in flight.
const A_CPU: usize = 16;
/// A's sleeping requests in flight.
const A_SLEEP: usize = 1100;
/// A's idle connections.
const A_CONNECTIONS: usize = 400;
/// A's requests in flight in the request flood.
const A_REQUESTS: usize = 32;

/// The host: plugins `echo` (B), `spin` and `sleeper` (A); tenants `a` and
/// `b` named (each with its own bounds), picked by the `x-paddock-tenant`
/// header (`serve.auth = "none"`, loopback only).
fn start_host() -> Host {
    let plugins = [
        ("echo", guests::ECHO, ""),
        ("spin", guests::SPIN, "[limits]\nfuel = 2_500_000_000\ntimeout = \"60s\"\n"),
        ("sleeper", guests::FLOW_STEP, "[limits]\ntimeout = \"60s\"\n"),
    ];
    Host::start(&plugins, &[], |component_dirs| {
        format!(
            "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\nflows = \"memory\"\n{component_dirs}\
             [serve]\nauth = \"none\"\nmax-connections = 4096\nmax-connections-per-source = 4096\n\
             header-timeout = \"120s\"\nconcurrent-per-tenant = 4096\nconcurrent-per-key = 4096\n{}\
             [tenants.a]\nagents = [\"echo\", \"spin\", \"sleeper\"]\n[tenants.b]\nagents = [\"echo\"]\n",
            served::serve_threads()
        )
    })
}

/// One request of `tenant` to `agent`; its status, or 0 when it failed.
async fn call(client: &reqwest::Client, url: &str, tenant: &str, agent: &str, body: &str) -> u16 {
    let sent = client
        .post(format!("{url}/v1/agents/{agent}/run"))
        .header("x-paddock-tenant", tenant)
        .body(body.to_string())
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let _ = response.bytes().await;
            status
        }
        Err(_) => 0,
    }
}

/// B's latencies (from each request's due time, in nanoseconds) and its
/// failed requests.
async fn b_open_loop(url: String, seconds: u64) -> (Vec<u64>, usize) {
    let client = reqwest::Client::builder().pool_max_idle_per_host(64).build().expect("a client");
    // A first request, not measured: the connection and the agent's code.
    call(&client, &url, "b", "echo", "{}").await;
    let start = Instant::now();
    let every = Duration::from_nanos(1_000_000_000 / B_RATE);
    let mut tasks = Vec::new();
    for i in 0..seconds * B_RATE {
        let due = start + every * i as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let status = call(&client, &url, "b", "echo", "{\"hello\":\"b\"}").await;
            (due.elapsed().as_nanos() as u64, status)
        }));
    }
    let (mut nanos, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (n, status) = t.await.expect("B's request task");
        nanos.push(n);
        failed += usize::from(status != 200);
    }
    (nanos, failed)
}

/// Keeps `in_flight` requests of A to `agent` going until `stop`; counts them.
fn a_flood(
    url: &str,
    agent: &'static str,
    body: &'static str,
    in_flight: usize,
    (on, stop): (&Handle, &Arc<AtomicBool>),
) -> Arc<AtomicU64> {
    let done = Arc::new(AtomicU64::new(0));
    let _on = on.enter();
    let client = reqwest::Client::builder().pool_max_idle_per_host(in_flight).build().expect("a client");
    for _ in 0..in_flight {
        let (client, url, stop, done) = (client.clone(), url.to_string(), stop.clone(), done.clone());
        on.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                call(&client, &url, "a", agent, body).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    done
}

/// Opens `n` connections that send half a request head, held until `stop`.
async fn a_connections(url: &str, n: usize, (on, stop): (&Handle, &Arc<AtomicBool>)) {
    use tokio::io::AsyncWriteExt;
    let address = url.trim_start_matches("http://").to_string();
    for _ in 0..n {
        let (address, stop) = (address.clone(), stop.clone());
        on.spawn(async move {
            let Ok(mut socket) = tokio::net::TcpStream::connect(&address).await else { return };
            let _ = socket.write_all(b"POST /v1/agents/echo/run HTTP/1.1\r\nhost: x\r\nx-paddock-tenant: a\r\n").await;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// The nearest-rank percentile `q` of sorted `values`.
fn percentile(values: &[u64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1] as f64 / 1e6
}

/// B's figures for one scenario.
async fn measure(host: &Host, scenario: &str, seconds: u64, a: &Handle) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let a_done = match scenario {
        "cpu" => Some(a_flood(&host.url, "spin", "{}", A_CPU, (a, &stop))),
        "sleep" => Some(a_flood(&host.url, "sleeper", "{\"wait_ms\": 5000}", A_SLEEP, (a, &stop))),
        "requests" => Some(a_flood(&host.url, "echo", "{}", A_REQUESTS, (a, &stop))),
        "connections" => {
            a_connections(&host.url, A_CONNECTIONS, (a, &stop)).await;
            None
        }
        _ => None,
    };
    if a_done.is_some() {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let began = Instant::now();
    let (mut nanos, failed) = b_open_loop(host.url.clone(), seconds).await;
    let a_per_second = a_done.map(|d| d.load(Ordering::Relaxed) as f64 / (began.elapsed().as_secs_f64() + 2.0));
    stop.store(true, Ordering::Relaxed);
    nanos.sort_unstable();
    json!({
        "scenario": scenario,
        "b_requests": nanos.len(),
        "b_failed": failed,
        "b_p50_ms": percentile(&nanos, 0.50),
        "b_p99_ms": percentile(&nanos, 0.99),
        "b_max_ms": percentile(&nanos, 1.0),
        "a_requests_per_second": a_per_second,
    })
}

fn main() {
    let quick = std::env::var_os("PADDOCK_BENCH_QUICK").is_some() || std::env::args().any(|a| a == "--quick");
    let seconds = if quick { 5 } else { 20 };
    paddock::gateway::install_crypto();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    // A is another client: its own runtime and threads, so its floods never
    // queue B's requests behind its own inside the load generator.
    let a = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("A's tokio runtime");
    let rows: Vec<Value> = runtime.block_on(async {
        let mut rows = Vec::new();
        let only = std::env::var("PADDOCK_BENCH_SCENARIOS").unwrap_or_default();
        let chosen = |s: &&str| *s == "alone" || only.is_empty() || only.split(',').any(|o| o == *s);
        for scenario in ["alone", "cpu", "sleep", "connections", "requests"].into_iter().filter(chosen) {
            // A fresh host each: nothing of one flood lingers into the next.
            let host = start_host();
            rows.push(measure(&host, scenario, seconds, a.handle()).await);
            drop(host);
        }
        rows
    });
    let alone = rows[0]["b_p99_ms"].as_f64().unwrap_or(0.0);
    println!("| A floods with | B p50 | B p99 | B p99 ÷ alone | B failed | A req/s |");
    println!("|---|---|---|---|---|---|");
    for r in &rows {
        let p99 = r["b_p99_ms"].as_f64().unwrap_or(0.0);
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2}× | {} of {} | {} |",
            r["scenario"].as_str().unwrap_or(""),
            r["b_p50_ms"].as_f64().unwrap_or(0.0),
            p99,
            p99 / alone,
            r["b_failed"],
            r["b_requests"],
            r["a_requests_per_second"].as_f64().map_or("—".to_string(), |v| format!("{v:.0}")),
        );
    }
    report::write("noisy_http", &json!({ "b_rate": B_RATE, "seconds": seconds, "rows": rows }));
}
