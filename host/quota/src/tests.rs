//! The ledger's rules, each proved through its public API.

use super::*;
use paddock_core::clock::ManualClock;
use paddock_gateway::types::Tokens;
use std::time::{Duration, UNIX_EPOCH};

/// A clock standing at `unix_seconds` (UTC) until a test advances it.
fn calendar(unix_seconds: u64) -> Arc<ManualClock> {
    ManualClock::starting_at(UNIX_EPOCH + Duration::from_secs(unix_seconds))
}

/// 2026-11-21T12:00:00Z.
const NOV_21_NOON: u64 = 1_795_262_400;
/// 2026-11-21T23:59:00Z.
const NOV_21_LATE: u64 = 1_795_305_540;
/// 2026-11-30T23:59:00Z.
const NOV_30_LATE: u64 = 1_796_083_140;

fn caller(tenant: &str, agent: &str) -> Caller {
    Caller { tenant: tenant.into(), agent: agent.into() }
}

fn estimate(tokens: u32, cost_micros: u64) -> Estimate {
    Estimate { input_tokens: tokens / 2, output_tokens: tokens - tokens / 2, cost_micros }
}

fn record(who: &Caller, tokens: u32, cost_micros: u64) -> CallRecord {
    CallRecord {
        tenant: who.tenant.clone(),
        agent: who.agent.clone(),
        route: "fast".into(),
        provider: "simulated".into(),
        model: "m".into(),
        attempts: 1,
        latency: Duration::from_millis(5),
        tokens: Tokens { input: tokens / 2, output: tokens - tokens / 2 },
        cost_micros,
        outcome: "ok".into(),
        streamed: false,
    }
}

/// Reserves `tokens` (and `cost`) and commits the same.
fn spend(ledger: &Ledger, who: &Caller, tokens: u32, cost: u64) {
    let r = ledger.reserve(who, "fast", estimate(tokens, cost)).unwrap();
    ledger.commit(r, &record(who, tokens, cost));
}

fn tenant_budget(budget: Budget) -> Budgets {
    Budgets { tenants: BTreeMap::from([("acme".to_string(), budget)]), agents: BTreeMap::new() }
}

fn memory(budgets: Budgets, clock: Arc<ManualClock>) -> Arc<Ledger> {
    Ledger::open(&LedgerStore::Memory, budgets, clock).unwrap()
}

/// A memory ledger at noon on 2026-11-21 with `budget` for the tenant "acme".
fn acme(budget: Budget) -> Arc<Ledger> {
    memory(tenant_budget(budget), calendar(NOV_21_NOON))
}

fn row(agent: Option<&str>, window: &str, requests: u64, tokens: u64, cost: u64, refusals: u64) -> UsageRow {
    UsageRow {
        tenant: "acme".into(),
        agent: agent.map(Into::into),
        window: window.into(),
        requests,
        input_tokens: tokens / 2,
        output_tokens: tokens - tokens / 2,
        cost_micros: cost,
        refusals,
    }
}

fn in_flight(ledger: &Ledger, tenant: &str) -> scope::InFlight {
    ledger.tenants.lock()[tenant].scope.in_flight
}

