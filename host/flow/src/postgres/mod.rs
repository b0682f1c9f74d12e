//! The flow store on PostgreSQL, shared by every host on the database.
//!
//! The layout is the SQLite store's (`flow_` before each table): records as
//! JSON text beside the columns lists and pruning read, each record's size,
//! each run's bytes with its steps' and journals', and `flow_tenant_bytes`.
//! Where SQLite has one writer at a time, here each write locks what it
//! decides on: the run's row (every write of a run is fenced by its holder),
//! the counted tenant's bytes, a question being answered. A step's checkpoint
//! or journal is one statement that writes it, takes those locks last and is
//! also its fence and its count (`write::MOVE`), so one run's steps (a
//! fan-out's items) queue for a statement and a commit, not a whole
//! transaction; a write's records are pipelined, one round trip for all. The
//! sum of every tenant (`*`) is kept only while tenants share one bound (it is
//! locked then); otherwise nothing reads it, and a host opening the store
//! recounts it.
//!
//! Every host listens on one channel (`paddock_flows`): an answer, a cancel
//! request and a run's new events notify it in their transaction, so the
//! host waiting for them wakes at once ([`Doorbells`]). Runs' events are kept
//! here (`flow_events`, numbered per run under a lock on its row of
//! `flow_event_heads`, so they commit in order), counted in the run's bytes,
//! so a run's events stream from any host.

mod write;

use super::approvals::{apply_answer, taken};
use super::bells::Doorbells;
use super::store::{
    ALL, AnswerError, ApprovalRecord, Cutoffs, DeadLetter, Finished, FlowBounds, FlowStore, Page, Pruned, RunQuery,
    RunRecord, RunStatus, RunSummary, StepRecord, StoreError,
};
use paddock_journal::Entry;
use paddock_postgres::{Migration, Postgres, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use write::{charge, charge_held, db, fence, int, notify, size_in, uint, write_journal, write_run, write_step};

static MIGRATIONS: &[Migration] = &[
    Migration {
        name: "runs, steps, journals, dead letters, questions and bytes",
        sql: "
        CREATE TABLE flow_runs (
            id text PRIMARY KEY, created bigint NOT NULL, data text NOT NULL, tenant text NOT NULL,
            flow text NOT NULL, status text NOT NULL, updated bigint NOT NULL, error text,
            size bigint NOT NULL, bytes bigint NOT NULL, owner text NOT NULL, heartbeat bigint NOT NULL
        );
        CREATE INDEX flow_runs_by_tenant ON flow_runs (tenant, created DESC, id DESC);
        CREATE INDEX flow_runs_by_status ON flow_runs (status, created);
        CREATE INDEX flow_runs_finished ON flow_runs (updated) WHERE status <> 'running';
        CREATE TABLE flow_steps (
            run text NOT NULL, path text NOT NULL, seq bigint NOT NULL, data text NOT NULL, size bigint NOT NULL,
            PRIMARY KEY (run, path)
        );
        CREATE TABLE flow_journals (
            run text NOT NULL, path text NOT NULL, attempt bigint NOT NULL, data text NOT NULL, size bigint NOT NULL,
            PRIMARY KEY (run, path)
        );
        CREATE TABLE flow_cancels (run text PRIMARY KEY, by text NOT NULL);
        CREATE TABLE flow_dead (
            id text PRIMARY KEY, created bigint NOT NULL, data text NOT NULL, tenant text NOT NULL, size bigint NOT NULL
        );
        CREATE INDEX flow_dead_by_tenant ON flow_dead (tenant, created, id);
        CREATE INDEX flow_dead_by_age ON flow_dead (created, id);
        CREATE TABLE flow_approvals (
            id text PRIMARY KEY, created bigint NOT NULL, data text NOT NULL, tenant text NOT NULL,
            size bigint NOT NULL, answered boolean NOT NULL, settles bigint NOT NULL
        );
        CREATE INDEX flow_approvals_by_tenant ON flow_approvals (tenant, created, id);
        CREATE INDEX flow_approvals_by_age ON flow_approvals (created, id);
        CREATE INDEX flow_approvals_settled ON flow_approvals (settles);
        CREATE TABLE flow_tenant_bytes (tenant text PRIMARY KEY, bytes bigint NOT NULL);
        INSERT INTO flow_tenant_bytes (tenant, bytes) VALUES ('*', 0);
    ",
    },
    Migration {
        name: "runs' events, for every host to stream",
        sql: "
        CREATE TABLE flow_events (
            run text NOT NULL, seq bigint NOT NULL, data text NOT NULL, size bigint NOT NULL,
            PRIMARY KEY (run, seq)
        );
        CREATE TABLE flow_event_heads (run text PRIMARY KEY, next bigint NOT NULL);
    ",
    },
    Migration { name: "fan-outs' items, for every host to claim", sql: work::MIGRATION },
    Migration {
        name: "a tenant's runs of one status, newest first, from an index",
        sql: "CREATE INDEX flow_runs_by_tenant_status ON flow_runs (tenant, status, created DESC, id DESC);",
    },
];

/// The channel every host listens on: `answer ID`, `cancel RUN` and
/// `events RUN`, the keys of [`Doorbells`].
const CHANNEL: &str = "paddock_flows";

/// How many records a pass of `prune` forgets per transaction.
const PRUNE_BATCH: i64 = 500;

/// A flow store in a PostgreSQL database.
pub struct PostgresStore {
    pg: Postgres,
    bounds: FlowBounds,
    /// Rung by the notifications of every host's answers, cancels and events.
    bells: Arc<Doorbells>,
}

type Arg = Box<dyn ToSql + Send + Sync>;

fn to_json<T: Serialize>(v: &T) -> Result<String, String> {
    serde_json::to_string(v).map_err(|e| format!("flow store: {e}"))
}

fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("flow store: a damaged record: {e}"))
}

