//! The ledger on PostgreSQL, where every host's calls count against one
//! budget.
//!
//! A call's reservation is a row of the database, not of one process: each
//! host keeps, per scope, the sum of what its calls in flight reserved
//! (`ledger_reserved`), and marks itself alive every [`HEARTBEAT`]
//! (`ledger_hosts`). `reserve` takes the
//! tenant's advisory lock, reads in one statement the scope's usage and every
//! live host's reservations, decides with the same rules as in memory, and adds
//! its reservation before it lets go. `commit` swaps the reservation for what
//! the call used in one transaction. So hosts racing one budget overspend by
//! at most what their calls in flight used beyond their estimates, as threads
//! of one process do. A host that dies holds its reservations for at most
//! [`STALE`]. Per-minute rates stay per process (a GCRA cell each): they
//! shape a host's bursts, and sharing them would put a round trip on every
//! admission of tenants that have only rates.

use super::UsageRow;
use super::calendar::Day;
use super::scope::{InFlight, Scope, Usage};
use super::store::{LedgerError, StoredRow};
use paddock_postgres::{Migration, Postgres, describe};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a host marks its reservations as still held.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long after its last mark a host's reservations stop counting.
const STALE: Duration = Duration::from_secs(15);

static MIGRATIONS: &[Migration] = &[Migration {
    name: "usage and reservations",
    sql: "
        CREATE TABLE ledger_usage (
            tenant text NOT NULL,
            agent text NOT NULL,
            period text NOT NULL,
            requests bigint NOT NULL DEFAULT 0,
            input_tokens bigint NOT NULL DEFAULT 0,
            output_tokens bigint NOT NULL DEFAULT 0,
            cost_micros bigint NOT NULL DEFAULT 0,
            refusals bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (tenant, agent, period)
        );
        CREATE TABLE ledger_hosts (
            host text PRIMARY KEY,
            seen_ms bigint NOT NULL
        );
        CREATE TABLE ledger_reserved (
            host text NOT NULL,
            tenant text NOT NULL,
            agent text NOT NULL,
            tokens bigint NOT NULL DEFAULT 0,
            cost_micros bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (host, tenant, agent)
        );
        CREATE INDEX ledger_reserved_scope ON ledger_reserved (tenant, agent);
    ",
}];

const ADD: &str = "
    INSERT INTO ledger_usage (tenant, agent, period, requests, input_tokens, output_tokens, cost_micros, refusals)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (tenant, agent, period) DO UPDATE SET
        requests = ledger_usage.requests + EXCLUDED.requests,
        input_tokens = ledger_usage.input_tokens + EXCLUDED.input_tokens,
        output_tokens = ledger_usage.output_tokens + EXCLUDED.output_tokens,
        cost_micros = ledger_usage.cost_micros + EXCLUDED.cost_micros,
        refusals = ledger_usage.refusals + EXCLUDED.refusals";

/// Grows (or, negative, shrinks) this host's reservation in one scope. Every
/// transaction takes a call's two rows in the same order (the tenant's, then
/// the agent's), so two never wait on each other's.
const RESERVE: &str = "
    INSERT INTO ledger_reserved (host, tenant, agent, tokens, cost_micros) VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (host, tenant, agent) DO UPDATE SET
        tokens = greatest(ledger_reserved.tokens + EXCLUDED.tokens, 0),
        cost_micros = greatest(ledger_reserved.cost_micros + EXCLUDED.cost_micros, 0)";

/// Marks a host alive; its reservations count while it is.
const ALIVE: &str = "
    INSERT INTO ledger_hosts (host, seen_ms) VALUES ($1, $2)
    ON CONFLICT (host) DO UPDATE SET seen_ms = EXCLUDED.seen_ms";

