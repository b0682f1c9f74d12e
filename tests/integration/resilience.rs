//! One scenario per rule of the resilience policy (ARCHITECTURE.md,
//! "Resilience policy"), against fake providers on 127.0.0.1. Time that the
//! policy measures (breaker waits, Retry-After) runs on a manual clock.

use crate::util::{ask, caller, fake_provider, gateway, gateway_with_quota, live_gateway};
use paddock::gateway::types::Tokens;
use paddock::gateway::{AttemptOutcome, CallRecord, Caller, ErrorClass, Estimate, LlmError, Quota, Reservation};
use paddock_fake_provider::{Behavior, FakeProvider, Fault, RateLimitHeaders, Reply, RetryAfter};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn reply(text: &str) -> Behavior {
    Behavior::Reply(Reply { text: Some(text.into()), ..Default::default() })
}

fn fault(f: Fault) -> Behavior {
    Behavior::Fault(f)
}

/// A route `r` over OpenAI-style fakes, with fast backoff and `extra` route keys.
fn two_targets(a: &FakeProvider, b: &FakeProvider, extra: &str) -> String {
    format!(
        "{}{}[routes.r]\nbackoff-base = \"1ms\"\nbackoff-max = \"5ms\"\n{extra}\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        fake_provider("a", "openai", a),
        fake_provider("b", "openai", b)
    )
}

fn one_target(a: &FakeProvider, kind: &str, extra: &str) -> String {
    format!(
        "{}[routes.r]\nbackoff-base = \"1ms\"\nbackoff-max = \"5ms\"\n{extra}\ntargets = [{{ provider = \"a\", model = \"m\" }}]\n",
        fake_provider("a", kind, a)
    )
}

async fn fakes() -> (FakeProvider, FakeProvider) {
    (FakeProvider::start().await.unwrap(), FakeProvider::start().await.unwrap())
}

#[tokio::test]
async fn on_429_fail_over_at_once_and_skip_the_target_until_retry_after_passes() {
    let (a, b) = fakes().await;
    a.push(fault(Fault::RateLimited { retry_after: RetryAfter::Seconds(7) }));
    let (gw, clock) = gateway(&two_targets(&a, &b, ""));

    let first = gw.complete(&caller(), ask("r", "one")).await.unwrap();
    assert_eq!((first.provider.as_str(), first.attempts), ("b", 2));
    assert!(matches!(&first.trail[0].outcome, AttemptOutcome::Failed(e) if e.class == ErrorClass::RateLimited));

    let second = gw.complete(&caller(), ask("r", "two")).await.unwrap();
    assert_eq!(second.provider, "b");
    assert_eq!(second.trail[0].outcome, AttemptOutcome::Skipped("rate limited for 7000ms more".into()));
    assert_eq!(a.request_count(), 1, "a cooling target gets no request");

    clock.advance(Duration::from_secs(7));
    let third = gw.complete(&caller(), ask("r", "three")).await.unwrap();
    assert_eq!((third.provider.as_str(), third.attempts), ("a", 1));
}

#[tokio::test]
async fn every_form_of_retry_after_is_honoured() {
    let cases = [
        ("openai", RetryAfter::Millis(1500), Duration::from_millis(1500)),
        ("openai", RetryAfter::Seconds(9), Duration::from_secs(9)),
        ("anthropic", RetryAfter::Seconds(4), Duration::from_secs(4)),
        ("gemini", RetryAfter::GeminiRetryInfo { secs: 17 }, Duration::from_secs(17)),
    ];
    for (kind, retry_after, expected) in cases {
        let a = FakeProvider::start().await.unwrap();
        a.push(fault(Fault::RateLimited { retry_after }));
        let (gw, _clock) = gateway(&one_target(&a, kind, "rate-limit-wait = \"0s\""));
        let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
        assert_eq!(failure.error, LlmError::RateLimited(expected), "{kind} {retry_after:?}");
    }
    // An HTTP date has whole-second precision: the wait is 19 to 20 s.
    let a = FakeProvider::start().await.unwrap();
    a.push(fault(Fault::RateLimited { retry_after: RetryAfter::HttpDate { secs_from_now: 20 } }));
    let (gw, _clock) = gateway(&one_target(&a, "openai", "rate-limit-wait = \"0s\""));
    match gw.complete(&caller(), ask("r", "x")).await.unwrap_err().error {
        LlmError::RateLimited(wait) => assert!((19..=20).contains(&wait.as_secs()), "{wait:?}"),
        other => panic!("expected rate-limited, got {other:?}"),
    }
}