/// Runs `$body` (which may use `$tx`, the transaction) in a transaction of
/// `$store`, and commits when it answers `Ok`.
macro_rules! transact {
    ($store:expr, |$tx:ident| $body:block) => {{
        $store
            .pg
            .run(move |mut client| async move {
                let $tx = client.transaction().await.map_err(db)?;
                let answer = async { $body }.await;
                let answer = match answer {
                    Ok(answer) => answer,
                    Err(e) => return Ok(Err(e)),
                };
                $tx.commit().await.map_err(db)?;
                Ok(Ok(answer))
            })
            .and_then(|answer| answer)
    }};
}

impl PostgresStore {
    /// The store in `pg`'s database, its tables made or brought up to date
    /// and the sum of every tenant recounted, keeping at most the default
    /// [`FlowBounds`].
    pub fn open(pg: Postgres) -> Result<PostgresStore, StoreError> {
        let failed = |reason: String| StoreError::Postgres { reason };
        pg.migrate("flows", MIGRATIONS).map_err(failed)?;
        pg.run(|c| async move {
            c.execute(
                "UPDATE flow_tenant_bytes SET bytes = (SELECT coalesce(sum(bytes), 0) FROM flow_tenant_bytes
                     WHERE tenant <> $1)
                 WHERE tenant = $1",
                &[&ALL],
            )
            .await
            .map_err(db)
        })
        .map_err(|e| failed(format!("at {}: {e}", pg.shown())))?;
        let bells = Arc::new(Doorbells::default());
        let rung = bells.clone();
        pg.listen(CHANNEL, move |note| match note {
            Some(key) => rung.ring(key),
            None => rung.ring_all(),
        });
        Ok(PostgresStore { pg, bounds: FlowBounds::default(), bells })
    }

    /// The store keeping at most `bounds`.
    pub fn with_bounds(mut self, bounds: FlowBounds) -> PostgresStore {
        self.bounds = bounds;
        self
    }

    /// The first column of each row `sql` finds, read as JSON records.
    fn all<T: DeserializeOwned + Send + 'static>(&self, sql: String, args: Vec<Arg>) -> Result<Vec<T>, String> {
        self.pg.run(move |c| async move {
            let statement = c.prepare_cached(&sql).await.map_err(db)?;
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            let rows = c.query(&statement, &refs).await.map_err(db)?;
            rows.iter().map(|r| from_json(r.get::<_, &str>(0))).collect()
        })
    }

    fn one<T: DeserializeOwned + Send + 'static>(&self, sql: &'static str, id: &str) -> Result<Option<T>, String> {
        Ok(self.all(sql.to_string(), vec![Box::new(id.to_string())])?.pop())
    }

    /// Forgets up to [`PRUNE_BATCH`] of the rows `select` names (id, tenant,
    /// bytes) from `table`; how many, and their bytes.
    fn prune_batch(&self, select: String, args: Vec<Arg>, forget: Forget) -> Result<(u64, u64), String> {
        let shared = self.bounds.shared;
        transact!(self, |tx| {
            let statement = tx.prepare_cached(&select).await.map_err(db)?;
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            let rows = tx.query(&statement, &refs).await.map_err(db)?;
            let mut bytes = 0;
            for row in &rows {
                let (id, tenant, size): (&str, &str, i64) = (row.get(0), row.get(1), row.get(2));
                forget.forget(&tx, id).await?;
                charge(&tx, (None, shared), "", None, Some(tenant), (uint(size), 0)).await?;
                bytes += uint(size);
            }
            Ok((rows.len() as u64, bytes))
        })
    }

    /// Forgets every row `select` names, a batch per transaction.
    fn prune_all(&self, select: &str, cutoff: i64, forget: Forget) -> Result<(u64, u64), String> {
        let (mut count, mut bytes) = (0, 0);
        loop {
            let args: Vec<Arg> = vec![Box::new(cutoff), Box::new(PRUNE_BATCH)];
            let (n, b) = self.prune_batch(select.to_string(), args, forget)?;
            (count, bytes) = (count + n, bytes + b);
            if n < PRUNE_BATCH as u64 {
                return Ok((count, bytes));
            }
        }
    }
}

