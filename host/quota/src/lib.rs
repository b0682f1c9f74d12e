//! The budget ledger behind the gateway's [`Quota`] hook: what each tenant,
//! and each agent of a tenant, has spent per UTC day and month, and the
//! budgets that refuse a call before any provider sees it.
//!
//! ```
//! use paddock_core::clock::SystemClock;
//! use paddock_gateway::{Caller, Estimate, Quota};
//! use paddock_quota::{Budget, Budgets, Ledger, LedgerStore};
//! use std::sync::Arc;
//!
//! let mut budgets = Budgets::default();
//! budgets.tenants.insert("acme".into(), Budget { tokens_per_day: Some(1000), ..Budget::default() });
//! let ledger = Ledger::open(&LedgerStore::Memory, budgets, Arc::new(SystemClock)).unwrap();
//! let caller = Caller { tenant: "acme".into(), agent: "planner".into() };
//! let big = Estimate { input_tokens: 800, output_tokens: 400, cost_micros: 0 };
//! let refusal = ledger.reserve(&caller, "fast", big).unwrap_err();
//! assert!(refusal.starts_with(r#"tenant "acme" would go over its tokens-per-day budget"#));
//! ```
//!
//! **Two scopes per call.** A call counts against its tenant and against the
//! (tenant, agent) pair; usage is recorded for both whether or not they have
//! budgets, so `paddock usage` shows all spend. `reserve` decides under one
//! lock: every budget of both scopes is checked first, and only when all
//! pass is anything taken, so a refusal takes nothing (it only counts a
//! refusal). In-flight reservations are counted against the day and month
//! budgets, so racing calls can overspend only by what their actual use
//! exceeds their estimates.
//!
//! **Why SQLite and not redb** (which the blackboard uses): a ledger file must
//! be readable by `paddock usage` and writable by several `paddock run`
//! processes at once, and redb locks its file to one process. SQLite in WAL
//! mode gives concurrent readers and short writer transactions across
//! processes. Each write adds deltas to the rows (`x = x + excluded.x`), so
//! two processes writing the same file sum correctly. Budgets, though, are
//! enforced per host process: each process checks its own counters, which
//! start from the file's rows when it opens and then see only its own calls.
//! On PostgreSQL (`shared.rs`) the day and month budgets hold across every
//! host: each call is decided against every host's usage and reservations.
//!
//! **Off the hot path.** In-process counters are authoritative; a writer
//! thread adds what calls used to the file in one transaction per batch,
//! every ~10 ms, so a `kill -9` loses at most the last ~10 ms of usage.
//! [`Ledger::flush`] waits for it; dropping the ledger flushes and stops it.

mod calendar;
mod gcra;
pub mod run;
mod scope;
mod shared;
mod store;
#[cfg(test)]
mod tests;

pub use store::{LedgerError, LedgerProblem};

use calendar::{Day, Window};
use paddock_core::clock::Clock;
use paddock_gateway::{CallRecord, Caller, Estimate, Quota, Reservation};
use parking_lot::{Mutex, RwLock};
use scope::{Scope, Usage, Who};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use store::Writer;

/// The day and month windows `at` falls in, as usage rows and refusals name
/// them (`2026-11-21`, `2026-11`; UTC).
pub fn window_names(at: std::time::SystemTime) -> (String, String) {
    let day = Day::of(at);
    (day.to_string(), day.month().to_string())
}

/// Limits of one scope; `None` = unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Budget {
    /// Input + output tokens per UTC day (`tokens-per-day`).
    pub tokens_per_day: Option<u64>,
    /// Input + output tokens per UTC month (`tokens-per-month`).
    pub tokens_per_month: Option<u64>,
    /// Micro-dollars per UTC day (`usd-per-day`).
    pub cost_micros_per_day: Option<u64>,
    /// Micro-dollars per UTC month (`usd-per-month`).
    pub cost_micros_per_month: Option<u64>,
    /// Calls per minute (`requests-per-minute`).
    pub requests_per_minute: Option<u32>,
    /// Input + output tokens per minute (`tokens-per-minute`).
    pub tokens_per_minute: Option<u64>,
}

/// Every budget: per tenant, and per agent of a tenant.
#[derive(Clone, Debug, Default)]
pub struct Budgets {
    /// A tenant's budget, over all its agents.
    pub tenants: BTreeMap<String, Budget>,
    /// One agent's budget within a tenant, keyed by (tenant, agent).
    pub agents: BTreeMap<(String, String), Budget>,
}

/// Where the ledger keeps its usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerStore {
    /// Nowhere: usage is lost when the process ends.
    Memory,
    /// An SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database every host shares, so budgets hold across hosts.
    Postgres(paddock_postgres::Settings),
}

