//! The work queue on PostgreSQL: a fan-out's items in `flow_work`, its bound
//! in `flow_work_groups` (how many of its items are claimed, never more than
//! its `max-concurrency`). A claim skips rows other hosts have locked
//! (`FOR UPDATE SKIP LOCKED`), then locks each group it takes from, in
//! order, to count what it takes against the group's room.

use super::write::{db, int, notify};
use super::{PostgresStore, from_json, to_json};
use crate::store::StepRecord;
use crate::work::{ITEM_LEASE, WorkEnd, WorkItem, WorkQueue};
use std::collections::BTreeMap;

pub(super) const MIGRATION: &str = "
    CREATE TABLE flow_work (
        run text NOT NULL, path text NOT NULL, grp text NOT NULL, step text NOT NULL, input text NOT NULL,
        item text, policy text NOT NULL, state text NOT NULL, holder text, lease bigint NOT NULL DEFAULT 0,
        seq bigserial NOT NULL, step_seq bigint NOT NULL, ended text, PRIMARY KEY (run, path)
    );
    CREATE INDEX flow_work_open ON flow_work (seq) WHERE state IN ('ready', 'claimed');
    CREATE INDEX flow_work_by_group ON flow_work (run, grp, state);
    CREATE TABLE flow_work_groups (
        run text NOT NULL, grp text NOT NULL, max bigint NOT NULL, running bigint NOT NULL, PRIMARY KEY (run, grp)
    );
";

