//! The console's first load with 10,000 runs in the store: what a browser
//! fetches to draw the overview (the page, its script and style, who is
//! signed in, then the overview's eight API reads at once), its bytes, and
//! how long the host takes to answer it all, as p50 / p99 / max of 200 loads;
//! each of those reads alone; and the runs page's first and second pages of 50. On the durable SQLite
//! store and, when PostgreSQL is installed, on a database of a throwaway
//! local cluster. The client is on the same machine, so the time is the
//! host's: no network between.
//!
//! `cargo bench -p paddock --bench console` (figures also in
//! `target/console-bench.json`); `PADDOCK_BENCH_RUNS=N` stores N runs
//! instead of 10,000, `PADDOCK_BENCH_IN_FLIGHT=N` starts them with at most N
//! running (256; past a tenant's max-concurrent, 500 here, runs queue for an
//! instance and a run kept waiting 30 s fails, as it would in production).

#[path = "common/report.rs"]
mod report;
#[path = "common/served.rs"]
mod served;

use futures_util::future::join_all;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A one-step flow.
const TICK: &str = "[flow]\nname = \"tick\"\n[steps.main]\nagent = \"noop\"\ninput = { n = 1 }\n";
/// First loads measured.
const LOADS: usize = 200;
/// What the overview reads once signed in (`app.js`'s `overview()`).
const OVERVIEW: [&str; 8] = [
    "/v1/runs?status=running&limit=100",
    "/v1/runs?status=failed&limit=100",
    "/v1/approvals?limit=100",
    "/v1/dlq?limit=100",
    "/v1/plugins",
    "/v1/usage",
    "/v1/providers",
    "/v1/activity",
];

/// A signed-in browser: the session cookie and the CSRF token.
struct Session {
    client: reqwest::Client,
    url: String,
    cookie: String,
}