/// 16 threads race calls of 30 estimated tokens against a budget of
/// 100 000 tokens a day, each committing `actual(i)` tokens. Returns the
/// calls committed and refused.
fn race(ledger: &Arc<Ledger>, actual: fn(u32) -> u32) -> (u64, u64) {
    let threads: Vec<_> = (0..16u32)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let who = caller("acme", if t % 2 == 0 { "even" } else { "odd" });
                let (mut ok, mut refused) = (0, 0);
                for i in 0..1000 {
                    match ledger.reserve(&who, "fast", estimate(30, 0)) {
                        Ok(r) => {
                            std::thread::yield_now();
                            ledger.commit(r, &record(&who, actual(i * 16 + t), 0));
                            ok += 1;
                        }
                        Err(e) => {
                            assert!(e.contains("would go over"), "{e}");
                            refused += 1
                        }
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    threads.into_iter().map(|h| h.join().unwrap()).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
}

fn day_row(ledger: &Ledger) -> UsageRow {
    ledger.usage(Some("acme")).into_iter().find(|r| r.agent.is_none() && r.window == "2026-11-21").unwrap()
}

/// The rules, proved on each place a ledger decides in: this process's
/// memory, and PostgreSQL, where every host's calls count against one budget.
macro_rules! rules {
    ($store:ident, $open:expr) => {
        mod $store {
            use super::*;

            /// A ledger of this store; `None` when its server is missing outside CI (said why).
            fn memory(budgets: Budgets, clock: Arc<ManualClock>) -> Option<Arc<Ledger>> {
                $open(budgets, clock)
            }

            /// A ledger at noon on 2026-11-21 with `budget` for the tenant "acme".
            fn acme(budget: Budget) -> Option<Arc<Ledger>> {
                memory(tenant_budget(budget), calendar(NOV_21_NOON))
            }

            #[test]
            fn a_tenant_over_its_tokens_per_day_budget_is_told_used_in_flight_and_this_call() {
                let Some(ledger) = acme(Budget { tokens_per_day: Some(10_000), ..Budget::default() }) else { return };
                let planner = caller("acme", "planner");
                spend(&ledger, &planner, 9800, 0);
                let _held = ledger.reserve(&planner, "fast", estimate(150, 0)).unwrap();
                let refusal = ledger.reserve(&caller("acme", "writer"), "fast", estimate(1300, 0)).unwrap_err();
                assert_eq!(
                    refusal,
                    r#"tenant "acme" would go over its tokens-per-day budget for 2026-11-21 (tenants.acme.budget.tokens-per-day = 10000): 9800 used, 150 reserved by calls in flight, this call may use 1300"#
                );
            }

            #[test]
            fn an_agent_over_its_own_budget_is_refused_while_its_siblings_are_not() {
                let mut budgets = Budgets::default();
                let agent_budget = Budget { tokens_per_month: Some(500), ..Budget::default() };
                budgets.agents.insert(("acme".into(), "planner".into()), agent_budget);
                let Some(ledger) = memory(budgets, calendar(NOV_21_NOON)) else { return };
                let _held = ledger.reserve(&caller("acme", "planner"), "fast", estimate(400, 0)).unwrap();
                let refusal = ledger.reserve(&caller("acme", "planner"), "fast", estimate(200, 0)).unwrap_err();
                assert_eq!(
                    refusal,
                    r#"agent "planner" of tenant "acme" would go over its tokens-per-month budget for 2026-11 (tenants.acme.agent-budgets.planner.tokens-per-month = 500): 0 used, 400 reserved by calls in flight, this call may use 200"#
                );
                assert!(ledger.reserve(&caller("acme", "writer"), "fast", estimate(200, 0)).is_ok());
            }

            #[test]
            fn a_cost_budget_is_told_in_dollars() {
                let budget = Budget { cost_micros_per_day: Some(5_000_000), ..Budget::default() };
                let Some(ledger) = acme(budget) else { return };
                let planner = caller("acme", "planner");
                spend(&ledger, &planner, 10, 4_999_500);
                let refusal = ledger.reserve(&planner, "fast", estimate(10, 30_000)).unwrap_err();
                assert_eq!(
                    refusal,
                    r#"tenant "acme" would go over its usd-per-day budget for 2026-11-21 (tenants.acme.budget.usd-per-day = 5.00): $4.9995 used, $0.00 reserved by calls in flight, this call may use $0.03"#
                );
            }

            #[test]
            fn a_rate_budget_says_when_to_retry() {
                let clock = calendar(NOV_21_NOON);
                let Some(ledger) = memory(tenant_budget(Budget { requests_per_minute: Some(60), ..Budget::default() }), clock.clone()) else { return };
                let planner = caller("acme", "planner");
                for _ in 0..60 {
                    spend(&ledger, &planner, 10, 0);
                }
                clock.advance(Duration::from_millis(150));
                let refusal = ledger.reserve(&planner, "fast", estimate(10, 0)).unwrap_err();
                assert_eq!(
                    refusal,
                    r#"tenant "acme" would go over its requests-per-minute budget (tenants.acme.budget.requests-per-minute = 60); retry in 850 ms"#
                );
                clock.advance(Duration::from_millis(850));
                assert!(ledger.reserve(&planner, "fast", estimate(10, 0)).is_ok());
            }

            #[test]
            fn a_call_larger_than_a_minute_of_tokens_never_fits() {
                let Some(ledger) = acme(Budget { tokens_per_minute: Some(1000), ..Budget::default() }) else { return };
                let refusal = ledger.reserve(&caller("acme", "planner"), "fast", estimate(1300, 0)).unwrap_err();
                assert_eq!(
                    refusal,
                    r#"tenant "acme" would go over its tokens-per-minute budget (tenants.acme.budget.tokens-per-minute = 1000): this call may use 1300, more than the budget allows in a minute"#
                );
            }

            #[test]
            fn tokens_per_minute_refunds_what_a_call_did_not_use() {
                let Some(ledger) = acme(Budget { tokens_per_minute: Some(1000), ..Budget::default() }) else { return };
                let planner = caller("acme", "planner");
                let r = ledger.reserve(&planner, "fast", estimate(1000, 0)).unwrap();
                ledger.commit(r, &record(&planner, 100, 0));
                let _held = ledger.reserve(&planner, "fast", estimate(900, 0)).unwrap();
                let refusal = ledger.reserve(&planner, "fast", estimate(1, 0)).unwrap_err();
                assert!(refusal.ends_with("tokens-per-minute = 1000); retry in 60 ms"), "{refusal}");
            }

            #[test]
            fn tokens_per_minute_charges_what_a_call_used_beyond_its_estimate() {
                let Some(ledger) = acme(Budget { tokens_per_minute: Some(1000), ..Budget::default() }) else { return };
                let planner = caller("acme", "planner");
                let r = ledger.reserve(&planner, "fast", estimate(100, 0)).unwrap();
                ledger.commit(r, &record(&planner, 1000, 0));
                let refusal = ledger.reserve(&planner, "fast", estimate(100, 0)).unwrap_err();
                assert!(refusal.ends_with("tokens-per-minute = 1000); retry in 6000 ms"), "{refusal}");
            }

            #[test]
            fn a_refusal_takes_nothing_and_is_counted_in_both_scopes() {
                let budget = Budget { tokens_per_day: Some(150), requests_per_minute: Some(2), ..Budget::default() };
                let Some(ledger) = acme(budget) else { return };
                let planner = caller("acme", "planner");
                let first = ledger.reserve(&planner, "fast", estimate(100, 0)).unwrap();
                assert!(ledger.reserve(&planner, "fast", estimate(100, 7)).is_err());
                assert_eq!(in_flight(&ledger, "acme"), scope::InFlight { tokens: 100, cost_micros: 0 });
                // Neither tokens nor a request were taken by the refusal: exactly what is left still fits.
                let second = ledger.reserve(&planner, "fast", estimate(50, 0)).unwrap();
                ledger.commit(first, &record(&planner, 100, 0));
                ledger.commit(second, &record(&planner, 50, 0));
                assert_eq!(in_flight(&ledger, "acme"), scope::InFlight::default());
                assert_eq!(
                    ledger.usage(Some("acme")),
                    [
                        row(None, "2026-11", 2, 150, 0, 1),
                        row(None, "2026-11-21", 2, 150, 0, 1),
                        row(Some("planner"), "2026-11", 2, 150, 0, 1),
                        row(Some("planner"), "2026-11-21", 2, 150, 0, 1),
                    ]
                );
            }

            #[test]
            fn usage_is_recorded_for_scopes_without_budgets() {
                let Some(ledger) = memory(Budgets::default(), calendar(NOV_21_NOON)) else { return };
                spend(&ledger, &caller("acme", "planner"), 40, 120);
                spend(&ledger, &caller("other", "x"), 2, 1);
                assert_eq!(
                    ledger.usage(Some("acme")),
                    [
                        row(None, "2026-11", 1, 40, 120, 0),
                        row(None, "2026-11-21", 1, 40, 120, 0),
                        row(Some("planner"), "2026-11", 1, 40, 120, 0),
                        row(Some("planner"), "2026-11-21", 1, 40, 120, 0),
                    ]
                );
                assert_eq!(ledger.usage(None).len(), 8);
            }



            #[test]
            fn racing_calls_never_commit_more_than_a_budget_when_they_use_at_most_their_estimate() {
                let Some(ledger) = acme(Budget { tokens_per_day: Some(100_000), ..Budget::default() }) else { return };
                let (ok, refused) = race(&ledger, |i| 20 + i % 11);
                let day = day_row(&ledger);
                assert!(day.input_tokens + day.output_tokens <= 100_000, "{day:?}");
                assert!(refused > 0);
                assert_eq!((day.requests, day.refusals), (ok, refused));
                assert_eq!(in_flight(&ledger, "acme"), scope::InFlight::default());
                // Once every call has settled, what is left is less than one more call.
                assert!(day.input_tokens + day.output_tokens > 100_000 - 16 * 30, "{day:?}");
            }

            #[test]
            fn racing_calls_overspend_by_at_most_what_calls_in_flight_used_beyond_their_estimates() {
                let Some(ledger) = acme(Budget { tokens_per_day: Some(100_000), ..Budget::default() }) else { return };
                let (ok, refused) = race(&ledger, |_| 40);
                let day = day_row(&ledger);
                // At most 16 calls were in flight at the last admission, each 10 over.
                assert!(day.input_tokens + day.output_tokens <= 100_000 + 16 * 10, "{day:?}");
                assert_eq!((day.requests, day.refusals), (ok, refused));
                assert_eq!(day.input_tokens + day.output_tokens, ok * 40);
            }

            #[test]
            fn a_new_utc_day_starts_empty_while_calls_in_flight_still_count() {
                let clock = calendar(NOV_21_LATE);
                let budget = Budget { tokens_per_day: Some(1000), tokens_per_month: Some(1500), ..Budget::default() };
                let Some(ledger) = memory(tenant_budget(budget), clock.clone()) else { return };
                let planner = caller("acme", "planner");
                spend(&ledger, &planner, 600, 0);
                let held = ledger.reserve(&planner, "fast", estimate(300, 0)).unwrap();
                clock.advance(Duration::from_secs(120));
                let refusal = ledger.reserve(&planner, "fast", estimate(800, 0)).unwrap_err();
                assert!(
                    refusal.contains(
                        "tokens-per-day budget for 2026-11-22 (tenants.acme.budget.tokens-per-day = 1000): 0 used, 300 reserved"
                    ),
                    "{refusal}"
                );
                ledger.commit(held, &record(&planner, 300, 0));
                let refusal = ledger.reserve(&planner, "fast", estimate(700, 0)).unwrap_err();
                assert!(
                    refusal.contains(
                        "tokens-per-month budget for 2026-11 (tenants.acme.budget.tokens-per-month = 1500): 900 used, 0 reserved"
                    ),
                    "{refusal}"
                );
                let rows = ledger.usage(Some("acme"));
                assert_eq!(&rows[..2], [row(None, "2026-11", 2, 900, 0, 2), row(None, "2026-11-22", 1, 300, 0, 2)]);
            }

            #[test]
            fn a_new_utc_month_starts_empty_while_calls_in_flight_still_count() {
                let clock = calendar(NOV_30_LATE);
                let Some(ledger) = memory(tenant_budget(Budget { tokens_per_month: Some(1000), ..Budget::default() }), clock.clone()) else { return };
                let planner = caller("acme", "planner");
                spend(&ledger, &planner, 900, 0);
                let held = ledger.reserve(&planner, "fast", estimate(100, 0)).unwrap();
                clock.advance(Duration::from_secs(120));
                let refusal = ledger.reserve(&planner, "fast", estimate(901, 0)).unwrap_err();
                assert!(
                    refusal.contains("for 2026-12 (tenants.acme.budget.tokens-per-month = 1000): 0 used, 100 reserved"),
                    "{refusal}"
                );
                ledger.commit(held, &record(&planner, 100, 0));
                assert!(ledger.reserve(&planner, "fast", estimate(900, 0)).is_ok());
                let rows = ledger.usage(Some("acme"));
                assert_eq!(&rows[..2], [row(None, "2026-12", 1, 100, 0, 1), row(None, "2026-12-01", 1, 100, 0, 1)]);
            }
        }
    };
}

rules!(in_memory, |budgets, clock| Some(super::memory(budgets, clock)));

rules!(postgres, |budgets, clock| {
    let url = paddock_postgres::testing::database_url("ledger")?;
    Some(Ledger::open(&LedgerStore::Postgres(paddock_postgres::Settings::new(&url)), budgets, clock).unwrap())
});

fn sqlite(path: &Path, budgets: Budgets, clock: Arc<ManualClock>) -> Arc<Ledger> {
    Ledger::open(&LedgerStore::Sqlite(path.to_path_buf()), budgets, clock).unwrap()
}

#[test]
fn a_reopened_ledger_holds_its_usage_and_still_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/ledger.sqlite");
    let budgets = tenant_budget(Budget { tokens_per_day: Some(1000), ..Budget::default() });
    let clock = calendar(NOV_21_NOON);
    let planner = caller("acme", "planner");
    let before = {
        let ledger = sqlite(&path, budgets.clone(), clock.clone());
        spend(&ledger, &planner, 900, 25);
        assert!(ledger.reserve(&planner, "fast", estimate(200, 0)).is_err());
        ledger.usage(None)
    };
    let ledger = sqlite(&path, budgets, clock);
    assert_eq!(ledger.usage(None), before);
    let refusal = ledger.reserve(&planner, "fast", estimate(200, 0)).unwrap_err();
    assert!(refusal.ends_with("= 1000): 900 used, 0 reserved by calls in flight, this call may use 200"), "{refusal}");
}

#[test]
fn read_usage_sees_the_flushed_rows_of_a_ledger_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = sqlite(&path, Budgets::default(), calendar(NOV_21_NOON));
    spend(&ledger, &caller("acme", "planner"), 40, 120);
    spend(&ledger, &caller("other", "x"), 2, 1);
    ledger.flush().unwrap();
    assert_eq!(read_usage(&path, None).unwrap(), ledger.usage(None));
    assert_eq!(read_usage(&path, Some("acme")).unwrap(), ledger.usage(Some("acme")));
}

