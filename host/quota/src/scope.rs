//! One scope's budget state — a tenant, or one agent of a tenant — and the
//! decisions on it: does a call fit, take it, settle it, count a refusal.
//! The [`Ledger`](super::Ledger) holds both scopes of a call under one lock
//! while it decides.

use super::Budget;
use super::calendar::{Day, Month, Window};
use super::gcra::{Gcra, RateRefusal};
use paddock_gateway::Estimate;

/// The counters of one usage row: one scope in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) requests: u64,
    pub(crate) input_tokens: u64,
    pub(crate) output_tokens: u64,
    pub(crate) cost_micros: u64,
    pub(crate) refusals: u64,
}

impl Usage {
    /// One refused call.
    pub(crate) const REFUSAL: Usage =
        Usage { requests: 0, input_tokens: 0, output_tokens: 0, cost_micros: 0, refusals: 1 };

    /// Input and output tokens.
    pub(crate) fn tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    /// Adds `other`'s counters to these.
    pub(crate) fn add(&mut self, other: &Usage) {
        self.requests = self.requests.saturating_add(other.requests);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cost_micros = self.cost_micros.saturating_add(other.cost_micros);
        self.refusals = self.refusals.saturating_add(other.refusals);
    }

    /// Whether every counter is zero.
    pub(crate) fn is_zero(&self) -> bool {
        *self == Usage::default()
    }
}

/// Whose budget, for messages and config keys.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Who<'a> {
    pub(crate) tenant: &'a str,
    pub(crate) agent: Option<&'a str>,
}

impl Who<'_> {
    /// `tenant "acme"`, or `agent "planner" of tenant "acme"`.
    fn describe(&self) -> String {
        match self.agent {
            None => format!("tenant {:?}", self.tenant),
            Some(agent) => format!("agent {agent:?} of tenant {:?}", self.tenant),
        }
    }

    /// Where the budget named `name` is set in `paddock.toml`.
    fn key(&self, name: &str) -> String {
        match self.agent {
            None => format!("tenants.{}.budget.{name}", key_part(self.tenant)),
            Some(agent) => format!("tenants.{}.agent-budgets.{}.{name}", key_part(self.tenant), key_part(agent)),
        }
    }
}

/// A TOML key segment: bare when TOML allows it, quoted otherwise.
fn key_part(name: &str) -> String {
    let bare = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare { name.to_string() } else { format!("{name:?}") }
}

/// Micro-dollars as dollars: at least two decimals, more when they matter
/// (`5.00`, `4.9995`, `0.000123`).
fn usd(micros: u64) -> String {
    let text = format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000);
    let keep = text.trim_end_matches('0').len().max(text.len() - 4);
    text[..keep].to_string()
}

/// Reservations of calls that have not committed yet. They belong to the
/// scope, not to a window: a call reserved before midnight still holds its
/// amounts after it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub(crate) tokens: u64,
    pub(crate) cost_micros: u64,
}

/// The rate cells a call takes if it is admitted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Take {
    requests: Option<u64>,
    tokens: Option<u64>,
}

/// One scope: its budget, its current day and month, what calls in flight
/// hold, and its per-minute rates.
#[derive(Clone, Debug)]
pub(crate) struct Scope {
    pub(crate) budget: Budget,
    pub(crate) day: (Day, Usage),
    pub(crate) month: (Month, Usage),
    pub(crate) in_flight: InFlight,
    requests: Gcra,
    tokens: Gcra,
}

impl Scope {
    /// A scope with nothing used yet, in `day`.
    pub(crate) fn new(budget: Budget, day: Day) -> Scope {
        Scope {
            budget,
            day: (day, Usage::default()),
            month: (day.month(), Usage::default()),
            in_flight: InFlight::default(),
            requests: Gcra::default(),
            tokens: Gcra::default(),
        }
    }

    /// Moves the windows forward to `day` and its month, each starting
    /// empty when it is new. Windows never move back: when the wall clock
    /// steps back over midnight, usage keeps counting in the later day.
    pub(crate) fn roll(&mut self, day: Day) {
        if day > self.day.0 {
            self.day = (day, Usage::default());
            if day.month() > self.month.0 {
                self.month = (day.month(), Usage::default());
            }
        }
    }

    /// The windows of this scope's rows.
    pub(crate) fn windows(&self) -> [Window; 2] {
        [Window::Day(self.day.0), Window::Month(self.month.0)]
    }