impl Session {
    /// `GET path` with the cookie: its status, and the bytes of its headers and body.
    async fn get(&self, path: &str) -> (u16, usize) {
        let response = self.client.get(format!("{}{path}", self.url)).header("cookie", &self.cookie).send().await;
        let response = response.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let headers: usize = response.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        let body = response.bytes().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(status, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        (status, headers + body.len())
    }

    /// One first load of the overview: its bytes and how long it took.
    async fn first_load(&self) -> (usize, Duration) {
        let started = Instant::now();
        let (_, page) = self.get("/").await;
        let assets = join_all(["/console/app.js", "/console/style.css"].map(|p| self.get(p))).await;
        let (_, who) = self.get("/console/whoami").await;
        let reads = join_all(OVERVIEW.map(|p| self.get(p))).await;
        let bytes = page + who + assets.iter().chain(&reads).map(|(_, b)| b).sum::<usize>();
        (bytes, started.elapsed())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// The figures of `times` in milliseconds.
fn summary(mut times: Vec<Duration>) -> Value {
    times.sort();
    let max = times.last().map_or(0.0, |t| t.as_secs_f64() * 1000.0);
    json!({ "p50_ms": percentile(&times, 0.5), "p99_ms": percentile(&times, 0.99), "max_ms": max })
}

/// Starts `runs` runs of `tick`, 16 at a time with at most `in_flight`
/// running, and waits until none runs: how long it took.
async fn fill(client: &reqwest::Client, url: &str, key: &str, runs: usize, in_flight: usize) -> Duration {
    let running = || async {
        let list = client.get(format!("{url}/v1/runs?status=running&limit={in_flight}")).bearer_auth(key);
        list.send().await.unwrap().json::<Vec<Value>>().await.unwrap().len()
    };
    let started = Instant::now();
    let mut next = 0;
    while next < runs {
        while running().await >= in_flight {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let batch = (next..runs.min(next + 16)).map(|_| {
            let start = client.post(format!("{url}/v1/flows/tick/runs")).bearer_auth(key).json(&json!({}));
            async move { start.send().await.expect("a run starts").status().as_u16() }
        });
        for status in join_all(batch).await {
            assert_eq!(status, 202, "POST /v1/flows/tick/runs");
        }
        next += 16;
    }
    while running().await > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// A host on `store` (extra `paddock.toml` text) with `runs` finished runs
/// of `tick`, started with at most `in_flight` running at once.
async fn measure(label: &str, store: &str, runs: usize, in_flight: usize) -> Value {
    let dir = served::Host::prepare(&[("noop", guests::ECHO, "")], &[("flows/tick.toml", TICK)], |dirs| {
        format!(
            "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ndefault-tenant = \"bench\"\n{dirs}{store}\
             [retention]\nruns-per-tenant = {}\n\
             [serve]\nrequests-per-key = 0\nrequests-per-tenant = 0\nconcurrent-per-key = 0\nconcurrent-per-tenant = 0\n",
            runs * 2
        )
    });
    // The key is made before the host starts, so its first request finds it.
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
        .current_dir(dir.path())
        .args(["keys", "create", "--tenant", "bench", "--role", "admin"])
        .output()
        .expect("paddock keys create runs");
    assert!(made.status.success(), "paddock keys create: {}", String::from_utf8_lossy(&made.stderr));
    let key = String::from_utf8_lossy(&made.stdout).trim().to_string();
    let host = served::Host::spawn(dir);
    let client = reqwest::Client::new();

    let stored = fill(&client, &host.url, &key, runs, in_flight).await;
    let failed = client.get(format!("{}/v1/runs?status=failed&limit=100", host.url)).bearer_auth(&key);
    let failed: Vec<Value> = failed.send().await.unwrap().json().await.unwrap();
    if let Some(first) = failed.first() {
        println!(
            "{label:>8}: {}{} of the runs failed; the first: {}",
            failed.len(),
            if failed.len() == 100 { "+" } else { "" },
            first["error"]
        );
    }

    let signed =
        client.post(format!("{}/console/session", host.url)).json(&json!({ "key": key })).send().await.unwrap();
    let cookie = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let session = Session { client: client.clone(), url: host.url.clone(), cookie };
    // The first load warms the host's caches and the client's connections.
    session.first_load().await;
    let (mut bytes, mut times) = (0, Vec::with_capacity(LOADS));
    for _ in 0..LOADS {
        let (b, t) = session.first_load().await;
        bytes = b;
        times.push(t);
    }
    // Each of the overview's reads alone: which one the load waits on.
    let mut reads = serde_json::Map::new();
    for path in OVERVIEW {
        let mut alone = Vec::with_capacity(LOADS / 4);
        for _ in 0..LOADS / 4 {
            let started = Instant::now();
            session.get(path).await;
            alone.push(started.elapsed());
        }
        reads.insert(path.to_string(), summary(alone));
    }
    // The runs page: the newest 50, then the next 50 by the `Link` it answered.
    let mut pages = (Vec::new(), Vec::new());
    for _ in 0..LOADS {
        let started = Instant::now();
        let first = client.get(format!("{}/v1/runs?limit=50", host.url)).header("cookie", &session.cookie);
        let first = first.send().await.unwrap();
        let link = first.headers()["link"].to_str().unwrap().to_string();
        assert_eq!(first.json::<Value>().await.unwrap().as_array().map(Vec::len), Some(50));
        pages.0.push(started.elapsed());
        let next = link.trim_start_matches('<').split('>').next().unwrap().to_string();
        let started = Instant::now();
        let second = client.get(format!("{}{next}", host.url)).header("cookie", &session.cookie).send().await.unwrap();
        assert_eq!(second.json::<Value>().await.unwrap().as_array().map(Vec::len), Some(50));
        pages.1.push(started.elapsed());
    }
    let figures = json!({
        "store": label, "runs": runs, "stored_in_s": stored.as_secs_f64(), "failed": failed.len(),
        "overview_first_load": { "bytes": bytes, "requests": 4 + OVERVIEW.len(), "time": summary(times) },
        "runs_page_1": summary(pages.0), "runs_page_2": summary(pages.1), "reads_alone": reads,
    });
    println!(
        "{label:>8}: {runs} runs stored in {:.1} s; overview first load {} B in {} requests, {:.2} / {:.2} / {:.2} ms (p50 / p99 / max); \
         runs page 1 {:.2} ms p50, page 2 {:.2} ms p50",
        stored.as_secs_f64(),
        bytes,
        4 + OVERVIEW.len(),
        figures["overview_first_load"]["time"]["p50_ms"].as_f64().unwrap(),
        figures["overview_first_load"]["time"]["p99_ms"].as_f64().unwrap(),
        figures["overview_first_load"]["time"]["max_ms"].as_f64().unwrap(),
        figures["runs_page_1"]["p50_ms"].as_f64().unwrap(),
        figures["runs_page_2"]["p50_ms"].as_f64().unwrap(),
    );
    for (path, time) in figures["reads_alone"].as_object().into_iter().flatten() {
        println!("{:>10}{path}: {:.2} ms p50 alone", "", time["p50_ms"].as_f64().unwrap_or_default());
    }
    figures
}

fn main() {
    // `cargo bench` passes `--bench`; a filter or `--list` from a harness is ignored.
    let number = |name: &str, default: usize| std::env::var(name).ok().and_then(|n| n.parse().ok()).unwrap_or(default);
    let (runs, in_flight) = (number("PADDOCK_BENCH_RUNS", 10_000), number("PADDOCK_BENCH_IN_FLIGHT", 256));
    paddock::gateway::install_crypto();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut figures = vec![tokio.block_on(measure("sqlite", "", runs, in_flight))];
    if let Some(url) = paddock_postgres::testing::database_url("console_bench") {
        let store = format!("[store]\nbackend = \"postgres\"\nurl = {url:?}\npool = 8\n");
        figures.push(tokio.block_on(measure("postgres", &store, runs, in_flight)));
    }
    report::write("console", &json!(figures));
}