#[test]
fn read_usage_reads_a_ledger_no_host_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let rows = {
        let ledger = sqlite(&path, Budgets::default(), calendar(NOV_21_NOON));
        spend(&ledger, &caller("acme", "planner"), 40, 120);
        ledger.usage(None)
    };
    assert!(!dir.path().join("ledger.sqlite-wal").exists());
    assert_eq!(read_usage(&path, None).unwrap(), rows);
}

#[test]
fn usage_reaches_the_file_within_a_batch_window_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let ledger = sqlite(&path, Budgets::default(), calendar(NOV_21_NOON));
    spend(&ledger, &caller("acme", "planner"), 40, 120);
    let deadline = Instant::now() + Duration::from_secs(2);
    while read_usage(&path, None).unwrap() != ledger.usage(None) {
        assert!(Instant::now() < deadline, "usage not written after 2 s");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn two_ledgers_writing_one_file_sum_their_usage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let clock = calendar(NOV_21_NOON);
    let (a, b) = (sqlite(&path, Budgets::default(), clock.clone()), sqlite(&path, Budgets::default(), clock));
    spend(&a, &caller("acme", "planner"), 40, 100);
    spend(&b, &caller("acme", "planner"), 60, 20);
    a.flush().unwrap();
    b.flush().unwrap();
    let rows = read_usage(&path, Some("acme")).unwrap();
    assert_eq!(rows[1], row(None, "2026-11-21", 2, 100, 120, 0));
}