/// One snapshot of a call's two scopes: usage in its day and month, and what
/// live hosts' calls in flight reserved.
const SCOPES: &str = "
    SELECT agent, period, input_tokens + output_tokens, cost_micros FROM ledger_usage
        WHERE tenant = $1 AND agent IN ('', $2) AND period IN ($3, $4)
    UNION ALL
    SELECT agent, '', coalesce(sum(tokens), 0)::bigint, coalesce(sum(cost_micros), 0)::bigint FROM ledger_reserved
        WHERE tenant = $1 AND agent IN ('', $2)
            AND host IN (SELECT host FROM ledger_hosts WHERE seen_ms > $5)
        GROUP BY agent";

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The ledger's tables in one database, and this process's name in them.
pub(crate) struct SharedLedger {
    pg: Postgres,
    host: Arc<str>,
    stop: Arc<AtomicBool>,
}

impl Drop for SharedLedger {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A call as the database sees it: the tenant, the agent, the day and month.
pub(crate) struct Call<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) agent: &'a str,
    pub(crate) day: Day,
}

/// What `reserve` decided with the database's numbers.
pub(crate) enum Decision<T> {
    Admitted(T),
    Refused(String),
}

impl SharedLedger {
    /// The ledger in `settings`' database: its tables made or brought up to
    /// date and, when `reserving`, this host's reservations kept alive by a
    /// heartbeat thread (a reader such as `paddock usage` reserves nothing).
    pub(crate) fn open(settings: &paddock_postgres::Settings, reserving: bool) -> Result<Self, LedgerError> {
        let pg = Postgres::shared(settings).map_err(|e| LedgerError::in_postgres(&settings.shown(), e))?;
        pg.migrate("ledger", MIGRATIONS).map_err(|e| LedgerError::in_postgres(pg.shown(), e))?;
        let host: Arc<str> = Arc::from(format!("{}#{:08x}", std::process::id(), fastrand::u32(..)));
        let stop = Arc::new(AtomicBool::new(false));
        let (beat_pg, beat_host, beat_stop) = (pg.clone(), host.clone(), stop.clone());
        if !reserving {
            return Ok(SharedLedger { pg, host, stop });
        }
        let alive = host.clone();
        pg.run(move |c| async move { c.execute(ALIVE, &[&&*alive, &now_ms()]).await.map_err(|e| describe(&e)) })
            .map_err(|e| LedgerError::in_postgres(pg.shown(), e))?;
        std::thread::Builder::new()
            .name("paddock-ledger-beat".into())
            .spawn(move || heartbeat(&beat_pg, &beat_host, &beat_stop))
            .map_err(|e| LedgerError::in_postgres(pg.shown(), format!("cannot start its heartbeat thread: {e}")))?;
        Ok(SharedLedger { pg, host, stop })
    }

    fn fail(&self, why: String) -> LedgerError {
        LedgerError::in_postgres(self.pg.shown(), why)
    }

    /// The rows of `day` and of its month.
    pub(crate) fn load(&self, day: Day) -> Result<Vec<StoredRow>, LedgerError> {
        let windows = vec![day.to_string(), day.month().to_string()];
        self.select("WHERE period = ANY($1)", windows).map_err(|e| self.fail(e))
    }

    /// Every row (only `tenant`'s when given), for `paddock usage`.
    pub(crate) fn read(&self, tenant: Option<&str>) -> Result<Vec<UsageRow>, LedgerError> {
        let rows = match tenant {
            Some(t) => self.select("WHERE tenant = $1 ORDER BY tenant, agent, period", t.to_string()),
            None => self.select("WHERE $1 = '' ORDER BY tenant, agent, period", String::new()),
        };
        Ok(rows.map_err(|e| self.fail(e))?.into_iter().map(super::store::usage_row).collect())
    }

    /// Forgets the per-day rows of days before `day`; how many went.
    pub(crate) fn forget_days(&self, day: Day) -> Result<u64, LedgerError> {
        let day = day.to_string();
        self.pg
            .run(move |c| async move {
                c.execute("DELETE FROM ledger_usage WHERE length(period) = 10 AND period < $1", &[&day])
                    .await
                    .map_err(|e| describe(&e))
            })
            .map_err(|e| self.fail(e))
    }