    /// Whether a call estimated at `estimate` fits every budget of this
    /// scope at `now` (nanoseconds since the ledger's epoch); if not, the
    /// message says which budget and why.
    pub(crate) fn check(&self, who: Who<'_>, estimate: &Estimate, now: u64) -> Result<Take, String> {
        let tokens = u64::from(estimate.input_tokens) + u64::from(estimate.output_tokens);
        let cost = estimate.cost_micros;
        let b = &self.budget;
        let (day, month) = (Window::Day(self.day.0), Window::Month(self.month.0));
        let (today, this_month) = (&self.day.1, &self.month.1);
        let windowed = [
            ("tokens-per-day", b.tokens_per_day, day, today.tokens(), self.in_flight.tokens, tokens, false),
            ("tokens-per-month", b.tokens_per_month, month, this_month.tokens(), self.in_flight.tokens, tokens, false),
            ("usd-per-day", b.cost_micros_per_day, day, today.cost_micros, self.in_flight.cost_micros, cost, true),
            (
                "usd-per-month",
                b.cost_micros_per_month,
                month,
                this_month.cost_micros,
                self.in_flight.cost_micros,
                cost,
                true,
            ),
        ];
        for (name, limit, window, used, in_flight, this_call, money) in windowed {
            let Some(limit) = limit else { continue };
            if used.saturating_add(in_flight).saturating_add(this_call) > limit {
                let amount = |v: u64| if money { format!("${}", usd(v)) } else { v.to_string() };
                let limit = if money { usd(limit) } else { limit.to_string() };
                return Err(format!(
                    "{} would go over its {name} budget for {window} ({} = {limit}): {} used, {} reserved by calls \
                     in flight, this call may use {}",
                    who.describe(),
                    who.key(name),
                    amount(used),
                    amount(in_flight),
                    amount(this_call)
                ));
            }
        }
        let rate = |name: &str, gcra: &Gcra, limit: Option<u64>, cells: u64| {
            let Some(limit) = limit else { return Ok(None) };
            gcra.check(now, cells, limit).map(Some).map_err(|refusal| {
                let head = format!("{} would go over its {name} budget ({} = {limit})", who.describe(), who.key(name));
                match refusal {
                    RateRefusal::RetryIn(wait) => format!("{head}; retry in {} ms", wait.as_millis()),
                    RateRefusal::NeverFits => {
                        format!("{head}: this call may use {cells}, more than the budget allows in a minute")
                    }
                }
            })
        };
        let requests = rate("requests-per-minute", &self.requests, b.requests_per_minute.map(u64::from), 1)?;
        let tokens = rate("tokens-per-minute", &self.tokens, b.tokens_per_minute, tokens)?;
        Ok(Take { requests, tokens })
    }

    /// Takes what [`Scope::check`] allowed: the rate cells, and the
    /// estimate as in flight.
    pub(crate) fn take(&mut self, estimate: &Estimate, take: Take) {
        if let Some(tat) = take.requests {
            self.requests.take(tat);
        }
        if let Some(tat) = take.tokens {
            self.tokens.take(tat);
        }
        let tokens = u64::from(estimate.input_tokens) + u64::from(estimate.output_tokens);
        self.in_flight.tokens = self.in_flight.tokens.saturating_add(tokens);
        self.in_flight.cost_micros = self.in_flight.cost_micros.saturating_add(estimate.cost_micros);
    }

    /// Counts one refused call in the current day and month.
    pub(crate) fn refuse(&mut self) {
        self.day.1.add(&Usage::REFUSAL);
        self.month.1.add(&Usage::REFUSAL);
    }

    /// Replaces a call's reservation of `estimate` with what it `used`.
    pub(crate) fn settle(&mut self, estimate: &Estimate, used: &Usage) {
        let reserved = u64::from(estimate.input_tokens) + u64::from(estimate.output_tokens);
        self.in_flight.tokens = self.in_flight.tokens.saturating_sub(reserved);
        self.in_flight.cost_micros = self.in_flight.cost_micros.saturating_sub(estimate.cost_micros);
        self.day.1.add(used);
        self.month.1.add(used);
        if let Some(per_minute) = self.budget.tokens_per_minute {
            let difference = i128::from(used.tokens()) - i128::from(reserved);
            let difference = i64::try_from(difference).unwrap_or(if difference < 0 { i64::MIN } else { i64::MAX });
            self.tokens.settle(difference, per_minute);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_show_two_decimals_or_as_many_as_matter() {
        assert_eq!(usd(5_000_000), "5.00");
        assert_eq!(usd(4_999_500), "4.9995");
        assert_eq!(usd(123), "0.000123");
        assert_eq!(usd(0), "0.00");
        assert_eq!(usd(30_000), "0.03");
        assert_eq!(usd(12_345_600_000), "12345.60");
    }

    #[test]
    fn config_keys_quote_names_toml_would_not_take_bare() {
        assert_eq!(Who { tenant: "acme", agent: None }.key("tokens-per-day"), "tenants.acme.budget.tokens-per-day");
        assert_eq!(
            Who { tenant: "acme.eu", agent: Some("planner") }.key("usd-per-day"),
            r#"tenants."acme.eu".agent-budgets.planner.usd-per-day"#
        );
    }
}