#[test]
fn racing_calls_on_a_durable_ledger_reach_the_file_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    let budgets = tenant_budget(Budget { tokens_per_day: Some(100_000), ..Budget::default() });
    let ledger = sqlite(&path, budgets, calendar(NOV_21_NOON));
    race(&ledger, |i| 20 + i % 11);
    ledger.flush().unwrap();
    assert_eq!(read_usage(&path, None).unwrap(), ledger.usage(None));
}

/// The errors of `Ledger::open` and of `read_usage` for the file at `path`.
fn errors(path: &Path) -> (String, String) {
    let store = LedgerStore::Sqlite(path.to_path_buf());
    let open = Ledger::open(&store, Budgets::default(), calendar(NOV_21_NOON)).unwrap_err();
    (open.to_string(), read_usage(path, None).unwrap_err().to_string())
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    std::fs::write(&path, "not a database, only text that is long enough to fill a header. ".repeat(100)).unwrap();
    let expected = format!("ledger file {}: file is not a database", path.display());
    assert_eq!(errors(&path), (expected.clone(), expected));
}

#[test]
fn an_sqlite_file_of_something_else_is_not_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&path).unwrap().execute_batch("CREATE TABLE notes (text TEXT);").unwrap();
    let (open, read) = errors(&path);
    assert_eq!(open, format!("ledger file {}: an SQLite database, but not a paddock ledger", path.display()));
    assert_eq!(read, format!("ledger file {}: not a paddock ledger (no usage table)", path.display()));
}

