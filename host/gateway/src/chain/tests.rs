//! The attempt loop, run against scripted answers instead of providers.

use super::*;
use crate::providers::Provider;
use crate::settings::{GatewaySettings, RouteSettings, TargetPolicy, TargetSettings};
use crate::types::{Message, Role};
use crate::{Gateway, Unmetered};
use paddock_core::clock::{Clock, ManualClock, SystemClock};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// Errors each target answers with, in turn, by label; then it answers `ok`.
type Script = HashMap<&'static str, VecDeque<ProviderError>>;

/// A gateway with one route `r` over the simulated providers `a` and `b`
/// (targets `a/m`, `b/m`), with 1–5 ms backoff, changed by `tune`.
fn gateway(clock: Arc<dyn Clock>, tune: impl FnOnce(&mut RouteSettings)) -> Gateway {
    let mut settings = GatewaySettings::simulated_defaults();
    let simulated = settings.providers["simulated"].clone();
    let mut route = settings.routes["fast"].clone();
    route.targets.clear();
    for name in ["a", "b"] {
        settings.providers.insert(name.into(), Provider { name: name.into(), ..simulated.clone() });
        let policy = TargetPolicy::default();
        route.targets.push(TargetSettings { provider: name.into(), model: "m".into(), policy });
    }
    route.backoff_base = Duration::from_millis(1);
    route.backoff_max = Duration::from_millis(5);
    tune(&mut route);
    settings.routes = BTreeMap::from([("r".to_string(), route)]);
    Gateway::with(&settings, clock, Arc::new(Unmetered)).expect("the gateway builds")
}

/// A one-message request on route `r`.
fn hi() -> ChatRequest {
    ChatRequest { route: "r".into(), messages: vec![Message::new(Role::User, "hi")], ..Default::default() }
}

fn caller() -> Caller {
    Caller { tenant: Arc::from("acme"), agent: Arc::from("tester") }
}

/// Runs the attempt loop of route `r` once for `req`, each attempt answered
/// by `script`: the label of the target that answered, and the trail.
async fn ask(gw: &Gateway, script: &mut Script, req: ChatRequest) -> Result<(String, Vec<Attempt>), Failure> {
    let route = gw.inner.table.load().routes["r"].clone();
    let answer = |target: Arc<RouteTarget>, _budget: Duration| {
        let result = match script.get_mut(target.label()).and_then(VecDeque::pop_front) {
            Some(error) => Err(error),
            None => Ok(()),
        };
        std::future::ready((result, Meta::default()))
    };
    let ((), target, trail) = gw.inner.chain(&route, &caller(), &req, later(), answer).await?;
    Ok((target.label().to_string(), trail))
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(60)
}

fn error(class: ErrorClass) -> ProviderError {
    ProviderError::new(class, "scripted")
}

fn rate_limited(wait: Duration) -> ProviderError {
    ProviderError { retry_after: Some(wait), ..error(ErrorClass::RateLimited) }
}

