//! [`FlowStore`] on PostgreSQL: each call one transaction, or one read.

use super::*;
use crate::hub::KEEP_EVENTS;
use futures_util::future::BoxFuture;

impl FlowStore for PostgresStore {
    fn bounds(&self) -> FlowBounds {
        self.bounds
    }

    fn put_run(&self, run: &RunRecord) -> Result<(), String> {
        let (run, data, bounds) = (run.clone(), to_json(run)?, self.bounds);
        transact!(self, |tx| {
            fence(&tx, &run.id, &run.owner).await?;
            // Only an output can make a record large; one without is always kept.
            let checked = run.output.is_some().then_some(&bounds);
            write_run(&tx, (checked, bounds.shared), &run, &data).await
        })
    }

    fn add_run(&self, run: &RunRecord) -> Result<bool, String> {
        let (run, data, bounds) = (run.clone(), to_json(run)?, self.bounds);
        transact!(self, |tx| {
            // The row is made (and locked) first, so two hosts adding one id cannot both succeed.
            let made = tx
                .execute(
                    "INSERT INTO flow_runs (id, created, data, tenant, flow, status, updated, size, bytes, owner, heartbeat)
                     VALUES ($1, 0, '{}', $2, '', 'running', 0, 0, 0, '', 0) ON CONFLICT (id) DO NOTHING",
                    &[&run.id, &run.tenant],
                )
                .await
                .map_err(db)?;
            if made == 0 {
                return Ok(false);
            }
            write_run(&tx, (Some(&bounds), bounds.shared), &run, &data).await.map(|()| true)
        })
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, String> {
        self.one("SELECT data FROM flow_runs WHERE id = $1", id)
    }

    fn request_cancel(&self, run: &str, by: &str) -> Result<(), String> {
        let (run, by) = (run.to_string(), by.to_string());
        transact!(self, |tx| {
            tx.execute(
                "INSERT INTO flow_cancels (run, by) VALUES ($1, $2) ON CONFLICT (run) DO UPDATE SET by = EXCLUDED.by",
                &[&run, &by],
            )
            .await
            .map_err(db)?;
            notify(&tx, &format!("cancel {run}")).await
        })
    }

    fn cancel_request(&self, run: &str) -> Result<Option<String>, String> {
        let run = run.to_string();
        self.pg.run(move |c| async move {
            let statement = c.prepare_cached("SELECT by FROM flow_cancels WHERE run = $1").await.map_err(db)?;
            Ok(c.query_opt(&statement, &[&run]).await.map_err(db)?.map(|r| r.get(0)))
        })
    }

    fn claim(&self, run: &RunRecord, owner: &str, heartbeat_ms: u64) -> Result<bool, String> {
        let (run, data, bounds, owner) = (run.clone(), to_json(run)?, self.bounds, owner.to_string());
        transact!(self, |tx| {
            // The lease as it was seen: held by `owner`, renewed at `heartbeat_ms`, and still so under the lock.
            let held = tx
                .query_opt(
                    "SELECT 1 FROM flow_runs WHERE id = $1 AND owner = $2 AND heartbeat = $3 FOR UPDATE",
                    &[&run.id, &owner, &int(heartbeat_ms)],
                )
                .await
                .map_err(db)?;
            if held.is_none() {
                return Ok(false);
            }
            let checked = run.output.is_some().then_some(&bounds);
            write_run(&tx, (checked, bounds.shared), &run, &data).await.map(|()| true)
        })
    }

    fn renew(&self, run: &str, holder: &str, heartbeat_ms: u64) -> Result<bool, String> {
        let (run, holder) = (run.to_string(), holder.to_string());
        transact!(self, |tx| {
            let changed = tx
                .execute(
                    "UPDATE flow_runs SET heartbeat = $3,
                         data = jsonb_set(data::jsonb, '{heartbeat_ms}', to_jsonb($3::bigint))::text
                     WHERE id = $1 AND owner = $2 AND status = 'running'",
                    &[&run, &holder, &int(heartbeat_ms)],
                )
                .await
                .map_err(db)?;
            Ok(changed == 1)
        })
    }

    fn runs(&self, q: &RunQuery) -> Result<Vec<RunSummary>, String> {
        let mut f = Filter::default();
        if let Some(t) = &q.tenant {
            f.and("tenant = {}", vec![Box::new(t.clone())]);
        }
        if let Some(flow) = &q.flow {
            f.and("flow = {}", vec![Box::new(flow.clone())]);
        }
        if let Some(s) = q.status {
            f.and("status = {}", vec![Box::new(s.word().to_string())]);
        }
        if let Some(after) = &q.after {
            let clause = "(created, id) < (SELECT created, id FROM flow_runs WHERE id = {} AND ({}::text IS NULL OR tenant = {}))";
            f.and(clause, vec![Box::new(after.clone()), Box::new(q.tenant.clone()), Box::new(q.tenant.clone())]);
        }
        let limit = f.then(Box::new(int(q.limit as u64)));
        let sql = format!(
            "SELECT id, flow, tenant, status, error, created, updated, bytes, owner, heartbeat FROM flow_runs {} \
             ORDER BY created DESC, id DESC LIMIT {limit}",
            f.sql()
        );
        let args = f.args;
        self.pg.run(move |c| async move {
            let statement = c.prepare_cached(&sql).await.map_err(db)?;
            let refs: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| &**a as &(dyn ToSql + Sync)).collect();
            Ok(c.query(&statement, &refs).await.map_err(db)?.iter().map(summary).collect())
        })
    }