#[test]
fn reading_a_missing_ledger_file_names_it() {
    let path = Path::new("/nonexistent/ledger.sqlite");
    assert_eq!(read_usage(path, None).unwrap_err().to_string(), "ledger file /nonexistent/ledger.sqlite: no such file");
}

#[test]
fn new_budgets_apply_to_the_next_call_and_count_what_was_spent_before() {
    let ledger = acme(Budget { tokens_per_day: Some(100), ..Budget::default() });
    let who = caller("acme", "planner");
    spend(&ledger, &who, 60, 0);
    // Lowered under what is spent: the next call is refused at once.
    ledger.set_budgets(tenant_budget(Budget { tokens_per_day: Some(50), ..Budget::default() }));
    let refused = ledger.reserve(&who, "fast", estimate(1, 0)).unwrap_err();
    assert!(refused.contains("(tenants.acme.budget.tokens-per-day = 50): 60 used"), "{refused}");
    // Raised: the same call fits; removed: the tenant is unlimited.
    ledger.set_budgets(tenant_budget(Budget { tokens_per_day: Some(200), ..Budget::default() }));
    spend(&ledger, &who, 100, 0);
    ledger.set_budgets(Budgets::default());
    spend(&ledger, &who, 10_000, 0);
    let day = ledger.usage(Some("acme")).into_iter().find(|u| u.agent.is_none() && u.window == "2026-11-21").unwrap();
    assert_eq!((day.input_tokens + day.output_tokens, day.refusals), (10_160, 1));
}