#[tokio::test]
async fn a_short_retry_after_on_every_target_is_waited_out_within_the_deadline() {
    let (a, b) = fakes().await;
    a.push(fault(Fault::RateLimited { retry_after: RetryAfter::Millis(150) }));
    b.push(fault(Fault::RateLimited { retry_after: RetryAfter::Millis(300) }));
    let gw = live_gateway(&two_targets(&a, &b, ""));
    let started = Instant::now();
    let done = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(150), "{:?}", started.elapsed());
    assert_eq!((done.provider.as_str(), done.attempts), ("a", 3));
    // A wait longer than rate-limit-wait is not waited out: the agent decides.
    a.push(fault(Fault::RateLimited { retry_after: RetryAfter::Seconds(30) }));
    b.push(fault(Fault::RateLimited { retry_after: RetryAfter::Seconds(20) }));
    let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
    assert!(
        matches!(failure.error, LlmError::RateLimited(wait) if wait > Duration::from_secs(19)),
        "{:?}",
        failure.error
    );
}

#[tokio::test]
async fn retryable_errors_are_retried_with_backoff_within_the_retry_budget() {
    let (a, b) = fakes().await;
    a.push_many([fault(Fault::Status { code: 500 }), fault(Fault::Status { code: 503 }), reply("third time")]);
    let (gw, _clock) = gateway(&one_target(&a, "openai", "retries = 2"));
    let done = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!((done.reply.text.as_str(), done.attempts), ("third time", 3));

    // With max-attempts 2 the budget runs out first, and every attempt is listed.
    a.push_many([fault(Fault::Status { code: 502 }), fault(Fault::Status { code: 529 })]);
    b.push(fault(Fault::Status { code: 500 }));
    let (gw, _clock) = gateway(&two_targets(&a, &b, "retries = 5\nmax-attempts = 2"));
    let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
    let LlmError::Unavailable(text) = &failure.error else { panic!("{:?}", failure.error) };
    assert!(
        text.starts_with("every target of route \"r\" failed within max-attempts (2); 1. a/m: server-error (HTTP 502)"),
        "{text}"
    );
    assert!(text.contains("; 2. a/m: overloaded (HTTP 529)"), "{text}");
    assert_eq!(failure.trail.len(), 2);
    assert_eq!(b.request_count(), 0);
}

#[tokio::test]
async fn never_retry_errors_end_the_request_at_once() {
    let cases = [
        (Fault::InvalidRequest, "invalid-request"),
        (Fault::Unauthorized, "unavailable"),
        (Fault::InsufficientQuota, "unavailable"),
        (Fault::SpendLimit, "unavailable"),
        (Fault::ContentFilter, "content-filtered"),
    ];
    for (f, kind) in cases {
        let (a, b) = fakes().await;
        a.push(fault(f));
        let (gw, _clock) = gateway(&two_targets(&a, &b, "retries = 3"));
        let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
        assert_eq!(failure.error.kind(), kind, "{f:?}: {}", failure.error);
        assert_eq!((a.request_count(), b.request_count()), (1, 0), "{f:?} was retried or failed over");
        if kind == "unavailable" {
            assert!(failure.error.to_string().ends_with("(not retried)"), "{}", failure.error);
        }
    }
}

#[tokio::test]
async fn breaker_opens_after_three_failures_half_opens_after_the_wait_and_closes_after_two_successes() {
    let (a, b) = fakes().await;
    a.set_default(fault(Fault::Status { code: 500 }));
    let (gw, clock) = gateway(&two_targets(&a, &b, "retries = 0"));
    for _ in 0..3 {
        assert_eq!(gw.complete(&caller(), ask("r", "x")).await.unwrap().provider, "b");
    }
    let skipped = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!(skipped.trail[0].outcome, AttemptOutcome::Skipped("circuit open for 60000ms more".into()));
    assert_eq!(a.request_count(), 3);

    clock.advance(Duration::from_secs(60));
    a.set_default(reply("recovered"));
    let probe = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!(probe.provider, "a", "the half-open breaker admits a probe");
    assert_eq!(probe.reply.text, "recovered");
    gw.complete(&caller(), ask("r", "x")).await.unwrap();
    let text = gw.metrics().render();
    assert!(text.contains("outcome=\"half-open\"") && text.contains("outcome=\"closed\""), "{text}");
    // Closed again: three more failures are needed to open it.
    a.set_default(fault(Fault::Status { code: 500 }));
    for _ in 0..2 {
        gw.complete(&caller(), ask("r", "x")).await.unwrap();
    }
    assert!(matches!(gw.complete(&caller(), ask("r", "x")).await.unwrap().trail[0].outcome, AttemptOutcome::Failed(_)));
}

