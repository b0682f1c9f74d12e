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
}

/// A budget being spent.
#[derive(Debug)]
pub struct RunBudget {
    /// The key that sets it, e.g. `steps.plan.budget`.
    key: String,
    limits: RunLimits,
    tokens: AtomicU64,
    cost_micros: AtomicU64,
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
        let flow = RunBudget::new("flow.budget", RunLimits { tokens: Some(100), cost_micros: None }, None);
        let step = RunBudget::new(
            "steps.plan.budget",
            RunLimits { tokens: None, cost_micros: Some(1_000) },
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
}