/// Three hosts' ledgers on one database, eight threads each, race calls of 30
/// estimated tokens (each using at most that) against one tenant's budget of
/// 20 000 tokens a day: together they never commit more.
#[test]
fn hosts_racing_one_budget_on_postgres_never_commit_more_than_it() {
    let Some(url) = paddock_postgres::testing::database_url("ledger_hosts") else { return };
    let budgets = tenant_budget(Budget { tokens_per_day: Some(20_000), ..Budget::default() });
    let store = LedgerStore::Postgres(paddock_postgres::Settings::new(&url));
    let hosts: Vec<Arc<Ledger>> =
        (0..3).map(|_| Ledger::open(&store, budgets.clone(), calendar(NOV_21_NOON)).unwrap()).collect();
    let (ok, refused): (u64, u64) = std::thread::scope(|s| {
        let racers: Vec<_> = (0..24u32)
            .map(|t| {
                let ledger = hosts[t as usize % 3].clone();
                s.spawn(move || {
                    let who = caller("acme", if t % 2 == 0 { "even" } else { "odd" });
                    let (mut ok, mut refused) = (0, 0);
                    for i in 0..150u32 {
                        match ledger.reserve(&who, "fast", estimate(30, 0)) {
                            Ok(r) => {
                                ledger.commit(r, &record(&who, 20 + (i * 24 + t) % 11, 0));
                                ok += 1;
                            }
                            Err(e) => {
                                assert!(e.contains("would go over its tokens-per-day budget"), "{e}");
                                refused += 1;
                            }
                        }
                    }
                    (ok, refused)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    let rows = read_usage_in(&paddock_postgres::Settings::new(&url), Some("acme")).unwrap();
    let day = rows.iter().find(|r| r.agent.is_none() && r.window == "2026-11-21").unwrap();
    let tokens = day.input_tokens + day.output_tokens;
    assert!(tokens <= 20_000, "{day:?}");
    assert!(tokens > 20_000 - 24 * 30, "what is left is less than one call per racer: {day:?}");
    assert_eq!((day.requests, day.refusals, ok + refused), (ok, refused, 24 * 150));
    assert_eq!(hosts.iter().map(|h| h.usage(Some("acme")).len()).sum::<usize>(), 3 * 6, "each host saw its own calls");
}
