//! Watch fan-out: one write wakes 100 watchers. For each write and each
//! watcher, the latency is the time from just before `put` to the moment
//! that watcher's `watch` returned the change. Prints p50/p99/max over all
//! (write, watcher) pairs.
//!
//! `cargo bench -p paddock --bench fanout`

use paddock::blackboard::{Blackboard, Writer};
use std::time::{Duration, Instant};

const WATCHERS: usize = 100;
const WRITES: usize = 2_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let board = Blackboard::default();
        let ns = board.namespace("bench");
        let start = Instant::now();
        let watchers: Vec<_> = (0..WATCHERS)
            .map(|_| {
                let ns = ns.clone();
                tokio::spawn(async move {
                    let mut cursor = 0;
                    let mut seen = Vec::with_capacity(WRITES);
                    while seen.len() < WRITES {
                        let changes = ns.watch("jobs/", cursor, Duration::from_secs(10)).await.unwrap();
                        let at = start.elapsed();
                        for change in changes {
                            cursor = change.revision;
                            seen.push((change.revision, at));
                        }
                    }
                    seen
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let writer = Writer::new("bench", "bench");
        let mut written = vec![Duration::ZERO; WRITES + 1];
        for i in 0..WRITES {
            let at = start.elapsed();
            let rev = ns.put(&format!("jobs/{i}"), b"x", &writer).unwrap() as usize;
            written[rev] = at;
            // One write at a time, as a stream of events: let the watchers run.
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let mut latencies = Vec::with_capacity(WATCHERS * WRITES);
        for w in watchers {
            for (rev, at) in w.await.unwrap() {
                latencies.push(at - written[rev as usize]);
            }
        }
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        println!(
            "fan-out to {WATCHERS} watchers, {WRITES} writes: p50 {:?}  p99 {:?}  max {:?}  ({} deliveries)",
            pct(0.50),
            pct(0.99),
            latencies.last().unwrap(),
            latencies.len()
        );
    });
}
