//! A fan-out of I/O-bound agents on one host against three: the time a run
//! of `ITEMS` items takes, each item an agent asking a model that answers
//! after `WAIT_MS` (a fake provider in this process; the agent holds an
//! instance and burns no CPU while it waits), on `paddock serve` processes
//! sharing one PostgreSQL database. Each host runs half of its
//! `engine.max-instances` (`INSTANCES`) items at once, so with three hosts
//! three times as many items run at once; the fan-out's own bound
//! (`max-concurrency = 1000`) is above both.
//!
//! The goal (issue 18): three hosts at least 2.5 times the throughput of one.
//! The hosts, the database and the client share the machine (2 cores here).
//!
//! `cargo bench -p paddock --bench spread` (`PADDOCK_BENCH_QUICK=1` for one
//! run each instead of three; `PADDOCK_BENCH_WAIT_MS=500` for items that wait
//! longer, as agents waiting on a model do; `PADDOCK_BENCH_ITEMS=1000` for
//! another fan-out). Needs PostgreSQL's server binaries (Debian's
//! `postgresql`); it makes a throwaway cluster. It prints a markdown table
//! and writes the figures as JSON to `target/spread-bench.json`.

use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
#[path = "common/report.rs"]
mod report;
#[path = "common/served.rs"]
mod served;
use served::Host;

/// Items in the fan-out, unless `PADDOCK_BENCH_ITEMS` says.
const ITEMS: usize = 480;

fn items() -> usize {
    std::env::var("PADDOCK_BENCH_ITEMS").ok().and_then(|v| v.parse().ok()).unwrap_or(ITEMS)
}
/// How long each item's agent waits, unless `PADDOCK_BENCH_WAIT_MS` says.
const WAIT_MS: u64 = 100;

fn wait_ms() -> u64 {
    std::env::var("PADDOCK_BENCH_WAIT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(WAIT_MS)
}
/// Each host's `engine.max-instances` (half of them run items).
const INSTANCES: u32 = 16;

/// The fan-out: one `step` agent per item, each counting on a key of its own
/// and asking route `r`.
const FLOW: &str = "[flow]\nname = \"spread\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input\"\ndo = \"item\"\n\
                    max-concurrency = 1000\n[steps.item]\nagent = \"step\"\n\
                    input = { name = \"item-{{index}}\", llm = \"r\", output = \"{{item}}\" }\n";

/// `hosts` hosts on the database at `url`, routing `r` to the fake provider at `fake`.
fn hosts(url: &str, fake: &str, hosts: usize) -> Vec<Host> {
    let step = ("step", guests::FLOW_STEP, "[capabilities]\nroutes = [\"r\"]\n");
    (0..hosts)
        .map(|_| {
            Host::start(&[step], &[("flows/spread.toml", FLOW)], |component_dirs| {
                format!(
                    "[host]\nplugin-state = \"memory\"\ndefault-tenant = \"bench\"\n{component_dirs}\
                     [engine]\nmax-instances = {INSTANCES}\n\
                     [providers.fake]\nkind = \"openai\"\nbase-url = \"{fake}/v1\"\n\
                     [routes.r]\ntargets = [{{ provider = \"fake\", model = \"m\" }}]\n\
                     [store]\nbackend = \"postgres\"\nurl = {url:?}\npool = 16\n\
                     [serve]\nauth = \"none\"\nrequests-per-key = 0\nrequests-per-tenant = 0\n\
                     concurrent-per-key = 0\nconcurrent-per-tenant = 0\n\
                     [tenants.bench]\nagents = [\"*\"]\nroutes = [\"*\"]\n"
                )
            })
        })
        .collect()
}

/// Runs the fan-out through the first host and waits for its end; how long
/// it took and how many items each host ran.
async fn one_run(client: &reqwest::Client, hosts: &[Host]) -> (Duration, Vec<usize>) {
    let items: Vec<usize> = (0..items()).collect();
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/flows/spread/runs?wait=true", hosts[0].url))
        .body(json!(items).to_string())
        .send()
        .await
        .expect("the host answers");
    let took = started.elapsed();
    let run: Value = response.json().await.expect("a JSON answer");
    assert_eq!((&run["status"], &run["output"]), (&json!("succeeded"), &json!(items)), "{run}");
    let id = run["run"].as_str().expect("the run's id");
    let shown: Value = client
        .get(format!("{}/v1/runs/{id}", hosts[0].url))
        .send()
        .await
        .expect("the host answers")
        .json()
        .await
        .expect("a JSON answer");
    let per_host = hosts
        .iter()
        .map(|h| {
            let pid = format!("{}@", h.pid());
            let steps = shown["steps"].as_array().into_iter().flatten();
            steps
                .filter(|s| s["path"].as_str().is_some_and(|p| p.ends_with("/item")))
                .filter(|s| s["host"].as_str().is_some_and(|host| host.starts_with(&pid)))
                .count()
        })
        .collect();
    (took, per_host)
}

fn main() {
    paddock::gateway::install_crypto();
    let quick = std::env::var_os("PADDOCK_BENCH_QUICK").is_some();
    let runs = if quick { 1 } else { 3 };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let fake = runtime.block_on(paddock_fake_provider::FakeProvider::start()).expect("the fake provider starts");
    let reply = paddock_fake_provider::Reply { first_byte_delay_ms: wait_ms(), ..Default::default() };
    fake.set_default(paddock_fake_provider::Behavior::Reply(reply));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("an HTTP client");
    let mut rows = Vec::new();
    for count in [1, 3] {
        let Some(url) = paddock_postgres::testing::database_url(&format!("bench_spread_{count}")) else {
            eprintln!("spread: PostgreSQL is not installed (apt install postgresql); nothing measured");
            return;
        };
        let hosts = hosts(&url, &fake.url(), count);
        // A first run loads and compiles the agent on every host.
        runtime.block_on(one_run(&client, &hosts));
        let mut times = Vec::new();
        let mut last = Vec::new();
        for _ in 0..runs {
            let (took, per_host) = runtime.block_on(one_run(&client, &hosts));
            times.push(took);
            last = per_host;
        }
        times.sort();
        let median = times[times.len() / 2];
        let rate = items() as f64 / median.as_secs_f64();
        rows.push(json!({
            "hosts": count,
            "seconds": median.as_secs_f64(),
            "items_per_second": rate,
            "items_per_host": last,
        }));
    }
    let ratio =
        rows[1]["items_per_second"].as_f64().unwrap_or(0.0) / rows[0]["items_per_second"].as_f64().unwrap_or(1.0);
    let wait = wait_ms();
    let items = items();
    println!("\n| hosts | {items} items of {wait} ms | items/s | items per host (last run) |");
    println!("|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.2} s | {:.0} | {} |",
            row["hosts"],
            row["seconds"].as_f64().unwrap_or(0.0),
            row["items_per_second"].as_f64().unwrap_or(0.0),
            row["items_per_host"]
        );
    }
    println!("\nthree hosts: {ratio:.2}× the throughput of one (goal ≥ 2.5×)");
    let figures = json!({ "items": items, "wait_ms": wait, "instances": INSTANCES, "rows": rows, "ratio": ratio });
    report::write(&format!("spread-{wait}ms"), &figures);
}
