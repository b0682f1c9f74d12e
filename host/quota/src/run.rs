//! Budgets of one run or one step of a flow: tokens and cost spent by every
//! LLM call made inside it, including the calls of the agents it calls.
//!
//! A budget is checked before each call and charged with what the provider
//! reported after it, so the call that crosses the limit completes and the
//! next one is refused (`budget-exceeded`, naming the budget's key). Budgets
//! nest: a step's budget also charges the budgets of the steps around it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one budget allows; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// Input plus output tokens.
    pub tokens: Option<u64>,
    /// Cost in millionths of a US dollar.
    pub cost_micros: Option<u64>,
    /// Tool calls (`tools.call`), made or refused by their server.
    pub tool_calls: Option<u64>,
}

/// A budget that is spent, so the next call is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BudgetExceeded {
    /// Its tokens are used up.
    #[error("{key} has spent its tokens ({key}.tokens = {limit}): {used} used")]
    Tokens {
        /// The key that sets the budget, e.g. `steps.plan.budget`.
        key: String,
        /// The budget's tokens.
        limit: u64,
        /// Tokens used.
        used: u64,
    },
    /// Its cost is used up.
    #[error("{key} has spent its cost ({key}.usd = {}): {} used", dollars(*.limit_micros), dollars(*.used_micros))]
    Cost {
        /// The key that sets the budget.
        key: String,
        /// The budget, in micro-dollars.
        limit_micros: u64,
        /// Micro-dollars used.
        used_micros: u64,
    },
    /// Its tool calls are used up.
    #[error("{key} has spent its tool calls ({key}.tool-calls = {limit})")]
    ToolCalls {
        /// The key that sets the budget.
        key: String,
        /// The budget's tool calls.
        limit: u64,
    },
}

/// A budget being spent.
#[derive(Debug)]
pub struct RunBudget {
    /// The key that sets it, e.g. `steps.plan.budget`.
    key: String,
    limits: RunLimits,
    tokens: AtomicU64,
    cost_micros: AtomicU64,
    tool_calls: AtomicU64,
    parent: Option<Arc<RunBudget>>,
}

impl RunBudget {
    /// A budget set by `key`, inside `parent` when there is one.
    pub fn new(key: impl Into<String>, limits: RunLimits, parent: Option<Arc<RunBudget>>) -> Arc<RunBudget> {
        Arc::new(RunBudget {
            key: key.into(),
            limits,
            tokens: AtomicU64::new(0),
            cost_micros: AtomicU64::new(0),
            tool_calls: AtomicU64::new(0),
            parent,
        })
    }

    /// Refuses a call when this budget or one around it is spent; the
    /// refusal names the budget's key, its limit and what was used.
    pub fn check(&self) -> Result<(), BudgetExceeded> {
        let tokens = self.tokens.load(Ordering::Relaxed);
        if let Some(limit) = self.limits.tokens.filter(|l| tokens >= *l) {
            return Err(BudgetExceeded::Tokens { key: self.key.clone(), limit, used: tokens });
        }
        let cost = self.cost_micros.load(Ordering::Relaxed);
        if let Some(limit) = self.limits.cost_micros.filter(|l| cost >= *l) {
            return Err(BudgetExceeded::Cost { key: self.key.clone(), limit_micros: limit, used_micros: cost });
        }
        self.parent.as_ref().map_or(Ok(()), |p| p.check())
    }

    /// Charges what a call used, here and in every budget around it.
    pub fn charge(&self, tokens: u64, cost_micros: u64) {
        self.tokens.fetch_add(tokens, Ordering::Relaxed);
        self.cost_micros.fetch_add(cost_micros, Ordering::Relaxed);
        if let Some(p) = &self.parent {
            p.charge(tokens, cost_micros);
        }
    }

    /// Counts one tool call here and in every budget around it, or refuses
    /// it, counting nowhere, when this budget or one around it has none left.
    pub fn tool_call(&self) -> Result<(), BudgetExceeded> {
        let limit = self.limits.tool_calls.unwrap_or(u64::MAX);
        if self.tool_calls.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_err()
        {
            return Err(BudgetExceeded::ToolCalls { key: self.key.clone(), limit });
        }
        let around = self.parent.as_ref().map_or(Ok(()), |p| p.tool_call());
        if around.is_err() {
            self.tool_calls.fetch_sub(1, Ordering::AcqRel);
        }
        around
    }

    /// Tool calls counted so far.
    pub fn tool_calls(&self) -> u64 {
        self.tool_calls.load(Ordering::Relaxed)
    }

    /// Tokens and cost (micro-dollars) spent so far.
    pub fn spent(&self) -> (u64, u64) {
        (self.tokens.load(Ordering::Relaxed), self.cost_micros.load(Ordering::Relaxed))
    }
}

/// `$0.012345` from micro-dollars.
pub fn dollars(micros: u64) -> String {
    format!("${}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_step_budget_refuses_naming_its_key_and_charges_the_flow_budget() {
        let flow = RunBudget::new("flow.budget", RunLimits { tokens: Some(100), ..RunLimits::default() }, None);
        let step = RunBudget::new(
            "steps.plan.budget",
            RunLimits { cost_micros: Some(1_000), ..RunLimits::default() },
            Some(flow.clone()),
        );
        assert_eq!(step.check(), Ok(()));
        step.charge(40, 1_000);
        assert_eq!(
            step.check().map_err(|e| e.to_string()),
            Err("steps.plan.budget has spent its cost (steps.plan.budget.usd = $0.001000): $0.001000 used".into())
        );
        assert_eq!(flow.spent(), (40, 1_000));
        flow.charge(60, 0);
        assert_eq!(
            flow.check().map_err(|e| e.to_string()),
            Err("flow.budget has spent its tokens (flow.budget.tokens = 100): 100 used".into())
        );
    }

    #[test]
    fn a_tool_call_counts_in_every_budget_around_it_and_a_refused_one_in_none() {
        let flow = RunBudget::new("flow.budget", RunLimits { tool_calls: Some(3), ..RunLimits::default() }, None);
        let step = RunBudget::new(
            "steps.act.budget",
            RunLimits { tool_calls: Some(2), ..RunLimits::default() },
            Some(flow.clone()),
        );
        let other = RunBudget::new("steps.other.budget", RunLimits::default(), Some(flow.clone()));
        assert_eq!((step.tool_call(), step.tool_call()), (Ok(()), Ok(())));
        assert_eq!(
            step.tool_call().map_err(|e| e.to_string()),
            Err("steps.act.budget has spent its tool calls (steps.act.budget.tool-calls = 2)".into())
        );
        assert_eq!(other.tool_call(), Ok(()));
        assert_eq!(
            other.tool_call().map_err(|e| e.to_string()),
            Err("flow.budget has spent its tool calls (flow.budget.tool-calls = 3)".into())
        );
        assert_eq!((step.tool_calls(), other.tool_calls(), flow.tool_calls()), (2, 1, 3));
    }
}