/// One scope's usage in one window, as `paddock usage` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageRow {
    /// The tenant.
    pub tenant: String,
    /// The agent; `None` for the tenant's total.
    pub agent: Option<String>,
    /// A UTC day (`2026-11-21`) or month (`2026-11`).
    pub window: String,
    /// Calls that ran (failed ones included).
    pub requests: u64,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Cost in micro-dollars.
    pub cost_micros: u64,
    /// Calls refused by a budget.
    pub refusals: u64,
}

/// A tenant's scope and those of its agents.
struct Tenant {
    scope: Scope,
    agents: HashMap<Arc<str>, Scope>,
}

/// The budget ledger: enforces [`Budgets`] and records usage.
pub struct Ledger {
    /// Read when a scope is made; [`Ledger::set_budgets`] writes it while
    /// holding `tenants`, so no scope is made from the old budgets after.
    budgets: RwLock<Budgets>,
    clock: Arc<dyn Clock>,
    /// Rates count nanoseconds from here.
    epoch: Instant,
    tenants: Mutex<HashMap<Arc<str>, Tenant>>,
    /// `Some` for [`LedgerStore::Sqlite`].
    writer: Option<Writer>,
    /// `Some` for [`LedgerStore::Postgres`]: reservations and usage in the database.
    shared: Option<shared::SharedLedger>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("budgets", &*self.budgets.read())
            .field("durable", &self.writer.is_some())
            .field("shared", &self.shared.is_some())
            .finish()
    }
}

impl Ledger {
    /// Opens the ledger in `store`, holding the current day's and month's
    /// usage already recorded there, so budgets hold across a restart.
    pub fn open(store: &LedgerStore, budgets: Budgets, clock: Arc<dyn Clock>) -> Result<Arc<Ledger>, LedgerError> {
        let today = Day::of(clock.wall());
        let (writer, shared, rows) = match store {
            LedgerStore::Memory => (None, None, Vec::new()),
            LedgerStore::Sqlite(path) => {
                let conn = store::open(path)?;
                let rows = store::load(&conn, path, today)?;
                (Some(Writer::start(conn, path)?), None, rows)
            }
            LedgerStore::Postgres(settings) => {
                let shared = shared::SharedLedger::open(settings, true)?;
                let rows = shared.load(today)?;
                (None, Some(shared), rows)
            }
        };
        let ledger = Ledger {
            budgets: RwLock::new(budgets),
            epoch: clock.now(),
            clock,
            tenants: Mutex::new(HashMap::new()),
            writer,
            shared,
        };
        {
            let mut tenants = ledger.tenants.lock();
            for (tenant, agent, window, usage) in rows {
                let (tenant, agent) = (Arc::<str>::from(tenant), agent.map(Arc::<str>::from));
                let t = ledger.tenant(&mut tenants, &tenant, today);
                let scope = match &agent {
                    None => &mut t.scope,
                    Some(agent) => ledger.agent(&mut t.agents, &tenant, agent, today),
                };
                let row = if window == today.to_string() { &mut scope.day.1 } else { &mut scope.month.1 };
                row.add(&usage);
            }
        }
        Ok(Arc::new(ledger))
    }

    /// The usage this process's ledger holds now (only `tenant`'s when
    /// given): each scope's current day and month, as loaded at open plus
    /// this process's calls. Rows of earlier windows, and other processes'
    /// usage, are in the file: see [`read_usage`].
    pub fn usage(&self, tenant: Option<&str>) -> Vec<UsageRow> {
        let tenants = self.tenants.lock();
        let mut rows = Vec::new();
        for (name, t) in tenants.iter().filter(|(name, _)| tenant.is_none_or(|wanted| wanted == &***name)) {
            let scopes = std::iter::once((None, &t.scope)).chain(t.agents.iter().map(|(a, s)| (Some(a), s)));
            for (agent, scope) in scopes {
                let windows = [(Window::Day(scope.day.0), scope.day.1), (Window::Month(scope.month.0), scope.month.1)];
                for (window, usage) in windows.into_iter().filter(|(_, u)| !u.is_zero()) {
                    let stored = (name.to_string(), agent.map(|a| a.to_string()), window.to_string(), usage);
                    rows.push(store::usage_row(stored));
                }
            }
        }
        rows.sort_by(|a, b| {
            (&a.tenant, a.agent.as_deref().unwrap_or(""), &a.window).cmp(&(
                &b.tenant,
                b.agent.as_deref().unwrap_or(""),
                &b.window,
            ))
        });
        rows
    }

