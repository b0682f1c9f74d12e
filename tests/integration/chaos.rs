//! Chaos: a thousand requests over a route of three fake targets that each
//! inject 30% mixed faults. Every request either succeeds or fails with an
//! error that accounts for every attempt; none is lost, none outlives its
//! deadline, none is retried after an error no retry can fix.
//!
//! The breakers are set for a 30% fault rate (8 consecutive failures, 60%
//! over the window, open 100 ms): with the defaults (3 in a row), three
//! targets failing a third of the time would keep their breakers open, which
//! is right for a provider that bad but would test little else.

use crate::util::{ask, caller, fake_provider, live_gateway};
use futures_util::StreamExt;
use paddock::gateway::{AttemptOutcome, ErrorClass, LlmError};
use paddock_fake_provider::{Chaos, FakeProvider, Fault, RetryAfter};
use std::time::{Duration, Instant};

const REQUESTS: usize = 1000;
const CONCURRENCY: usize = 50;
const TIMEOUT: Duration = Duration::from_secs(3);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_requests_through_thirty_percent_faults_are_all_accounted_for() {
    let mut fakes = Vec::new();
    let mut toml = String::new();
    for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
        let fake = FakeProvider::start().await.unwrap();
        fake.set_chaos(Some(Chaos { seed: 7 + i as u64, fault_rate: 0.3, faults: faults() }));
        toml.push_str(&fake_provider(name, "openai", &fake));
        fakes.push(fake);
    }
    toml.push_str(&format!(
        "[routes.r]\ntimeout = \"{}s\"\nmax-attempts = 4\nretries = 1\nattempt-timeout = \"150ms\"\n\
         backoff-base = \"2ms\"\nbackoff-max = \"20ms\"\n\
         breaker = {{ failures = 8, failure-rate = 0.6, min-calls = 20, open-for = \"100ms\", probe-timeout = \"150ms\" }}\n\
         targets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}, {{ provider = \"c\", model = \"m\" }}]\n",
        TIMEOUT.as_secs()
    ));
    let gw = live_gateway(&toml);

    let results: Vec<_> = futures_util::stream::iter(0..REQUESTS)
        .map(|i| {
            let gw = gw.clone();
            async move {
                let started = Instant::now();
                let result = gw.complete(&caller(), ask("r", &format!("request {i}"))).await;
                (result, started.elapsed())
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    assert_eq!(results.len(), REQUESTS, "none lost");

    let (mut ok, mut unavailable, mut rate_limited, mut invalid, mut attempts_made) = (0, 0, 0, 0, 0u64);
    for (result, elapsed) in &results {
        assert!(*elapsed < TIMEOUT + Duration::from_millis(250), "a request outlived its deadline: {elapsed:?}");
        let trail = match result {
            Ok(done) => &done.trail,
            Err(failure) => &failure.trail,
        };
        let tried: Vec<&AttemptOutcome> =
            trail.iter().map(|a| &a.outcome).filter(|o| !matches!(o, AttemptOutcome::Skipped(_))).collect();
        attempts_made += tried.len() as u64;
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
                ok += 1;
                assert_eq!(done.trail.last().unwrap().outcome, AttemptOutcome::Ok);
                assert_eq!(done.attempts as usize, tried.len());
            }
            Err(failure) => match &failure.error {
                LlmError::Unavailable(text) => {
                    unavailable += 1;
                    for (i, attempt) in trail.iter().enumerate() {
                        assert!(text.contains(&format!("{}. {attempt}", i + 1)), "{text} lacks attempt {}", i + 1);
                    }
                }
                LlmError::RateLimited(_) => {
                    rate_limited += 1;
                    assert!(
                        tried
                            .iter()
                            .all(|o| matches!(o, AttemptOutcome::Failed(e) if e.class == ErrorClass::RateLimited))
                    );
                }
                LlmError::InvalidRequest(_) => {
                    invalid += 1;
                    assert!(
                        matches!(tried.last(), Some(AttemptOutcome::Failed(e)) if e.class == ErrorClass::InvalidRequest)
                    );
                }
                other => panic!("unexpected failure {other:?} after {trail:?}"),
            },
        }
    }
    let seen: u64 = fakes.iter().map(|f| f.request_count()).sum();
    assert_eq!(seen, attempts_made, "every request a provider saw is an attempt in some trail");
    assert_eq!(ok + unavailable + rate_limited + invalid, REQUESTS);
    assert!(ok >= 900, "{ok} succeeded, {unavailable} unavailable, {rate_limited} rate limited, {invalid} invalid");
    eprintln!(
        "chaos: {ok} ok, {unavailable} unavailable, {rate_limited} rate-limited, {invalid} invalid, {attempts_made} attempts"
    );
}