    fn running(&self) -> Result<Vec<RunRecord>, String> {
        self.all("SELECT data FROM flow_runs WHERE status = 'running' ORDER BY created, id".into(), Vec::new())
    }

    fn put_step(&self, run: &str, holder: &str, step: &StepRecord) -> Result<(), String> {
        let (run, holder, step, data, bounds) =
            (run.to_string(), holder.to_string(), step.clone(), to_json(step)?, self.bounds);
        transact!(self, |tx| { write_step(&tx, (&bounds, bounds.shared), (&run, &holder), &step, &data).await })
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, String> {
        self.all("SELECT data FROM flow_steps WHERE run = $1 ORDER BY seq".into(), vec![Box::new(run.to_string())])
    }

    fn put_journal(&self, run: &str, holder: &str, step: &str, attempt: u32, entries: &[Entry]) -> Result<(), String> {
        let (run, holder, step, data, bounds) =
            (run.to_string(), holder.to_string(), step.to_string(), to_json(&entries)?, self.bounds);
        transact!(self, |tx| {
            write_journal(&tx, (&bounds, bounds.shared), (&run, &holder, &step, attempt), &data).await
        })
    }

    fn finish_step(&self, run: &str, holder: &str, step: &StepRecord, journal: &[Entry]) -> Result<(), String> {
        let (run, holder, step, bounds) = (run.to_string(), holder.to_string(), step.clone(), self.bounds);
        let (data, journal) = (to_json(&step)?, to_json(&journal)?);
        let done = Done(vec![(step, data, journal)]);
        transact!(self, |tx| { done.write(&tx, (&bounds, bounds.shared), (&run, &holder), &[]).await })
    }

    fn put_steps(&self, run: &str, holder: &str, done: &[Finished], next: &[StepRecord]) -> Result<(), String> {
        let done = Done::of(done)?;
        let next: Vec<(StepRecord, String)> =
            next.iter().map(|s| to_json(s).map(|data| (s.clone(), data))).collect::<Result<_, _>>()?;
        let (run, holder, bounds) = (run.to_string(), holder.to_string(), self.bounds);
        transact!(self, |tx| { done.write(&tx, (&bounds, bounds.shared), (&run, &holder), &next).await })
    }

    fn end_run(&self, run: &RunRecord, done: &[Finished]) -> Result<(), String> {
        let done = Done::of(done)?;
        let (run, data, bounds) = (run.clone(), to_json(run)?, self.bounds);
        transact!(self, |tx| {
            fence(&tx, &run.id, &run.owner).await?;
            done.write(&tx, (&bounds, bounds.shared), (&run.id, &run.owner), &[]).await?;
            let checked = run.output.is_some().then_some(&bounds);
            write_run(&tx, (checked, bounds.shared), &run, &data).await
        })
    }

    fn journal(&self, run: &str, step: &str) -> Result<Option<(u32, Vec<Entry>)>, String> {
        let (run, step) = (run.to_string(), step.to_string());
        self.pg.run(move |c| async move {
            let statement = c
                .prepare_cached("SELECT attempt, data FROM flow_journals WHERE run = $1 AND path = $2")
                .await
                .map_err(db)?;
            let row = c.query_opt(&statement, &[&run, &step]).await.map_err(db)?;
            row.map(|r| {
                let attempt = u32::try_from(r.get::<_, i64>(0)).unwrap_or(u32::MAX);
                Ok((attempt, from_json(r.get::<_, &str>(1))?))
            })
            .transpose()
        })
    }

    fn put_dead(&self, dead: &DeadLetter) -> Result<(), String> {
        let (dead, data, bounds) = (dead.clone(), to_json(dead)?, self.bounds);
        transact!(self, |tx| {
            let old = size_in(&tx, "SELECT size FROM flow_dead WHERE id = $1 FOR UPDATE", &[&dead.id]).await?;
            let what = format!("dead letter {}", dead.id);
            let size = data.len() as u64;
            charge(&tx, (Some(&bounds), bounds.shared), &what, None, Some(&dead.tenant), (old, size)).await?;
            tx.execute(
                "INSERT INTO flow_dead (id, created, data, tenant, size) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET created = EXCLUDED.created, data = EXCLUDED.data,
                     tenant = EXCLUDED.tenant, size = EXCLUDED.size",
                &[&dead.id, &int(dead.created_ms), &data, &dead.tenant, &int(size)],
            )
            .await
            .map_err(db)
            .map(drop)
        })
    }

    fn dead_letters(&self, page: &Page) -> Result<Vec<DeadLetter>, String> {
        let mut f = Filter::page(page, "flow_dead");
        let limit = f.then(Box::new(int(page.limit as u64)));
        self.all(format!("SELECT data FROM flow_dead {} ORDER BY created, id LIMIT {limit}", f.sql()), f.args)
    }

    fn dead(&self, id: &str) -> Result<Option<DeadLetter>, String> {
        self.one("SELECT data FROM flow_dead WHERE id = $1", id)
    }

    fn drop_dead(&self, id: &str) -> Result<bool, String> {
        let select = "SELECT id, tenant, size FROM flow_dead WHERE id = $1 FOR UPDATE".to_string();
        self.prune_batch(select, vec![Box::new(id.to_string())], Forget::Dead).map(|(n, _)| n > 0)
    }

    fn add_approval(&self, a: &ApprovalRecord) -> Result<(), String> {
        let (a, data, bounds) = (a.clone(), to_json(a)?, self.bounds);
        transact!(self, |tx| {
            let size = data.len() as u64;
            let made = tx
                .execute(
                    "INSERT INTO flow_approvals (id, created, data, tenant, size, answered, settles)
                     VALUES ($1, $2, $3, $4, $5, false, $6) ON CONFLICT (id) DO NOTHING",
                    &[&a.id, &int(a.created_ms), &data, &a.tenant, &int(size), &int(a.deadline_ms)],
                )
                .await
                .map_err(db)?;
            if made == 0 {
                return Err(taken(&a.id));
            }
            let what = format!("approval {}", a.id);
            charge(&tx, (Some(&bounds), bounds.shared), &what, None, Some(&a.tenant), (0, size)).await
        })
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, String> {
        self.one("SELECT data FROM flow_approvals WHERE id = $1", id)
    }

    fn approvals(&self, page: &Page, waiting_at: Option<u64>) -> Result<Vec<ApprovalRecord>, String> {
        let mut f = Filter::page(page, "flow_approvals");
        if let Some(now) = waiting_at {
            f.and("NOT answered AND settles > {}", vec![Box::new(int(now))]);
        }
        let limit = f.then(Box::new(int(page.limit as u64)));
        self.all(format!("SELECT data FROM flow_approvals {} ORDER BY created, id LIMIT {limit}", f.sql()), f.args)
    }

    fn answer(&self, id: &str, option: &str, by: &str, now_ms: u64) -> Result<ApprovalRecord, AnswerError> {
        let (id, option, by, shared) = (id.to_string(), option.to_string(), by.to_string(), self.bounds.shared);
        let answered = self.pg.run(move |mut client| async move {
            let tx = client.transaction().await.map_err(db)?;
            // Locked: two people answering at once cannot both win.
            let row =
                tx.query_opt("SELECT data FROM flow_approvals WHERE id = $1 FOR UPDATE", &[&id]).await.map_err(db)?;
            let Some(row) = row else { return Ok(Err(AnswerError::NoApproval(id))) };
            let text: String = row.get(0);
            let mut a: ApprovalRecord = from_json(&text)?;
            if let Err(e) = apply_answer(&mut a, &option, &by, now_ms) {
                return Ok(Err(e));
            }
            let data = to_json(&a)?;
            let sizes = (text.len() as u64, data.len() as u64);
            charge(&tx, (None, shared), "", None, Some(&a.tenant), sizes).await?;
            tx.execute(
                "UPDATE flow_approvals SET data = $2, size = $3, answered = true, settles = $4 WHERE id = $1",
                &[&id, &data, &int(data.len() as u64), &int(now_ms)],
            )
            .await
            .map_err(db)?;
            notify(&tx, &format!("answer {id}")).await?;
            tx.commit().await.map_err(db)?;
            Ok(Ok(a))
        });
        answered.map_err(AnswerError::Store)?
    }

    fn tenant_bytes(&self, tenant: &str) -> Result<u64, String> {
        let tenant = tenant.to_string();
        self.pg.run(move |c| async move {
            let statement =
                c.prepare_cached("SELECT bytes FROM flow_tenant_bytes WHERE tenant = $1").await.map_err(db)?;
            Ok(c.query_opt(&statement, &[&tenant]).await.map_err(db)?.map_or(0, |r| uint(r.get(0))))
        })
    }

    fn prune(&self, cut: &Cutoffs) -> Result<Pruned, String> {
        let ms = |t: u64| int(t);
        let old_runs =
            "SELECT id, tenant, bytes FROM flow_runs WHERE status <> 'running' AND updated < $1 LIMIT $2 FOR UPDATE";
        let (runs, run_bytes) = self.prune_all(old_runs, ms(cut.runs_before_ms), Forget::Run)?;
        let extra_runs = "SELECT id, tenant, bytes FROM (SELECT id, tenant, bytes,
                row_number() OVER (PARTITION BY tenant ORDER BY created DESC, id DESC) AS n
                FROM flow_runs WHERE status <> 'running') r WHERE n > $1 LIMIT $2";
        let (more, more_bytes) = self.prune_all(extra_runs, ms(cut.runs_per_tenant), Forget::Run)?;
        let settled = "SELECT id, tenant, size FROM flow_approvals WHERE settles < $1 LIMIT $2 FOR UPDATE";
        let (approvals, approval_bytes) = self.prune_all(settled, ms(cut.approvals_before_ms), Forget::Approval)?;
        let old_dead = "SELECT id, tenant, size FROM flow_dead WHERE created < $1 LIMIT $2 FOR UPDATE";
        let (dead_letters, dead_bytes) = self.prune_all(old_dead, ms(cut.dead_before_ms), Forget::Dead)?;
        Ok(Pruned {
            runs: runs + more,
            approvals,
            dead_letters,
            bytes: run_bytes + more_bytes + approval_bytes + dead_bytes,
        })
    }

    fn bells(&self) -> Option<Arc<Doorbells>> {
        Some(self.bells.clone())
    }

    fn keeps_events(&self) -> bool {
        true
    }

    fn add_events(&self, run: &str, holder: &str, events: &[String]) -> Result<(), String> {
        let (run, holder, events, bounds) = (run.to_string(), holder.to_string(), events.to_vec(), self.bounds);
        let bytes: u64 = events.iter().map(|e| e.len() as u64).sum();
        transact!(self, |tx| {
            let count = events.len() as i64;
            // The run's head row, locked until the commit, so one run's events commit in their numbers' order.
            let head = tx
                .prepare_cached(
                    "INSERT INTO flow_event_heads (run, next) VALUES ($1, $2)
                     ON CONFLICT (run) DO UPDATE SET next = flow_event_heads.next + EXCLUDED.next
                     RETURNING next - $2",
                )
                .await
                .map_err(db)?;
            let first: i64 = tx.query_one(&head, &[&run, &count]).await.map_err(db)?.get(0);
            let add = tx
                .prepare_cached(
                    "INSERT INTO flow_events (run, seq, data, size)
                     SELECT $1, $2 + t.n - 1, t.e, octet_length(t.e) FROM unnest($3::text[]) WITH ORDINALITY AS t(e, n)",
                )
                .await
                .map_err(db)?;
            tx.execute(&add, &[&run, &first, &events]).await.map_err(db)?;
            let keep_from = first + count - KEEP_EVENTS as i64;
            let dropped = if keep_from > 0 {
                let forget = "WITH d AS (DELETE FROM flow_events WHERE run = $1 AND seq < $2 RETURNING size)
                              SELECT coalesce(sum(size), 0)::bigint FROM d";
                size_in(&tx, forget, &[&run, &keep_from]).await?
            } else {
                0
            };
            charge_held(&tx, (&bounds, bounds.shared), "the run's events", (&run, &holder), (dropped, bytes)).await?;
            notify(&tx, &format!("events {run}")).await
        })
    }

    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<(u64, String)>, String> {
        let run = run.to_string();
        self.pg.run(move |c| async move {
            let statement = c
                .prepare_cached("SELECT seq, data FROM flow_events WHERE run = $1 AND seq >= $2 ORDER BY seq LIMIT $3")
                .await
                .map_err(db)?;
            let rows = c.query(&statement, &[&run, &int(from), &int(limit as u64)]).await.map_err(db)?;
            Ok(rows.iter().map(|r| (uint(r.get(0)), r.get(1))).collect())
        })
    }
}

/// Finished attempts with their checkpoints and journals as JSON, to write
/// in a transaction.
struct Done(Vec<(StepRecord, String, String)>);

impl Done {
    fn of(done: &[Finished]) -> Result<Done, String> {
        done.iter()
            .map(|(step, journal)| Ok((step.clone(), to_json(step)?, to_json(journal)?)))
            .collect::<Result<_, String>>()
            .map(Done)
    }

    /// Writes each one's journal, then its checkpoint, then the checkpoints
    /// `next` (with their JSON). Each record is one statement, and all are
    /// sent at once (pipelined): the server runs them in that order, each
    /// counted with what those before it added, and the first refusal in
    /// that order is the answer (the transaction is then rolled back). So a
    /// step's end with the next one's start, or a fan-out's batch of
    /// items, waits for one round trip, not one a record.
    async fn write(
        &self,
        tx: &Transaction<'_>,
        bound: (&FlowBounds, bool),
        (run, holder): (&str, &str),
        next: &[(StepRecord, String)],
    ) -> Result<(), String> {
        let mut writes: Vec<BoxFuture<'_, Result<(), String>>> = Vec::new();
        for (step, data, journal) in &self.0 {
            writes.push(Box::pin(write_journal(tx, bound, (run, holder, &step.path, step.attempt), journal)));
            writes.push(Box::pin(write_step(tx, bound, (run, holder), step, data)));
        }
        for (step, data) in next {
            writes.push(Box::pin(write_step(tx, bound, (run, holder), step, data)));
        }
        futures_util::future::join_all(writes).await.into_iter().collect()
    }
}