    fn select<P>(&self, filter: &'static str, param: P) -> Result<Vec<StoredRow>, String>
    where
        P: tokio_postgres::types::ToSql + Sync + Send + 'static,
    {
        self.pg.run(move |c| async move {
            let sql = format!(
                "SELECT tenant, agent, period, requests, input_tokens, output_tokens, cost_micros, refusals \
                 FROM ledger_usage {filter}"
            );
            let rows = c.query(&sql, &[&param]).await.map_err(|e| describe(&e))?;
            let count = |r: &tokio_postgres::Row, i| u64::try_from(r.get::<_, i64>(i)).unwrap_or(0);
            Ok(rows
                .iter()
                .map(|r| {
                    let agent: String = r.get(1);
                    let usage = Usage {
                        requests: count(r, 3),
                        input_tokens: count(r, 4),
                        output_tokens: count(r, 5),
                        cost_micros: count(r, 6),
                        refusals: count(r, 7),
                    };
                    (r.get(0), (!agent.is_empty()).then_some(agent), r.get(2), usage)
                })
                .collect())
        })
    }

    /// Decides a call against its two scopes as every host has used and
    /// reserved them: `decide` gets copies of `scopes` holding the database's
    /// numbers. Admitted, this host's reservation grows by `reserve` (tokens,
    /// cost) in both scopes; refused, both count a refusal. One transaction
    /// under the tenant's lock.
    pub(crate) fn reserve<T: Send + 'static>(
        &self,
        call: &Call<'_>,
        scopes: [Scope; 2],
        reserve: (u64, u64),
        decide: impl FnOnce(&Scope, &Scope) -> Result<T, String> + Send + 'static,
    ) -> Result<Decision<T>, LedgerError> {
        let (tenant, agent, host) = (call.tenant.to_string(), call.agent.to_string(), self.host.clone());
        let (day, month) = (call.day.to_string(), call.day.month().to_string());
        self.pg
            .run(move |mut c| async move {
                let fail = |e: tokio_postgres::Error| describe(&e);
                let tx = c.transaction().await.map_err(fail)?;
                let lock =
                    tx.prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))").await.map_err(fail)?;
                let scopes_now = tx.prepare_cached(SCOPES).await.map_err(fail)?;
                tx.execute(&lock, &[&tenant]).await.map_err(fail)?;
                let stale = now_ms() - int(STALE.as_millis() as u64);
                let rows = tx.query(&scopes_now, &[&tenant, &agent, &day, &month, &stale]).await.map_err(fail)?;
                let [mut tenant_scope, mut agent_scope] = scopes;
                for scope in [&mut tenant_scope, &mut agent_scope] {
                    scope.day.1 = Usage::default();
                    scope.month.1 = Usage::default();
                    scope.in_flight = InFlight::default();
                }
                for r in &rows {
                    let (who, period): (&str, &str) = (r.get(0), r.get(1));
                    let (tokens, cost) = (
                        u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                        u64::try_from(r.get::<_, i64>(3)).unwrap_or(0),
                    );
                    let scope = if who.is_empty() { &mut tenant_scope } else { &mut agent_scope };
                    let held = Usage { input_tokens: tokens, cost_micros: cost, ..Usage::default() };
                    match period {
                        "" => scope.in_flight = InFlight { tokens, cost_micros: cost },
                        p if p == day => scope.day.1 = held,
                        _ => scope.month.1 = held,
                    }
                }
                let decision = match decide(&tenant_scope, &agent_scope) {
                    Ok(admitted) => {
                        move_reserved(&tx, &host, &tenant, &agent, (int(reserve.0), int(reserve.1)))
                            .await
                            .map_err(fail)?;
                        Decision::Admitted(admitted)
                    }
                    Err(refusal) => {
                        add(&tx, &tenant, &agent, [&day, &month], Usage::REFUSAL).await.map_err(fail)?;
                        Decision::Refused(refusal)
                    }
                };
                tx.commit().await.map_err(fail)?;
                Ok(decision)
            })
            .map_err(|e| self.fail(e))
    }

    /// Replaces this host's reservation of `reserved` (tokens, cost) in both
    /// scopes with `used`, in one transaction.
    pub(crate) fn commit(&self, call: &Call<'_>, reserved: (u64, u64), used: Usage) -> Result<(), LedgerError> {
        let (tenant, agent, host) = (call.tenant.to_string(), call.agent.to_string(), self.host.clone());
        let (day, month) = (call.day.to_string(), call.day.month().to_string());
        self.pg
            .run(move |mut c| async move {
                let fail = |e: tokio_postgres::Error| describe(&e);
                let tx = c.transaction().await.map_err(fail)?;
                move_reserved(&tx, &host, &tenant, &agent, (-int(reserved.0), -int(reserved.1))).await.map_err(fail)?;
                add(&tx, &tenant, &agent, [&day, &month], used).await.map_err(fail)?;
                tx.commit().await.map_err(fail)
            })
            .map_err(|e| self.fail(e))
    }
}

