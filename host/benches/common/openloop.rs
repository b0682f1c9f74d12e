//! An open-loop load generator: calls sent at a fixed rate, each at its own
//! time whatever the calls before it are doing, so latency at a rate is not
//! confused with the queue a closed loop builds at saturation.
//!
//! A thread of its own paces the sends (sleeping to each one's absolute
//! time, so a late wake-up does not shift the ones after it) and hands each
//! call to the tokio runtime; a call's latency runs from the moment its task
//! starts to its end. The rate reached is reported beside the rate asked
//! for: when the machine cannot keep up, the sends fall behind, and the
//! figures say so rather than hide it.

// Each bench includes this file and uses a part of it.
#![allow(dead_code)]

use parking_lot::Mutex;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one rate measured.
#[derive(Clone, Debug)]
pub struct AtRate {
    /// Calls a second asked for, and sent in the measured time.
    pub asked: f64,
    pub sent: f64,
    /// Calls that ended in the measured time's sends, and those that failed.
    pub calls: usize,
    pub failed: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    /// The backlog passed two seconds of calls: the rate is past saturation.
    pub overloaded: bool,
}

impl AtRate {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "asked_per_s": self.asked,
            "sent_per_s": self.sent,
            "calls": self.calls,
            "failed": self.failed,
            "p50_us": us(self.p50),
            "p99_us": us(self.p99),
            "p999_us": us(self.p999),
            "overloaded": self.overloaded,
        })
    }
}

/// The comma-separated numbers environment variable `name` holds, else `default`.
pub fn numbers(name: &str, default: &[f64]) -> Vec<f64> {
    match std::env::var(name).ok().filter(|v| !v.is_empty()) {
        Some(list) => list
            .split(',')
            .map(|p| p.trim().parse().unwrap_or_else(|_| panic!("{name}: {p:?} is not a number")))
            .collect(),
        None => default.to_vec(),
    }
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Sends `call()` `rate` times a second for `warmup` (not counted) and then
/// `measure`, on `tokio`; waits for the calls in flight to end. A call
/// answers whether it succeeded. Made (`call()`) before its clock starts.
pub fn drive<F, Fut>(tokio: &tokio::runtime::Handle, rate: f64, warmup: Duration, measure: Duration, call: F) -> AtRate
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let samples = Arc::new(Mutex::new(Vec::with_capacity((rate * measure.as_secs_f64()) as usize + 16)));
    let in_flight = Arc::new(AtomicU64::new(0));
    let backlog_cap = (rate * 2.0).max(64.0) as u64;
    let start = Instant::now();
    let counted_from = start + warmup;
    let end = counted_from + measure;
    let (mut sent, mut overloaded) = (0u64, false);
    for i in 0u64.. {
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        if at >= end {
            break;
        }
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if in_flight.load(Ordering::Relaxed) > backlog_cap {
            overloaded = true;
            break;
        }
        let counted = at >= counted_from;
        sent += u64::from(counted);
        in_flight.fetch_add(1, Ordering::Relaxed);
        let (call, samples, in_flight) = (call.clone(), samples.clone(), in_flight.clone());
        tokio.spawn(async move {
            let pending = call();
            let began = Instant::now();
            let ok = pending.await;
            let took = began.elapsed();
            if counted {
                samples.lock().push((took, ok));
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let samples = std::mem::take(&mut *samples.lock());
    let failed = samples.iter().filter(|s| !s.1).count();
    let mut times: Vec<Duration> = samples.iter().map(|s| s.0).collect();
    times.sort_unstable();
    let at = |q: f64| times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied();
    AtRate {
        asked: rate,
        sent: sent as f64 / measure.as_secs_f64(),
        calls: times.len(),
        failed,
        p50: at(0.50).unwrap_or_default(),
        p99: at(0.99).unwrap_or_default(),
        p999: at(0.999).unwrap_or_default(),
        overloaded,
    }
}

/// Calls a second `concurrency` closed loops of `call()` reach in `measure`
/// (after `warmup`): the saturation the rates are fractions of.
pub async fn saturation<F, Fut>(concurrency: usize, warmup: Duration, measure: Duration, call: F) -> f64
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let call = Arc::new(call);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let (counted_from, end) = (start + warmup, start + warmup + measure);
    let mut loops = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (call, done) = (call.clone(), done.clone());
        loops.spawn(async move {
            while Instant::now() < end {
                let ok = call().await;
                if ok && Instant::now() >= counted_from && Instant::now() < end {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while loops.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / measure.as_secs_f64()
}