#[tokio::test]
async fn a_hung_half_open_probe_times_out_and_the_request_falls_back() {
    let (a, b) = fakes().await;
    a.set_default(fault(Fault::Status { code: 500 }));
    let (gw, clock) = gateway(&two_targets(&a, &b, "retries = 0\nbreaker = { probe-timeout = \"200ms\" }"));
    for _ in 0..3 {
        gw.complete(&caller(), ask("r", "x")).await.unwrap();
    }
    clock.advance(Duration::from_secs(60));
    a.set_default(fault(Fault::StallBeforeFirstByte { ms: 10_000 }));
    let started = Instant::now();
    let done = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "the probe was cut at its timeout");
    assert_eq!(done.provider, "b");
    assert!(matches!(&done.trail[0].outcome, AttemptOutcome::Failed(e) if e.class == ErrorClass::Timeout));
    let again = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!(again.trail[0].outcome, AttemptOutcome::Skipped("circuit open for 60000ms more".into()));
}

#[tokio::test]
async fn a_target_short_of_headroom_is_passed_over_before_it_answers_429() {
    let (a, b) = fakes().await;
    a.set_rate_limit(Some(RateLimitHeaders {
        limit_requests: 100,
        remaining_requests: 10,
        limit_tokens: 100_000,
        remaining_tokens: 90_000,
        reset_ms: 30_000,
    }));
    let (gw, clock) = gateway(&two_targets(&a, &b, "retries = 0"));
    assert_eq!(gw.complete(&caller(), ask("r", "x")).await.unwrap().provider, "a");
    assert_eq!(gw.complete(&caller(), ask("r", "x")).await.unwrap().provider, "b", "10% left is under 20%");
    assert_eq!(a.request_count(), 1);
    // Still a last resort: with b failing, a is tried after all.
    b.push(fault(Fault::Status { code: 500 }));
    let done = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!((done.provider.as_str(), done.attempts), ("a", 2));
    // The reading holds until the window resets.
    a.set_rate_limit(None);
    clock.advance(Duration::from_secs(30));
    assert_eq!(gw.complete(&caller(), ask("r", "x")).await.unwrap().provider, "a");
}

#[tokio::test]
async fn a_conversation_stays_on_the_provider_that_served_it_while_that_provider_is_healthy() {
    let (a, b) = fakes().await;
    a.push(fault(Fault::RateLimited { retry_after: RetryAfter::Seconds(1) }));
    let (gw, clock) = gateway(&two_targets(&a, &b, "retries = 0"));
    let mut req = ask("r", "x");
    req.conversation = Some("chat-1".into());
    assert_eq!(gw.complete(&caller(), req.clone()).await.unwrap().provider, "b");
    clock.advance(Duration::from_secs(2));
    assert_eq!(gw.complete(&caller(), req.clone()).await.unwrap().provider, "b", "affinity");
    assert_eq!(gw.complete(&caller(), ask("r", "x")).await.unwrap().provider, "a", "no conversation: priority");
    // Another tenant's conversation of the same id is its own.
    let other = Caller { tenant: Arc::from("globex"), agent: Arc::from("tester") };
    assert_eq!(gw.complete(&other, req.clone()).await.unwrap().provider, "a");
    // b's breaker opens: the conversation moves on.
    b.set_default(fault(Fault::Status { code: 500 }));
    for _ in 0..3 {
        gw.complete(&caller(), req.clone()).await.unwrap();
    }
    let moved = gw.complete(&caller(), req.clone()).await.unwrap();
    assert_eq!((moved.provider.as_str(), moved.attempts), ("a", 1));
}

#[tokio::test]
async fn streams_fall_back_before_the_first_piece_and_never_after() {
    let (a, b) = fakes().await;
    a.push(fault(Fault::Status { code: 503 }));
    let (gw, _clock) = gateway(&two_targets(&a, &b, "retries = 0"));
    let mut stream = gw.stream(&caller(), ask("r", "x")).await.unwrap();
    let mut text = String::new();
    while let Some(piece) = stream.next_text().await {
        text.push_str(&piece.unwrap());
    }
    let whole = stream.completion().unwrap();
    assert_eq!((whole.provider.as_str(), whole.attempts, whole.reply.text.as_str()), ("b", 2, text.as_str()));

    a.push(fault(Fault::CutStream { after_chunks: 2 }));
    let mut stream = gw.stream(&caller(), ask("r", "x")).await.unwrap();
    let mut pieces = 0;
    let error = loop {
        match stream.next_text().await {
            Some(Ok(_)) => pieces += 1,
            Some(Err(e)) => break e,
            None => panic!("a cut stream must not end cleanly"),
        }
    };
    assert_eq!(pieces, 2);
    let LlmError::Unavailable(text) = &error else { panic!("{error:?}") };
    assert!(text.starts_with("a/m: stream broke off after 2 pieces"), "{text}");
    assert_eq!(b.request_count(), 1, "no fallback once pieces reached the agent");
    assert_eq!(stream.next_text().await, None, "an error ends the stream");
}

