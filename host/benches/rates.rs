//! The latency the host adds at fixed request rates (an open loop), not at
//! saturation: `POST /v1/agents/client/run` to a `paddock serve` process
//! with an API key (the `llm-client` guest making one call to a fake OpenAI
//! provider on 127.0.0.1), against the same call made directly to the fake.
//!
//! First 64 closed loops find the served path's saturation; then each rate
//! (a percentage of it: `PADDOCK_BENCH_RATES`, default 25,50,75) is sent
//! along both paths in turn, each for `PADDOCK_BENCH_SECONDS` (default 3)
//! after half a second of warm-up. A row gives p50, p99 and p99.9 of each
//! path and the difference: the latency the host adds at that rate. The
//! load generator, the fake and the host share the machine's two cores, as
//! the gateway bench's do. `PADDOCK_BENCH_SATURATION=<req/s>` takes the
//! saturation as given instead, so that two builds are held to the same rates.
//! `PADDOCK_BENCH_SERVE_THREADS=<N>` sets the host's `serve.threads`.
//!
//! `cargo bench -p paddock --bench rates` (figures also in `target/rates-bench.json`).

#[path = "common/openloop.rs"]
mod openloop;
#[path = "common/report.rs"]
mod report;
#[path = "common/served.rs"]
mod served;

use openloop::{AtRate, drive, numbers, saturation, us};
use paddock_fake_provider::FakeProvider;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WARMUP: Duration = Duration::from_millis(500);

/// A call along one path: whether it succeeded.
type Call = Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>> + Send + Sync>;

fn direct(http: reqwest::Client, url: String) -> Call {
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }).to_string();
    Arc::new(move || {
        let request = http.post(&url).header("content-type", "application/json").body(body.clone());
        Box::pin(async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                _ => false,
            }
        })
    })
}

fn served(http: reqwest::Client, host: &served::Served) -> Call {
    let url = format!("{}/v1/agents/client/run", host.host.url);
    let token = host.token.clone().expect("the bench's host checks keys");
    let input = json!({ "op": "complete", "route": "r", "prompt": "hi" }).to_string();
    Arc::new(move || {
        let request = http.post(&url).bearer_auth(&token).body(input.clone());
        Box::pin(async move {
            match request.send().await {
                // The agent's own output says whether its LLM call succeeded.
                Ok(r) if r.status().is_success() => {
                    r.json::<serde_json::Value>().await.is_ok_and(|body| !body["output"]["ok"].is_null())
                }
                _ => false,
            }
        })
    })
}

fn row(pct: f64, direct: &AtRate, host: &AtRate) {
    let added = |a: Duration, b: Duration| us(a) - us(b);
    println!(
        "| {pct:>3.0}% | {:>6.0} / {:>6.0} | {:>6.1} {:>7.1} {:>7.1} | {:>6.1} {:>7.1} {:>7.1} | **{:+.1}** | **{:+.1}** | {:+.1} |{}",
        host.asked,
        host.sent,
        us(direct.p50),
        us(direct.p99),
        us(direct.p999),
        us(host.p50),
        us(host.p99),
        us(host.p999),
        added(host.p50, direct.p50),
        added(host.p99, direct.p99),
        added(host.p999, direct.p999),
        if host.overloaded || direct.overloaded || host.failed + direct.failed > 0 {
            format!(
                " overloaded {} / {}, failed {} / {}",
                direct.overloaded, host.overloaded, direct.failed, host.failed
            )
        } else {
            String::new()
        }
    );
}

fn main() {
    let percents = numbers("PADDOCK_BENCH_RATES", &[25.0, 50.0, 75.0]);
    let seconds = numbers("PADDOCK_BENCH_SECONDS", &[3.0])[0];
    let measure = Duration::from_secs_f64(seconds);
    let tokio =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio starts");
    let fake = tokio.block_on(FakeProvider::start()).expect("the fake provider starts");
    let host = served::Served::start(&fake.url(), true);
    // What the host's own clients install first (this bench makes no host in its process).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(1024).build().expect("a client");
    let direct = direct(http.clone(), format!("{}/v1/chat/completions", fake.url()));
    let served = served(http, &host);
    let saturated = match std::env::var("PADDOCK_BENCH_SATURATION") {
        Ok(given) => {
            let given: f64 =
                given.parse().unwrap_or_else(|_| panic!("PADDOCK_BENCH_SATURATION: {given:?} is not a number"));
            println!("saturation given (PADDOCK_BENCH_SATURATION): {given:.0} req/s\n");
            given
        }
        Err(_) => {
            let call = served.clone();
            let measured = tokio.block_on(saturation(64, WARMUP, Duration::from_secs(2), move || call()));
            println!("saturation of the served path, 64 closed loops: {measured:.0} req/s\n");
            measured
        }
    };
    println!(
        "| rate | asked / sent per s | direct p50 p99 p99.9 µs | host p50 p99 p99.9 µs | added p50 µs | added p99 µs | added p99.9 µs |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut report = serde_json::Map::new();
    report.insert("saturation_per_s".into(), json!(saturated));
    for pct in percents {
        let rate = saturated * pct / 100.0;
        let on = |call: &Call| {
            let call = call.clone();
            drive(tokio.handle(), rate, WARMUP, measure, move || call())
        };
        let (d, h) = (on(&direct), on(&served));
        row(pct, &d, &h);
        report.insert(
            format!("{pct:.0}%"),
            json!({ "direct": d.json(), "host": h.json(), "added_p50_us": us(h.p50) - us(d.p50), "added_p99_us": us(h.p99) - us(d.p99) }),
        );
    }
    drop(host);
    tokio.block_on(fake.shutdown());
    report::write("rates", &serde_json::Value::Object(report));
}