impl WorkQueue for PostgresStore {
    fn publish(&self, run: &str, group: &str, max: usize, items: &[WorkItem]) -> Result<(), String> {
        let (run, group, max) = (run.to_string(), group.to_string(), int(max as u64));
        let column = |f: fn(&WorkItem) -> Option<String>| items.iter().map(f).collect::<Vec<_>>();
        let paths = column(|i| Some(i.path.clone()));
        let steps = column(|i| Some(i.step.clone()));
        let inputs = column(|i| Some(i.input.clone()));
        let each = column(|i| i.item.clone());
        let policies = column(|i| Some(i.policy.clone()));
        let seqs: Vec<i64> = items.iter().map(|i| int(i.seq)).collect();
        transact!(self, |tx| {
            tx.execute(
                "INSERT INTO flow_work_groups (run, grp, max, running) VALUES ($1, $2, $3, 0)
                 ON CONFLICT (run, grp) DO UPDATE SET max = EXCLUDED.max",
                &[&run, &group, &max],
            )
            .await
            .map_err(db)?;
            tx.execute(
                "INSERT INTO flow_work (run, path, grp, step, input, item, policy, state, step_seq)
                 SELECT $1, t.path, $2, t.step, t.input, t.item, t.policy, 'ready', t.seq
                 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[])
                      AS t(path, step, input, item, policy, seq)
                 ON CONFLICT (run, path) DO NOTHING",
                &[&run, &group, &paths, &steps, &inputs, &each, &policies, &seqs],
            )
            .await
            .map_err(db)?;
            notify(&tx, "work").await
        })
    }

    fn claim_items(
        &self,
        holder: &str,
        now_ms: u64,
        limit: usize,
        run: Option<&str>,
        skip: &[String],
    ) -> Result<Vec<WorkItem>, String> {
        let (holder, run, skip) = (holder.to_string(), run.map(str::to_string), skip.to_vec());
        let (now, until, limit) = (int(now_ms), int(now_ms + ITEM_LEASE.as_millis() as u64), int(limit as u64));
        transact!(self, |tx| {
            // Ready items of groups with room, and items whose claim ran out; none another host is claiming.
            let found = tx
                .query(
                    "SELECT w.run, w.path, w.grp, w.state FROM flow_work w
                     WHERE (w.state = 'claimed' AND w.lease <= $1
                            OR w.state = 'ready' AND EXISTS (SELECT 1 FROM flow_work_groups g
                                WHERE g.run = w.run AND g.grp = w.grp AND g.running < g.max))
                       AND ($2::text IS NULL OR w.run = $2) AND NOT (w.run = ANY($3))
                     ORDER BY w.seq LIMIT $4 FOR UPDATE SKIP LOCKED",
                    &[&now, &run, &skip, &limit],
                )
                .await
                .map_err(db)?;
            // A reclaimed item was counted when first claimed; a ready one takes room in its group.
            let mut taken: Vec<(String, String)> = Vec::new();
            let mut ready: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
            for row in &found {
                let (run, path, group, state): (String, String, String, &str) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                match state {
                    "ready" => ready.entry((run, group)).or_default().push(path),
                    _ => taken.push((run, path)),
                }
            }
            for ((run, group), paths) in ready {
                let room = tx
                    .query_opt(
                        "SELECT max - running FROM flow_work_groups WHERE run = $1 AND grp = $2 FOR UPDATE",
                        &[&run, &group],
                    )
                    .await
                    .map_err(db)?
                    .map_or(0, |r| r.get::<_, i64>(0).max(0) as usize);
                let take = paths.len().min(room);
                if take > 0 {
                    tx.execute(
                        "UPDATE flow_work_groups SET running = running + $3 WHERE run = $1 AND grp = $2",
                        &[&run, &group, &(take as i64)],
                    )
                    .await
                    .map_err(db)?;
                }
                taken.extend(paths.into_iter().take(take).map(|p| (run.clone(), p)));
            }
            let (runs, paths): (Vec<String>, Vec<String>) = taken.into_iter().unzip();
            let rows = tx
                .query(
                    "WITH t AS (SELECT unnest($1::text[]) AS run, unnest($2::text[]) AS path),
                          c AS (UPDATE flow_work w SET state = 'claimed', holder = $3, lease = $4
                                FROM t WHERE w.run = t.run AND w.path = t.path
                                RETURNING w.run, w.path, w.grp, w.step, w.input, w.item, w.policy, w.seq, w.step_seq)
                     SELECT c.run, c.path, c.grp, c.step, c.input, c.item, c.policy, s.data, c.step_seq
                     FROM c LEFT JOIN flow_steps s ON s.run = c.run AND s.path = c.path ORDER BY c.seq",
                    &[&runs, &paths, &holder, &until],
                )
                .await
                .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let checkpoint: Option<&str> = r.get(7);
                    Ok(WorkItem {
                        run: r.get(0),
                        path: r.get(1),
                        group: r.get(2),
                        step: r.get(3),
                        input: r.get(4),
                        item: r.get(5),
                        policy: r.get(6),
                        checkpoint: checkpoint.map(from_json::<StepRecord>).transpose()?,
                        seq: super::write::uint(r.get(8)),
                    })
                })
                .collect()
        })
    }

    fn renew_item(&self, run: &str, path: &str, holder: &str, now_ms: u64) -> Result<bool, String> {
        let (run, path, holder) = (run.to_string(), path.to_string(), holder.to_string());
        let until = int(now_ms + ITEM_LEASE.as_millis() as u64);
        self.pg.run(move |c| async move {
            let statement = c
                .prepare_cached(
                    "UPDATE flow_work w SET lease = $4
                     WHERE run = $1 AND path = $2 AND holder = $3 AND state = 'claimed'
                       AND EXISTS (SELECT 1 FROM flow_runs r WHERE r.id = w.run AND r.status = 'running')",
                )
                .await
                .map_err(db)?;
            Ok(c.execute(&statement, &[&run, &path, &holder, &until]).await.map_err(db)? == 1)
        })
    }

    fn end_item(&self, run: &str, path: &str, holder: &str, end: &WorkEnd) -> Result<bool, String> {
        let (run, path, holder, ended) = (run.to_string(), path.to_string(), holder.to_string(), to_json(end)?);
        let state = if matches!(end, WorkEnd::Settled) { "done" } else { "failed" };
        transact!(self, |tx| {
            let group = tx
                .query_opt(
                    "UPDATE flow_work SET state = $4, ended = $5, holder = NULL
                     WHERE run = $1 AND path = $2 AND holder = $3 AND state = 'claimed' RETURNING grp",
                    &[&run, &path, &holder, &state, &ended],
                )
                .await
                .map_err(db)?;
            let Some(group) = group.map(|r| r.get::<_, String>(0)) else { return Ok(false) };
            let waiting = tx
                .query_one(
                    "WITH g AS (UPDATE flow_work_groups SET running = greatest(0, running - 1)
                                WHERE run = $1 AND grp = $2)
                     SELECT EXISTS (SELECT 1 FROM flow_work WHERE run = $1 AND grp = $2 AND state = 'ready')",
                    &[&run, &group],
                )
                .await
                .map_err(db)?;
            notify(&tx, &format!("work {run}")).await?;
            // Room was made in a group with items waiting: every host may claim one.
            if waiting.get::<_, bool>(0) {
                notify(&tx, "work").await?;
            }
            Ok(true)
        })
    }

    fn take_ended(&self, run: &str, group: &str) -> Result<Vec<(String, WorkEnd, Option<StepRecord>)>, String> {
        let (run, group) = (run.to_string(), group.to_string());
        transact!(self, |tx| {
            let rows = tx
                .query(
                    "WITH d AS (DELETE FROM flow_work WHERE run = $1 AND grp = $2 AND state IN ('done', 'failed')
                                RETURNING path, ended)
                     SELECT d.path, d.ended, s.data FROM d LEFT JOIN flow_steps s ON s.run = $1 AND s.path = d.path",
                    &[&run, &group],
                )
                .await
                .map_err(db)?;
            rows.iter()
                .map(|r| {
                    let ended: Option<&str> = r.get(1);
                    let end = from_json::<WorkEnd>(ended.unwrap_or("\"Settled\""))?;
                    let checkpoint: Option<&str> = r.get(2);
                    Ok((r.get(0), end, checkpoint.map(from_json::<StepRecord>).transpose()?))
                })
                .collect()
        })
    }

    fn withdraw(&self, run: &str, group: &str) -> Result<(), String> {
        let (run, group) = (run.to_string(), group.to_string());
        transact!(self, |tx| {
            tx.execute("DELETE FROM flow_work WHERE run = $1 AND grp = $2", &[&run, &group]).await.map_err(db)?;
            tx.execute("DELETE FROM flow_work_groups WHERE run = $1 AND grp = $2", &[&run, &group])
                .await
                .map_err(db)
                .map(drop)
        })
    }
}