#[tokio::test]
async fn first_token_idle_and_total_timeouts_are_separate() {
    let (a, b) = fakes().await;
    // First token: a stalls before its first byte, b answers.
    a.push(fault(Fault::StallBeforeFirstByte { ms: 5_000 }));
    let (gw, _clock) = gateway(&two_targets(&a, &b, "retries = 0\nfirst-token-timeout = \"150ms\""));
    let started = Instant::now();
    let mut stream = gw.stream(&caller(), ask("r", "x")).await.unwrap();
    while stream.next_text().await.is_some() {}
    assert_eq!(stream.completion().unwrap().provider, "b");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Idle: pieces stop mid-stream for longer than idle-timeout.
    a.push(fault(Fault::StallMidStream { after_chunks: 1, ms: 5_000 }));
    let (gw, _clock) = gateway(&one_target(&a, "openai", "idle-timeout = \"150ms\""));
    let mut stream = gw.stream(&caller(), ask("r", "x")).await.unwrap();
    assert!(matches!(stream.next_text().await, Some(Ok(_))));
    let Some(Err(LlmError::Timeout(why))) = stream.next_text().await else { panic!("expected an idle timeout") };
    assert_eq!(why, "a/m: no piece for 150ms (idle-timeout) after 1 pieces");

    // Total: the route's deadline bounds attempts and backoff together.
    a.set_default(fault(Fault::StallBeforeFirstByte { ms: 5_000 }));
    let (gw, _clock) = gateway(&one_target(&a, "openai", "timeout = \"300ms\"\nretries = 5"));
    let started = Instant::now();
    let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(failure.error.kind(), "timeout", "{}", failure.error);
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(600), "{elapsed:?}");
}

/// Refuses every reservation, or records what was committed.
#[derive(Default)]
struct Ledger {
    refuse: bool,
    committed: Mutex<Vec<(Estimate, CallRecord)>>,
}

impl Quota for Ledger {
    fn reserve(&self, caller: &Caller, route: &str, estimate: Estimate) -> Result<Reservation, String> {
        if self.refuse {
            return Err(format!("tenant {:?} would exceed its daily token budget on route {route:?}", &*caller.tenant));
        }
        Ok(Reservation { estimate })
    }
    fn commit(&self, reservation: Reservation, record: &CallRecord) {
        self.committed.lock().push((reservation.estimate, record.clone()));
    }
}

#[tokio::test]
async fn a_budget_refusal_never_reaches_a_provider() {
    let a = FakeProvider::start().await.unwrap();
    let ledger = Arc::new(Ledger { refuse: true, ..Default::default() });
    let (gw, _clock) = gateway_with_quota(&one_target(&a, "openai", ""), ledger.clone());
    let failure = gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
    assert_eq!(
        failure.error,
        LlmError::BudgetExceeded("tenant \"acme\" would exceed its daily token budget on route \"r\"".into())
    );
    assert_eq!(a.request_count(), 0);
    assert!(ledger.committed.lock().is_empty());
}

#[tokio::test]
async fn usage_is_committed_once_per_call_from_the_providers_own_counts() {
    let a = FakeProvider::start().await.unwrap();
    let ledger = Arc::new(Ledger::default());
    let toml = format!("{}[prices.m]\ninput = 2.5\noutput = 10.0\n", one_target(&a, "anthropic", ""));
    let (gw, _clock) = gateway_with_quota(&toml, ledger.clone());
    let counted = Reply {
        text: Some("one two three".into()),
        input_tokens: Some(1000),
        output_tokens: Some(300),
        chunks: 3,
        ..Default::default()
    };
    a.push_many([Behavior::Reply(counted.clone()), Behavior::Reply(counted)]);

    let whole = gw.complete(&caller(), ask("r", "x")).await.unwrap();
    assert_eq!((whole.tokens, whole.cost_micros), (Tokens { input: 1000, output: 300 }, 5_500));

    let mut stream = gw.stream(&caller(), ask("r", "x")).await.unwrap();
    while stream.next_text().await.is_some() {}
    assert_eq!(stream.usage(), Some((Tokens { input: 1000, output: 300 }, 5_500)));
    drop(stream);

    let committed = ledger.committed.lock();
    assert_eq!(committed.len(), 2, "one commit per call, streams included");
    for (estimate, record) in committed.iter() {
        assert_eq!(
            (record.tokens, record.cost_micros, record.outcome.as_str()),
            (Tokens { input: 1000, output: 300 }, 5_500, "ok")
        );
        assert_eq!(
            (&*record.tenant, &*record.agent, &*record.route, record.provider.as_str()),
            ("acme", "tester", "r", "a")
        );
        assert_eq!(estimate.output_tokens, 1024, "no max-tokens: the default estimate is reserved");
    }
    assert_eq!((committed[0].1.streamed, committed[1].1.streamed), (false, true));
}

