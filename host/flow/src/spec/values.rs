//! One key's value read as what it means (a string, a duration, a retry
//! policy, a budget, ...), every error naming the key.

use super::error::{Bad, bad};
use super::kinds::{ItemPolicy, Retry};
use crate::expr::Cond;
use paddock_config::{ByteSize, Requested, Span};
use paddock_quota::run::RunLimits;
use std::time::Duration;
use toml::Value;

pub(super) fn string(v: Option<&Value>, key: &str) -> Result<Option<String>, Bad> {
    match v {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(key, format!("expected a string, got {}", other.type_str()))),
    }
}

pub(super) fn strings(v: Option<&Value>, key: &str) -> Result<Vec<String>, Bad> {
    match v {
        None => Err(bad(key, "missing")),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, x)| string(Some(x), &format!("{key}[{i}]")).map(Option::unwrap_or_default))
            .collect(),
        Some(other) => Err(bad(key, format!("expected an array of strings, got {}", other.type_str()))),
    }
}

pub(super) fn integer(v: Option<&Value>, key: &str) -> Result<Option<i64>, Bad> {
    match v {
        None => Ok(None),
        Some(Value::Integer(n)) => Ok(Some(*n)),
        Some(other) => Err(bad(key, format!("expected an integer, got {}", other.type_str()))),
    }
}

pub(super) fn boolean(v: Option<&Value>, key: &str) -> Result<Option<bool>, Bad> {
    match v {
        None => Ok(None),
        Some(Value::Boolean(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(key, format!("expected true or false, got {}", other.type_str()))),
    }
}

pub(super) fn span(v: Option<&Value>, key: &str) -> Result<Option<Duration>, Bad> {
    string(v, key)?.map(|s| Span::parse(&s).map(|s| s.0).map_err(|e| bad(key, e.to_string()))).transpose()
}

pub(super) fn policy(p: &str, key: &str) -> Result<ItemPolicy, Bad> {
    match p {
        "fail" => Ok(ItemPolicy::Fail),
        "skip" => Ok(ItemPolicy::Skip),
        "dead_letter" => Ok(ItemPolicy::DeadLetter),
        other => Err(bad(key, format!("{other:?} is not fail, skip or dead_letter"))),
    }
}

pub(super) fn conditions(v: Option<&Value>, key: &str) -> Result<Vec<Cond>, Bad> {
    let texts = match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(_)) => strings(v, key)?,
        None => return Err(bad(key, "missing")),
        Some(other) => return Err(bad(key, format!("expected a condition string, got {}", other.type_str()))),
    };
    texts.iter().map(|t| Cond::parse(t).map_err(|e| bad(key, e.to_string()))).collect()
}

fn table<'v>(v: Option<&'v Value>, key: &str, known: &[&str]) -> Result<Option<&'v toml::Table>, Bad> {
    match v {
        None => Ok(None),
        Some(Value::Table(t)) => {
            if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(bad(format!("{key}.{k}"), format!("unknown key (known: {})", known.join(", "))));
            }
            Ok(Some(t))
        }
        Some(other) => Err(bad(key, format!("expected a table, got {}", other.type_str()))),
    }
}

pub(super) fn retry(v: Option<&Value>, key: &str) -> Result<Retry, Bad> {
    let Some(t) = table(v, key, &["attempts", "backoff", "max-backoff"])? else { return Ok(Retry::default()) };
    let mut r = Retry::default();
    if let Some(n) = integer(t.get("attempts"), &format!("{key}.attempts"))? {
        if !(1..=100).contains(&n) {
            return Err(bad(format!("{key}.attempts"), format!("{n} is not between 1 and 100")));
        }
        r.attempts = n as u32;
    }
    r.backoff = span(t.get("backoff"), &format!("{key}.backoff"))?.unwrap_or(r.backoff);
    r.max_backoff = span(t.get("max-backoff"), &format!("{key}.max-backoff"))?.unwrap_or(r.max_backoff);
    Ok(r)
}

pub(super) fn budget(v: Option<&Value>, key: &str) -> Result<Option<RunLimits>, Bad> {
    let Some(t) = table(v, key, &["tokens", "usd", "tool-calls"])? else { return Ok(None) };
    let tokens = integer(t.get("tokens"), &format!("{key}.tokens"))?;
    if let Some(n) = tokens.filter(|n| *n <= 0) {
        return Err(bad(format!("{key}.tokens"), format!("{n} must be above zero")));
    }
    let cost = match t.get("usd") {
        None => None,
        Some(Value::Float(f)) if *f > 0.0 && f.is_finite() => Some((f * 1e6).round() as u64),
        Some(Value::Integer(n)) if *n > 0 => match (*n as u64).checked_mul(1_000_000) {
            Some(micros) => Some(micros),
            None => return Err(bad(format!("{key}.usd"), format!("{n} is more US dollars than a budget can hold"))),
        },
        Some(other) => {
            return Err(bad(format!("{key}.usd"), format!("{other} must be a positive amount of US dollars")));
        }
    };
    let tool_calls = integer(t.get("tool-calls"), &format!("{key}.tool-calls"))?;
    if let Some(n) = tool_calls.filter(|n| *n < 0) {
        return Err(bad(format!("{key}.tool-calls"), format!("{n} must be zero or more")));
    }
    Ok(Some(RunLimits {
        tokens: tokens.map(|n| n as u64),
        cost_micros: cost,
        tool_calls: tool_calls.map(|n| n as u64),
    }))
}

pub(super) fn limits(v: Option<&Value>, key: &str) -> Result<Requested, Bad> {
    let Some(t) = table(v, key, &["fuel", "memory"])? else { return Ok(Requested::default()) };
    let fuel = integer(t.get("fuel"), &format!("{key}.fuel"))?;
    if let Some(n) = fuel.filter(|n| *n <= 0) {
        return Err(bad(format!("{key}.fuel"), format!("{n} must be above zero")));
    }
    let memory = string(t.get("memory"), &format!("{key}.memory"))?
        .map(|m| ByteSize::parse(&m).map(|b| b.0).map_err(|e| bad(format!("{key}.memory"), e.to_string())))
        .transpose()?;
    Ok(Requested { fuel: fuel.map(|n| n as u64), memory, timeout: None })
}

#[cfg(test)]
mod tests {
    use crate::spec::Flow;

    #[test]
    fn a_budget_of_more_dollars_than_it_can_hold_is_refused_naming_the_key_not_a_panic() {
        // Found by fuzzing: usd = i64::MAX overflowed the multiplication into millionths.
        let text =
            "flow = { name = \"ship\" }\n[steps.main]\nagent = \"planner\"\nbudget = { usd = 9223372036854775807 }\n";
        assert_eq!(
            Flow::parse(text, "f.toml").unwrap_err().to_string(),
            "f.toml: steps.main.budget.usd: 9223372036854775807 is more US dollars than a budget can hold"
        );
        let flow = Flow::parse(&text.replace("9223372036854775807", "18446744073709"), "f.toml").unwrap();
        assert_eq!(flow.steps[0].budget.and_then(|b| b.cost_micros), Some(18_446_744_073_709_000_000));
    }
}