/// What `prune` forgets a row of.
#[derive(Clone, Copy)]
enum Forget {
    Run,
    Approval,
    Dead,
}

impl Forget {
    async fn forget(self, tx: &Transaction<'_>, id: &str) -> Result<(), String> {
        let statements: &[&str] = match self {
            Forget::Run => &[
                "DELETE FROM flow_steps WHERE run = $1",
                "DELETE FROM flow_journals WHERE run = $1",
                "DELETE FROM flow_cancels WHERE run = $1",
                "DELETE FROM flow_events WHERE run = $1",
                "DELETE FROM flow_event_heads WHERE run = $1",
                "DELETE FROM flow_work WHERE run = $1",
                "DELETE FROM flow_work_groups WHERE run = $1",
                "DELETE FROM flow_runs WHERE id = $1",
            ],
            Forget::Approval => &["DELETE FROM flow_approvals WHERE id = $1"],
            Forget::Dead => &["DELETE FROM flow_dead WHERE id = $1"],
        };
        for sql in statements {
            let statement = tx.prepare_cached(sql).await.map_err(db)?;
            tx.execute(&statement, &[&id]).await.map_err(db)?;
        }
        Ok(())
    }
}

/// `WHERE` clauses joined, with their numbered arguments.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    /// `clause`, whose arguments are written `{}` (numbered here in order).
    fn and(&mut self, clause: &str, args: Vec<Arg>) {
        let mut args = args.into_iter();
        let mut text = String::new();
        for (i, part) in clause.split("{}").enumerate() {
            if i > 0
                && let Some(arg) = args.next()
            {
                self.args.push(arg);
                text.push_str(&format!("${}", self.args.len()));
            }
            text.push_str(part);
        }
        self.clauses.push(text);
    }

    /// The next argument's placeholder, for what follows the clauses.
    fn then(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) }
    }

    /// The clauses of `page` over `table`, ordered oldest first by `(created, id)`;
    /// a cursor names a record of the page's own tenant only.
    fn page(page: &Page, table: &str) -> Filter {
        let mut f = Filter::default();
        if let Some(t) = &page.tenant {
            f.and("tenant = {}", vec![Box::new(t.clone())]);
        }
        if let Some(after) = &page.after {
            let clause = format!(
                "(created, id) > (SELECT created, id FROM {table} WHERE id = {{}} AND ({{}}::text IS NULL OR tenant = {{}}))"
            );
            let tenant = page.tenant.clone();
            f.and(&clause, vec![Box::new(after.clone()), Box::new(tenant.clone()), Box::new(tenant)]);
        }
        f
    }
}

fn summary(r: &tokio_postgres::Row) -> RunSummary {
    RunSummary {
        id: r.get(0),
        flow: r.get(1),
        tenant: r.get(2),
        status: RunStatus::parse(r.get(3)).unwrap_or(RunStatus::Failed),
        error: r.get(4),
        created_ms: uint(r.get(5)),
        updated_ms: uint(r.get(6)),
        bytes: uint(r.get(7)),
        owner: r.get(8),
        heartbeat_ms: uint(r.get(9)),
    }
}

#[cfg(test)]
mod tests;
mod trait_impl;
mod work;