#[tokio::test]
async fn cheapest_and_fastest_strategies_order_targets() {
    let (a, b) = fakes().await;
    let toml = format!(
        "{}{}[prices.\"a/m\"]\ninput = 5.0\noutput = 15.0\n[prices.\"b/m\"]\ninput = 0.5\noutput = 1.5\n\
         [routes.cheap]\nstrategy = \"cheapest\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n\
         [routes.quick]\nstrategy = \"fastest\"\ntargets = [{{ provider = \"a\", model = \"m\" }}, {{ provider = \"b\", model = \"m\" }}]\n",
        fake_provider("a", "openai", &a),
        fake_provider("b", "openai", &b)
    );
    let (gw, _clock) = gateway(&toml);
    assert_eq!(gw.complete(&caller(), ask("cheap", "x")).await.unwrap().provider, "b");

    // Fastest: both untried, so a goes first; once b has proved faster, b leads.
    a.set_default(Behavior::Reply(Reply { first_byte_delay_ms: 120, ..Default::default() }));
    assert_eq!(gw.complete(&caller(), ask("quick", "x")).await.unwrap().provider, "a");
    assert_eq!(gw.complete(&caller(), ask("quick", "x")).await.unwrap().provider, "b", "b untried counts as fastest");
    assert_eq!(gw.complete(&caller(), ask("quick", "x")).await.unwrap().provider, "b");
}

#[tokio::test]
async fn unknown_routes_and_bad_requests_are_refused_without_an_attempt() {
    let a = FakeProvider::start().await.unwrap();
    let (gw, _clock) = gateway(&one_target(&a, "openai", ""));
    let failure = gw.complete(&caller(), ask("smart", "x")).await.unwrap_err();
    assert_eq!(failure.error, LlmError::Denied("no route named \"smart\"".into()));
    let failure = gw.complete(&caller(), ask("rr", "x")).await.unwrap_err();
    assert_eq!(failure.error, LlmError::Denied("no route named \"rr\"; did you mean \"r\"?".into()));
    let mut bad = ask("r", "x");
    bad.response_schema = Some("{not json".into());
    let failure = gw.complete(&caller(), bad).await.unwrap_err();
    assert!(
        matches!(&failure.error, LlmError::InvalidRequest(m) if m.starts_with("response-schema is not JSON")),
        "{:?}",
        failure.error
    );
    assert_eq!(a.request_count(), 0);
}

#[tokio::test]
async fn a_failed_call_is_committed_once_naming_the_target_tried_last() {
    let (a, b) = fakes().await;
    a.push(fault(Fault::Status { code: 500 }));
    b.push(fault(Fault::InvalidRequest));
    let ledger = Arc::new(Ledger::default());
    let (gw, _clock) = gateway_with_quota(&two_targets(&a, &b, "retries = 0"), ledger.clone());
    gw.complete(&caller(), ask("r", "x")).await.unwrap_err();
    let committed = ledger.committed.lock();
    assert_eq!(committed.len(), 1);
    let record = &committed[0].1;
    assert_eq!((record.provider.as_str(), record.attempts, record.outcome.as_str()), ("b", 2, "invalid-request"));
    assert_eq!((record.tokens, record.cost_micros), (Tokens::default(), 0));
}

#[tokio::test]
async fn openai_reasoning_models_get_max_completion_tokens() {
    let a = FakeProvider::start().await.unwrap();
    let toml = one_target(&a, "openai", "")
        .replace("kind = \"openai\"\n", "kind = \"openai\"\nmax-tokens-field = \"max_completion_tokens\"\n");
    let (gw, _clock) = gateway(&toml);
    let mut req = ask("r", "x");
    req.max_tokens = Some(7);
    gw.complete(&caller(), req).await.unwrap();
    let body = &a.requests()[0].body;
    assert_eq!((body["max_completion_tokens"].as_u64(), body.get("max_tokens")), (Some(7), None));
}