    /// Enforces `budgets` from the next call on. Usage so far and calls in
    /// flight keep counting against the new limits; a scope whose budget is
    /// gone becomes unlimited.
    pub fn set_budgets(&self, budgets: Budgets) {
        let mut tenants = self.tenants.lock();
        for (name, t) in tenants.iter_mut() {
            t.scope.budget = budgets.tenants.get(&**name).copied().unwrap_or_default();
            for (agent, scope) in &mut t.agents {
                let key = (name.to_string(), agent.to_string());
                scope.budget = budgets.agents.get(&key).copied().unwrap_or_default();
            }
        }
        *self.budgets.write() = budgets;
    }

    /// Every usage row every host has recorded in the shared database (only
    /// `tenant`'s when given); `None` unless the ledger is on PostgreSQL.
    pub fn shared_usage(&self, tenant: Option<&str>) -> Option<Result<Vec<UsageRow>, LedgerError>> {
        self.shared.as_ref().map(|shared| shared.read(tenant))
    }

    /// Returns once every commit so far is in the file (at once for a
    /// memory ledger), or with the error of a write that failed.
    pub fn flush(&self) -> Result<(), LedgerError> {
        self.writer.as_ref().map_or(Ok(()), Writer::flush)
    }

    /// The tenant named `tenant`, made on first use.
    fn tenant<'t>(&self, tenants: &'t mut HashMap<Arc<str>, Tenant>, tenant: &Arc<str>, day: Day) -> &'t mut Tenant {
        tenants.entry(tenant.clone()).or_insert_with(|| Tenant {
            scope: Scope::new(self.budgets.read().tenants.get(&**tenant).copied().unwrap_or_default(), day),
            agents: HashMap::new(),
        })
    }

    /// The scope of `agent` within `t` (the tenant named `tenant`), made on first use.
    fn agent<'t>(
        &self,
        t: &'t mut HashMap<Arc<str>, Scope>,
        tenant: &str,
        agent: &Arc<str>,
        day: Day,
    ) -> &'t mut Scope {
        t.entry(agent.clone()).or_insert_with(|| {
            let key = (tenant.to_string(), agent.to_string());
            Scope::new(self.budgets.read().agents.get(&key).copied().unwrap_or_default(), day)
        })
    }

    /// Both scopes of a call, made on first use, their windows moved forward to `day`.
    fn scopes<'t>(
        &self,
        tenants: &'t mut HashMap<Arc<str>, Tenant>,
        tenant: &Arc<str>,
        agent: &Arc<str>,
        day: Day,
    ) -> (&'t mut Scope, &'t mut Scope) {
        let Tenant { scope, agents } = self.tenant(tenants, tenant, day);
        let agent = self.agent(agents, tenant, agent, day);
        scope.roll(day);
        agent.roll(day);
        (scope, agent)
    }

    /// Queues `usage` for the file in both scopes' current windows.
    fn record(&self, tenant: &Arc<str>, agent: &Arc<str>, windows: [[Window; 2]; 2], usage: Usage) {
        let Some(writer) = &self.writer else { return };
        let [[tenant_day, tenant_month], [agent_day, agent_month]] = windows;
        let row = |agent: Option<&Arc<str>>, window| ((tenant.clone(), agent.cloned(), window), usage);
        writer.add([
            row(None, tenant_day),
            row(None, tenant_month),
            row(Some(agent), agent_day),
            row(Some(agent), agent_month),
        ]);
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.clock.now().saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Quota for Ledger {
    fn reserve(&self, caller: &Caller, _route: &str, estimate: Estimate) -> Result<Reservation, String> {
        if let Some(shared) = &self.shared {
            return self.reserve_shared(shared, caller, estimate);
        }
        let day = Day::of(self.clock.wall());
        let now = self.now_nanos();
        let mut tenants = self.tenants.lock();
        let (tenant, agent) = self.scopes(&mut tenants, &caller.tenant, &caller.agent, day);
        let tenant_who = Who { tenant: &caller.tenant, agent: None };
        let agent_who = Who { tenant: &caller.tenant, agent: Some(&caller.agent) };
        let checked =
            tenant.check(tenant_who, &estimate, now).and_then(|t| Ok((t, agent.check(agent_who, &estimate, now)?)));
        match checked {
            Ok((tenant_take, agent_take)) => {
                tenant.take(&estimate, tenant_take);
                agent.take(&estimate, agent_take);
                Ok(Reservation { estimate })
            }
            Err(message) => {
                tenant.refuse();
                agent.refuse();
                let windows = [tenant.windows(), agent.windows()];
                drop(tenants);
                self.record(&caller.tenant, &caller.agent, windows, Usage::REFUSAL);
                Err(message)
            }
        }
    }

    fn commit(&self, reservation: Reservation, record: &CallRecord) {
        let used = Usage {
            requests: 1,
            input_tokens: record.tokens.input.into(),
            output_tokens: record.tokens.output.into(),
            cost_micros: record.cost_micros,
            refusals: 0,
        };
        let day = Day::of(self.clock.wall());
        let mut tenants = self.tenants.lock();
        let (tenant, agent) = self.scopes(&mut tenants, &record.tenant, &record.agent, day);
        tenant.settle(&reservation.estimate, &used);
        agent.settle(&reservation.estimate, &used);
        let windows = [tenant.windows(), agent.windows()];
        drop(tenants);
        match &self.shared {
            Some(shared) => {
                let call = shared::Call { tenant: &record.tenant, agent: &record.agent, day };
                if let Err(e) = shared.commit(&call, reserved(&reservation.estimate), used) {
                    tracing::error!(tenant = %record.tenant, agent = %record.agent, error = %e, "usage of a call not recorded");
                }
            }
            None => self.record(&record.tenant, &record.agent, windows, used),
        }
    }
}

/// What a call reserves: its estimate's tokens and cost.
fn reserved(estimate: &Estimate) -> (u64, u64) {
    (u64::from(estimate.input_tokens) + u64::from(estimate.output_tokens), estimate.cost_micros)
}

impl Ledger {
    /// [`Quota::reserve`] against the budgets every host shares: decided in
    /// the database (see `shared.rs`), then taken in this process's scopes
    /// (their rates, and what they show). Refused when the database cannot
    /// be reached: a budget that cannot be checked is not spent.
    fn reserve_shared(
        &self,
        shared: &shared::SharedLedger,
        caller: &Caller,
        estimate: Estimate,
    ) -> Result<Reservation, String> {
        let day = Day::of(self.clock.wall());
        let now = self.now_nanos();
        let scopes = {
            let mut tenants = self.tenants.lock();
            let (tenant, agent) = self.scopes(&mut tenants, &caller.tenant, &caller.agent, day);
            [tenant.clone(), agent.clone()]
        };
        let (tenant_name, agent_name) = (caller.tenant.clone(), caller.agent.clone());
        let decide = move |tenant: &Scope, agent: &Scope| {
            let tenant_who = Who { tenant: &tenant_name, agent: None };
            let agent_who = Who { tenant: &tenant_name, agent: Some(&agent_name) };
            let tenant_take = tenant.check(tenant_who, &estimate, now)?;
            Ok((tenant_take, agent.check(agent_who, &estimate, now)?))
        };
        let call = shared::Call { tenant: &caller.tenant, agent: &caller.agent, day };
        let decision = shared
            .reserve(&call, scopes, reserved(&estimate), decide)
            .map_err(|e| format!("the budgets of tenant {:?} cannot be checked: {e}", &*caller.tenant))?;
        let mut tenants = self.tenants.lock();
        let (tenant, agent) = self.scopes(&mut tenants, &caller.tenant, &caller.agent, day);
        match decision {
            shared::Decision::Admitted((tenant_take, agent_take)) => {
                tenant.take(&estimate, tenant_take);
                agent.take(&estimate, agent_take);
                Ok(Reservation { estimate })
            }
            shared::Decision::Refused(message) => {
                tenant.refuse();
                agent.refuse();
                Err(message)
            }
        }
    }
}

/// Forgets the per-day usage rows of the ledger file at `path` for days
/// before the one `before` falls in (UTC); per-month rows stay. How many went.
pub fn forget_usage_days(path: &Path, before: std::time::SystemTime) -> Result<u64, LedgerError> {
    store::forget_days(path, Day::of(before))
}

/// [`forget_usage_days`] in the database of a [`LedgerStore::Postgres`].
pub fn forget_usage_days_in(
    database: &paddock_postgres::Settings,
    before: std::time::SystemTime,
) -> Result<u64, LedgerError> {
    shared::SharedLedger::open(database, false)?.forget_days(Day::of(before))
}

/// Every usage row of the database of a [`LedgerStore::Postgres`] (only
/// `tenant`'s when given), every host's calls counted.
pub fn read_usage_in(
    database: &paddock_postgres::Settings,
    tenant: Option<&str>,
) -> Result<Vec<UsageRow>, LedgerError> {
    shared::SharedLedger::open(database, false)?.read(tenant)
}

/// Reads the ledger file at `path` without taking it over (it works while
/// hosts are writing it): every row, or only `tenant`'s, for `paddock usage`.
pub fn read_usage(path: &Path, tenant: Option<&str>) -> Result<Vec<UsageRow>, LedgerError> {
    Ok(store::read(path, tenant)?.into_iter().map(store::usage_row).collect())
}