/// Moves this host's reservation by (tokens, cost) in the tenant's scope, then its agent's.
async fn move_reserved(
    tx: &paddock_postgres::Transaction<'_>,
    host: &str,
    tenant: &str,
    agent: &str,
    (tokens, cost): (i64, i64),
) -> Result<(), tokio_postgres::Error> {
    let statement = tx.prepare_cached(RESERVE).await?;
    // Sent together, run in this order: one round trip.
    type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);
    let (tenant_params, agent_params): ([Param<'_>; 5], [Param<'_>; 5]) =
        ([&host, &tenant, &"", &tokens, &cost], [&host, &tenant, &agent, &tokens, &cost]);
    let tenant_row = tx.execute(&statement, &tenant_params);
    let agent_row = tx.execute(&statement, &agent_params);
    futures_util::try_join!(tenant_row, agent_row).map(|_| ())
}

/// Adds `usage` to the day and month rows of the tenant and of its agent.
async fn add(
    tx: &paddock_postgres::Transaction<'_>,
    tenant: &str,
    agent: &str,
    windows: [&str; 2],
    usage: Usage,
) -> Result<(), tokio_postgres::Error> {
    let statement = tx.prepare_cached(ADD).await?;
    let counts = [usage.requests, usage.input_tokens, usage.output_tokens, usage.cost_micros, usage.refusals].map(int);
    let [requests, input, output, cost, refusals] = &counts;
    // Sent together, run in this order (the tenant's rows, then the agent's): one round trip.
    type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);
    let [day, month] = &windows;
    let (all, agent): (Param<'_>, Param<'_>) = (&"", &agent);
    let params: [[Param<'_>; 8]; 4] = [
        [&tenant, all, day, requests, input, output, cost, refusals],
        [&tenant, all, month, requests, input, output, cost, refusals],
        [&tenant, agent, day, requests, input, output, cost, refusals],
        [&tenant, agent, month, requests, input, output, cost, refusals],
    ];
    let rows = params.iter().map(|p| tx.execute(&statement, p));
    futures_util::future::try_join_all(rows).await.map(|_| ())
}

/// Marks this host alive every [`HEARTBEAT`], and forgets hosts gone for an
/// hour with their reservations, until the ledger is dropped. It touches no
/// row of a live host's reservations, so it never waits on a call.
fn heartbeat(pg: &Postgres, host: &Arc<str>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(HEARTBEAT);
        let host = host.clone();
        let beat = pg.run(move |c| async move {
            let (now, fail) = (now_ms(), |e: tokio_postgres::Error| describe(&e));
            c.execute(ALIVE, &[&&*host, &now]).await.map_err(fail)?;
            let gone = now - 3_600_000;
            c.execute(
                "DELETE FROM ledger_reserved WHERE host IN (SELECT host FROM ledger_hosts WHERE seen_ms < $1)",
                &[&gone],
            )
            .await
            .map_err(fail)?;
            c.execute("DELETE FROM ledger_hosts WHERE seen_ms < $1", &[&gone]).await.map_err(fail)
        });
        if let Err(e) = beat {
            tracing::warn!(error = %e, "ledger: cannot mark this host's reservations as held");
        }
    }
}
