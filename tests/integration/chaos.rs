//! Chaos: a thousand requests over a route of three fake targets that each
//! inject 30% mixed faults. Every request either succeeds or fails with an
//! error that accounts for every attempt; none is lost, none outlives its
//! deadline, none is retried after an error no retry can fix.
//!
//! Two policies: breakers tuned for a 30% fault rate (8 consecutive
//! failures, open 100 ms), and the defaults (3 in a row, open 60 s), under
//! which every breaker opens within the first few hundred calls and
//! degraded mode keeps the route serving. A target that is really down is
//! still opened and skipped.

use crate::util::{ask, caller, fake_provider, live_gateway};
use futures_util::StreamExt;
use paddock::gateway::{AttemptOutcome, Completion, ErrorClass, Failure, Gateway, LlmError};
use paddock_fake_provider::{Behavior, Chaos, FakeProvider, Fault, RetryAfter};
use std::time::{Duration, Instant};

const REQUESTS: usize = 1000;

fn faults() -> Vec<Fault> {
    vec![
        Fault::RateLimited { retry_after: RetryAfter::Millis(40) },
        Fault::Status { code: 500 },
        Fault::Status { code: 502 },
        Fault::Status { code: 503 },
        Fault::Status { code: 529 },
        Fault::StallBeforeFirstByte { ms: 2_000 },
        Fault::MalformedJson,
        Fault::CutStream { after_chunks: 1 },
        Fault::ErrorEventAfterOk,
        Fault::InvalidRequest,
    ]
}

/// Three fake providers `a`, `b`, `c`, each failing `fault_rate` of its
/// requests with a fault drawn from `faults`, and their `[providers]` text.
async fn three_fakes(fault_rate: f64, faults: &[Fault]) -> (Vec<FakeProvider>, String) {
    let mut fakes = Vec::new();
    let mut toml = String::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let fake = FakeProvider::start().await.unwrap();
        fake.set_chaos(Some(Chaos { seed: 7 + i as u64, fault_rate, faults: faults.to_vec() }));
        toml.push_str(&fake_provider(name, "openai", &fake));
        fakes.push(fake);
    }
    (fakes, toml)
}

const THREE_TARGETS: &str = "targets = [{ provider = \"a\", model = \"m\" }, { provider = \"b\", model = \"m\" }, { provider = \"c\", model = \"m\" }]\n";