fn scripted(entries: impl IntoIterator<Item = (&'static str, Vec<ProviderError>)>) -> Script {
    entries.into_iter().map(|(label, errors)| (label, errors.into())).collect()
}

#[tokio::test]
async fn a_429_fails_over_at_once_and_the_target_is_skipped_until_retry_after_passes() {
    let clock = ManualClock::new();
    let gw = gateway(clock.clone(), |_| {});
    let mut script = scripted([("a/m", vec![rate_limited(Duration::from_secs(7))])]);
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("b answers");
    assert_eq!((target.as_str(), trail.len()), ("b/m", 2));
    assert!(matches!(&trail[0].outcome, AttemptOutcome::Failed(e) if e.class == ErrorClass::RateLimited));
    // The hour of each target counts it: a's failed attempt and failover, b's answer.
    let counts: Vec<_> = gw
        .hours()
        .iter()
        .map(|t| t.hour.minutes.iter().map(|m| (m.attempts, m.errors, m.failovers)).collect::<Vec<_>>())
        .collect();
    assert_eq!(counts, [vec![(1, 1, 1)], vec![(1, 0, 0)]]);
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("b answers");
    assert_eq!(target, "b/m");
    assert_eq!(trail[0].outcome, AttemptOutcome::Skipped("rate limited for 7000ms more".into()));
    clock.advance(Duration::from_secs(7));
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("a answers");
    assert_eq!((target.as_str(), trail.len()), ("a/m", 1));
}

#[tokio::test]
async fn retryable_errors_are_retried_on_the_same_target_within_its_retries() {
    let gw = gateway(ManualClock::new(), |r| r.targets[0].policy.retries = 2);
    let mut script = scripted([("a/m", vec![error(ErrorClass::Server), error(ErrorClass::Overloaded)])]);
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("a answers the third time");
    assert_eq!((target.as_str(), trail.len()), ("a/m", 3));
    let mut script = scripted([("a/m", vec![error(ErrorClass::Server); 3])]);
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("b answers");
    assert_eq!((target.as_str(), trail.len()), ("b/m", 4), "a is tried 1 + 2 times, then b");
}

#[tokio::test]
async fn max_attempts_ends_the_request_and_the_error_lists_every_attempt() {
    let gw = gateway(ManualClock::new(), |r| {
        r.max_attempts = 2;
        r.targets[0].policy.retries = 5;
    });
    let mut script = scripted([("a/m", vec![error(ErrorClass::Server), error(ErrorClass::Overloaded)])]);
    let failure = ask(&gw, &mut script, hi()).await.expect_err("the budget runs out on a");
    let LlmError::Unavailable(text) = &failure.error else { panic!("{:?}", failure.error) };
    assert!(
        text.starts_with(
            "every target of route \"r\" failed within max-attempts (2); 1. a/m: server-error: scripted after "
        ),
        "{text}"
    );
    assert!(text.contains("; 2. a/m: overloaded: scripted after "), "{text}");
    assert_eq!(failure.trail.len(), 2);
}

#[tokio::test]
async fn every_target_failing_lists_every_attempt_without_naming_max_attempts() {
    let gw = gateway(ManualClock::new(), |r| r.targets.iter_mut().for_each(|t| t.policy.retries = 0));
    let mut script =
        scripted([("a/m", vec![error(ErrorClass::Timeout)]), ("b/m", vec![error(ErrorClass::Connection)])]);
    let failure = ask(&gw, &mut script, hi()).await.expect_err("both fail");
    let LlmError::Unavailable(text) = &failure.error else { panic!("{:?}", failure.error) };
    assert!(text.starts_with("every target of route \"r\" failed; 1. a/m: timeout: scripted after "), "{text}");
    assert!(text.contains("; 2. b/m: connection: scripted after "), "{text}");
}

#[tokio::test]
async fn errors_no_retry_can_fix_end_the_request_at_once() {
    for (class, expected) in [
        (ErrorClass::InvalidRequest, LlmError::InvalidRequest("a/m: invalid-request: scripted".into())),
        (ErrorClass::ContentFilter, LlmError::ContentFiltered("a/m: content-filter: scripted".into())),
        (ErrorClass::Auth, LlmError::Unavailable("a/m: auth: scripted (not retried)".into())),
        (ErrorClass::DailyQuota, LlmError::Unavailable("a/m: daily-quota: scripted (not retried)".into())),
    ] {
        let gw = gateway(ManualClock::new(), |r| r.targets[0].policy.retries = 3);
        let mut script = scripted([("a/m", vec![error(class)])]);
        let failure = ask(&gw, &mut script, hi()).await.expect_err("no retry, no failover");
        assert_eq!((failure.error, failure.trail.len()), (expected, 1), "{class:?}");
    }
}

#[tokio::test]
async fn an_open_breaker_is_skipped_and_its_half_open_probe_gets_the_probe_timeout() {
    let clock = ManualClock::new();
    let gw = gateway(clock.clone(), |r| r.targets[0].policy.retries = 0);
    let mut script = scripted([("a/m", vec![error(ErrorClass::Server); 3])]);
    for _ in 0..3 {
        assert_eq!(ask(&gw, &mut script, hi()).await.expect("b answers").0, "b/m");
    }
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("b answers");
    assert_eq!(target, "b/m");
    assert_eq!(trail[0].outcome, AttemptOutcome::Skipped("circuit open for 60000ms more".into()));
    let hours = gw.hours();
    let opened: Vec<_> = hours[0].hour.transitions.iter().map(|c| c.to).collect();
    assert_eq!((hours[0].breaker, opened), ("open", vec!["open"]));
    clock.advance(Duration::from_secs(60));
    let route = gw.inner.table.load().routes["r"].clone();
    let mut budgets = Vec::new();
    let answer = |target: Arc<RouteTarget>, budget: Duration| {
        budgets.push((target.label().to_string(), budget));
        std::future::ready((Ok(()), Meta::default()))
    };
    let (_, target, _) = gw.inner.chain(&route, &caller(), &hi(), later(), answer).await.expect("the probe answers");
    assert_eq!(target.label(), "a/m");
    assert_eq!(budgets, [("a/m".to_string(), Duration::from_secs(30))]);
}

#[tokio::test]
async fn a_short_retry_after_on_every_target_is_waited_out() {
    let gw = gateway(Arc::new(SystemClock), |_| {});
    let wait = Duration::from_millis(20);
    let mut script = scripted([("a/m", vec![rate_limited(wait)]), ("b/m", vec![rate_limited(wait * 2)])]);
    let started = Instant::now();
    let (target, trail) = ask(&gw, &mut script, hi()).await.expect("a answers after the wait");
    assert!(started.elapsed() >= wait, "{:?}", started.elapsed());
    assert_eq!((target.as_str(), trail.len()), ("a/m", 3));
}

#[tokio::test]
async fn a_long_retry_after_on_every_target_answers_rate_limited_with_the_soonest() {
    let gw = gateway(ManualClock::new(), |_| {});
    let mut script = scripted([
        ("a/m", vec![rate_limited(Duration::from_secs(30))]),
        ("b/m", vec![rate_limited(Duration::from_secs(20))]),
    ]);
    let failure = ask(&gw, &mut script, hi()).await.expect_err("too long to wait");
    assert_eq!((failure.error, failure.trail.len()), (LlmError::RateLimited(Duration::from_secs(20)), 2));
}

#[tokio::test]
async fn a_rate_limit_beside_a_broken_target_is_unavailable_not_rate_limited() {
    let gw = gateway(ManualClock::new(), |r| r.targets[0].policy.retries = 0);
    let mut script =
        scripted([("a/m", vec![error(ErrorClass::Server)]), ("b/m", vec![rate_limited(Duration::from_secs(30))])]);
    let failure = ask(&gw, &mut script, hi()).await.expect_err("both fail");
    assert_eq!(failure.error.kind(), "unavailable", "{}", failure.error);
}

#[tokio::test]
async fn the_deadline_ends_the_request_with_every_attempt_so_far() {
    let gw = gateway(ManualClock::new(), |r| r.timeout = Duration::from_millis(30));
    let route = gw.inner.table.load().routes["r"].clone();
    let slow = |_target: Arc<RouteTarget>, _budget: Duration| async {
        tokio::time::sleep(Duration::from_millis(40)).await;
        (Err::<(), _>(error(ErrorClass::Server)), Meta::default())
    };
    let deadline = Instant::now() + route.settings.timeout;
    let failure = gw.inner.chain(&route, &caller(), &hi(), deadline, slow).await.expect_err("past the deadline");
    let LlmError::Timeout(text) = &failure.error else { panic!("{:?}", failure.error) };
    assert!(
        text.starts_with(
            "route \"r\" gave no answer within its timeout of 30ms; 1. a/m: server-error: scripted after "
        ),
        "{text}"
    );
    assert_eq!(failure.trail.len(), 1);
}

#[test]
fn full_jitter_stays_under_the_capped_exponential() {
    let base = Duration::from_millis(100);
    let max = Duration::from_secs(1);
    for retry in 0..40 {
        let ceiling = (base * 2u32.pow(retry.min(20))).min(max);
        for _ in 0..50 {
            assert!(full_jitter(base, max, retry) <= ceiling);
        }
    }
    let spread: Vec<Duration> = (0..200).map(|_| full_jitter(base, max, 3)).collect();
    assert!(
        spread.iter().any(|d| *d < Duration::from_millis(200))
            && spread.iter().any(|d| *d > Duration::from_millis(600))
    );
}

#[tokio::test]
async fn a_conversation_stays_on_the_target_that_answered_it() {
    let clock = ManualClock::new();
    let gw = gateway(clock.clone(), |_| {});
    let mut script = scripted([("a/m", vec![rate_limited(Duration::from_secs(1))])]);
    let talk = || ChatRequest { conversation: Some("c1".into()), ..hi() };
    assert_eq!(ask(&gw, &mut script, talk()).await.expect("b answers").0, "b/m");
    clock.advance(Duration::from_secs(1));
    let (target, trail) = ask(&gw, &mut script, talk()).await.expect("b answers again");
    assert_eq!((target.as_str(), trail.len()), ("b/m", 1));
    assert_eq!(ask(&gw, &mut script, hi()).await.expect("a answers").0, "a/m", "a request of no conversation");
}

/// `n` requests, each failed by both targets of the route.
async fn both_fail(gw: &Gateway, n: usize) {
    for _ in 0..n {
        let mut script = scripted([("a/m", vec![error(ErrorClass::Server)]), ("b/m", vec![error(ErrorClass::Server)])]);
        ask(gw, &mut script, hi()).await.expect_err("both fail");
    }
}

#[tokio::test]
async fn when_every_breaker_refuses_the_target_whose_recent_calls_mostly_succeeded_is_still_tried() {
    let gw = gateway(ManualClock::new(), |r| r.targets.iter_mut().for_each(|t| t.policy.retries = 0));
    let mut none = Script::new();
    for _ in 0..6 {
        assert_eq!(ask(&gw, &mut none, hi()).await.expect("a answers").0, "a/m");
    }
    // a: 6 of its last 9 calls succeeded; b: none of its 3.
    both_fail(&gw, 3).await;
    let (target, trail) = ask(&gw, &mut none, hi()).await.expect("degraded mode tries a");
    assert_eq!(target, "a/m");
    let skipped = AttemptOutcome::Skipped("circuit open for 60000ms more".into());
    assert_eq!(trail.iter().map(|a| &a.outcome).collect::<Vec<_>>(), [&skipped, &skipped, &AttemptOutcome::Ok]);
    let metrics = gw.metrics().render();
    assert!(
        metrics
            .contains(r#"paddock_llm_degraded_attempts_total{route="r",provider="a",model="m",outcome="admitted"} 1"#),
        "{metrics}"
    );

    // When a fails too, b is not tried: every one of its recent calls failed.
    let mut script = scripted([("a/m", vec![error(ErrorClass::Server)])]);
    let failure = ask(&gw, &mut script, hi()).await.expect_err("a fails, b stays skipped");
    assert_eq!(failure.trail.len(), 4);
    assert!(matches!(&failure.trail[2].outcome, AttemptOutcome::Failed(e) if e.class == ErrorClass::Server));
    assert_eq!(
        failure.trail[3].outcome,
        AttemptOutcome::Skipped(
            "circuit open for 60000ms more; 0% of its last calls succeeded, under panic-min-success (20%)".into()
        )
    );
}

#[tokio::test]
async fn panic_min_success_of_one_turns_degraded_mode_off() {
    let gw = gateway(ManualClock::new(), |r| {
        for t in &mut r.targets {
            t.policy.retries = 0;
            t.policy.breaker.panic_min_success = 1.0;
        }
    });
    let mut none = Script::new();
    for _ in 0..6 {
        ask(&gw, &mut none, hi()).await.expect("a answers");
    }
    both_fail(&gw, 3).await;
    let failure = ask(&gw, &mut none, hi()).await.expect_err("every breaker refuses");
    assert_eq!(failure.trail.len(), 2, "each target skipped once, no degraded pass");
    assert!(failure.trail.iter().all(|a| matches!(a.outcome, AttemptOutcome::Skipped(_))));
}

#[test]
fn a_model_names_a_route_or_pins_its_targets_by_provider_and_model_or_by_model() {
    let gw = gateway(Arc::new(SystemClock), |_| {});
    let (route, target) = gw.find_route("r").unwrap();
    assert_eq!((&*route.name, target), ("r", None));
    let (route, target) = gw.find_route("r/b/m").unwrap();
    assert_eq!((&*route.name, target), ("r", Some("b/m")));
    let labels = |pinned: Route| pinned.targets.iter().map(|t| t.label().to_string()).collect::<Vec<_>>();
    assert_eq!(labels(route.pinned("b/m").unwrap()), ["b/m"]);
    assert_eq!(labels(route.pinned("m").unwrap()), ["a/m", "b/m"], "a bare model pins each target serving it");
    assert!(route.pinned("c/m").is_none());
    assert_eq!(route.no_target("c/m"), r#"route "r" has no target "c/m" (its targets: a/m, b/m)"#);
    assert!(gw.find_route("s/a/m").is_none(), "no route s");
}

#[tokio::test]
async fn a_pinned_target_that_is_not_the_routes_is_an_invalid_request_before_any_attempt() {
    let gw = gateway(Arc::new(SystemClock), |_| {});
    let req = ChatRequest { target: Some("c/m".into()), ..hi() };
    let failure = gw.complete(&caller(), req).await.unwrap_err();
    assert_eq!(
        (failure.error, failure.trail.len()),
        (LlmError::InvalidRequest(r#"route "r" has no target "c/m" (its targets: a/m, b/m)"#.into()), 0)
    );
}