/// `REQUESTS` requests on route `r`, `concurrency` at a time: each result and how long it took.
async fn flood(gw: &Gateway, concurrency: usize) -> Vec<(Result<Completion, Failure>, Duration)> {
    futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let gw = gw.clone();
            async move {
                let started = Instant::now();
                let result = gw.complete(&caller(), ask("r", &format!("request {i}"))).await;
                (result, started.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await
}

/// How the requests ended, each checked against its trail.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    unavailable: usize,
    rate_limited: usize,
    invalid: usize,
    /// Attempts made, skips not counted.
    attempts: u64,
}

/// Checks every result against the rules in the module docs and counts them.
fn tally(results: &[(Result<Completion, Failure>, Duration)], timeout: Duration) -> Tally {
    assert_eq!(results.len(), REQUESTS, "none lost");
    let mut t = Tally::default();
    for (result, elapsed) in results {
        assert!(*elapsed < timeout + Duration::from_millis(250), "a request outlived its deadline: {elapsed:?}");
        let trail = match result {
            Ok(done) => &done.trail,
            Err(failure) => &failure.trail,
        };
        let tried: Vec<&AttemptOutcome> =
            trail.iter().map(|a| &a.outcome).filter(|o| !matches!(o, AttemptOutcome::Skipped(_))).collect();
        t.attempts += tried.len() as u64;
        assert!(tried.len() <= 4, "max-attempts holds: {trail:?}");
        // Nothing follows an error no retry can fix.
        for (i, outcome) in trail.iter().enumerate() {
            if let AttemptOutcome::Failed(e) = &outcome.outcome
                && !e.class.is_retryable()
                && e.class != ErrorClass::RateLimited
            {
                assert_eq!(i, trail.len() - 1, "retried after a never-retry error: {trail:?}");
            }
        }
        match result {
            Ok(done) => {
                t.ok += 1;
                assert_eq!(done.trail.last().unwrap().outcome, AttemptOutcome::Ok);
                assert_eq!(done.attempts as usize, tried.len());
            }
            Err(failure) => match &failure.error {
                LlmError::Unavailable(text) => {
                    t.unavailable += 1;
                    for (i, attempt) in trail.iter().enumerate() {
                        assert!(text.contains(&format!("{}. {attempt}", i + 1)), "{text} lacks attempt {}", i + 1);
                    }
                }
                LlmError::RateLimited(_) => {
                    t.rate_limited += 1;
                    assert!(
                        tried
                            .iter()
                            .all(|o| matches!(o, AttemptOutcome::Failed(e) if e.class == ErrorClass::RateLimited))
                    );
                }
                LlmError::InvalidRequest(_) => {
                    t.invalid += 1;
                    assert!(
                        matches!(tried.last(), Some(AttemptOutcome::Failed(e)) if e.class == ErrorClass::InvalidRequest)
                    );
                }
                other => panic!("unexpected failure {other:?} after {trail:?}"),
            },
        }
    }
    assert_eq!(t.ok + t.unavailable + t.rate_limited + t.invalid, REQUESTS);
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_through_thirty_percent_faults_are_all_accounted_for() {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let (fakes, mut toml) = three_fakes(0.3, &faults()).await;
    toml.push_str(&format!(
        "[routes.r]\ntimeout = \"{}s\"\nmax-attempts = 4\nretries = 1\nattempt-timeout = \"150ms\"\n\
         backoff-base = \"2ms\"\nbackoff-max = \"20ms\"\n\
         breaker = {{ failures = 8, failure-rate = 0.6, min-calls = 20, open-for = \"100ms\", probe-timeout = \"150ms\" }}\n\
         {THREE_TARGETS}",
        TIMEOUT.as_secs()
    ));
    let gw = live_gateway(&toml);
    let t = tally(&flood(&gw, 50).await, TIMEOUT);
    let seen: u64 = fakes.iter().map(|f| f.request_count()).sum();
    assert_eq!(seen, t.attempts, "every request a provider saw is an attempt in some trail");
    assert!(t.ok >= 900, "{t:?}");
    eprintln!("chaos (tuned breakers): {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_default_breakers_thirty_percent_random_faults_on_every_target_fail_under_one_percent() {
    // The faults of a provider having a bad day: 429 with Retry-After,
    // 500, 503, 529 and connections cut mid-answer.
    let faults = [
        Fault::RateLimited { retry_after: RetryAfter::Millis(100) },
        Fault::Status { code: 500 },
        Fault::Status { code: 503 },
        Fault::Status { code: 529 },
        Fault::CutStream { after_chunks: 0 },
    ];
    let (fakes, mut toml) = three_fakes(0.3, &faults).await;
    toml.push_str(&format!("[routes.r]\n{THREE_TARGETS}"));
    let gw = live_gateway(&toml);
    let results = flood(&gw, 16).await;
    let t = tally(&results, Duration::from_secs(120));
    // No request fails while it has attempts left: with every breaker open,
    // degraded mode still tries the targets. What fails is what four
    // attempts at 30% each leave: 0.3^4 = 0.81% expected, 8 ± 3 of 1,000.
    for failure in results.iter().filter_map(|(r, _)| r.as_ref().err()) {
        let made = failure.trail.iter().filter(|a| !matches!(a.outcome, AttemptOutcome::Skipped(_))).count();
        assert_eq!(made, 4, "failed with attempts left: {}", failure.error);
    }
    let seen: u64 = fakes.iter().map(|f| f.request_count()).sum();
    assert_eq!(seen, t.attempts, "every request a provider saw is an attempt in some trail");
    let opened = gw
        .metrics()
        .render()
        .lines()
        .filter(|l| l.starts_with("paddock_llm_breaker_transitions_total") && l.contains("outcome=\"open\""))
        .count();
    assert!(opened >= 1, "the default breakers opened: the test exercises degraded mode");
    // At most 2%: 21 failures or more happen once in 20,000 runs by chance.
    assert!(t.ok >= 980, "{t:?}");
    assert_eq!(t.invalid, 0);
    eprintln!("chaos (default breakers): {t:?}, {opened} targets' breakers opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_always_fails_is_still_opened_and_skipped() {
    let dead = FakeProvider::start().await.unwrap();
    dead.set_default(Behavior::Fault(Fault::Status { code: 500 }));
    let healthy = FakeProvider::start().await.unwrap();
    let mut toml = fake_provider("dead", "openai", &dead) + &fake_provider("healthy", "openai", &healthy);
    toml.push_str("[routes.r]\nbackoff-base = \"1ms\"\ntargets = [{ provider = \"dead\", model = \"m\" }, { provider = \"healthy\", model = \"m\" }]\n");
    toml.push_str("[routes.gone]\nbackoff-base = \"1ms\"\ntargets = [{ provider = \"dead\", model = \"n\" }]\n");
    let gw = live_gateway(&toml);
    for _ in 0..50 {
        gw.complete(&caller(), ask("r", "hi")).await.expect("the healthy target answers");
    }
    // Two attempts (one retry) in the first request, the third opens the breaker.
    assert_eq!(dead.request_count(), 3);
    // A route whose only target is down fails fast once its breaker opens:
    // none of its recent calls succeeded, so degraded mode does not try it.
    for _ in 0..20 {
        let failure = gw.complete(&caller(), ask("gone", "hi")).await.expect_err("nothing answers");
        assert!(matches!(failure.error, LlmError::Unavailable(_)), "{:?}", failure.error);
    }
    assert_eq!(dead.request_count(), 3 + 3, "two attempts, one more to open, then none");
}
