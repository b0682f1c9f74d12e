//! Reading `[steps.NAME]` tables into steps: the keys each kind allows,
//! and each kind's own keys, every error naming the step and the key.

use super::check::check_tree;
use super::error::{Bad, bad};
use super::kinds::{ItemPolicy, Join, Kind, Method, State, Tie};
use super::values::{boolean, budget, conditions, integer, limits, policy, retry, span, string, strings};
use super::{Flow, Step, StepId};
use crate::expr::{Ref, Template, valid_name};
use std::collections::{BTreeMap, HashMap};
use toml::Value;

/// The `[steps]` tables of a spec being read, and each step's id.
pub(super) struct Reader<'a> {
    tables: Vec<(&'a str, &'a toml::Table)>,
    index: HashMap<&'a str, StepId>,
}

/// The keys a step of `kind` has besides the common ones.
pub(super) fn kind_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "agent" => &["agent", "compensate"],
        "sequence" | "saga" => &["steps"],
        "parallel" => &["steps", "for-each", "do", "join", "quorum", "on-item-error", "max-concurrency"],
        "vote" => &["steps", "method", "weights", "judge", "field", "tie"],
        "branch" => &["cases", "else"],
        "approval" => &["question", "options", "timeout", "on-timeout", "next"],
        "machine" => &["initial", "states", "max-transitions"],
        _ => &[],
    }
}

const COMMON_KEYS: &[&str] = &["kind", "input", "retry", "timeout", "budget", "limits", "on-error", "description"];

impl<'a> Reader<'a> {
    /// Reads a whole spec (its `[flow]` table, then every step) and checks
    /// the tree; the top-level keys are checked already.
    pub(super) fn read(doc: &'a toml::Table, source: &str) -> Result<Flow, Bad> {
        let head = match doc.get("flow") {
            Some(Value::Table(t)) => t,
            Some(_) => return Err(bad("flow", "must be a table")),
            None => return Err(bad("flow", "missing the [flow] table (with name = \"...\")")),
        };
        for key in head.keys() {
            if !["name", "description", "start", "budget"].contains(&key.as_str()) {
                return Err(bad(format!("flow.{key}"), "unknown key (known: name, description, start, budget)"));
            }
        }
        let name = string(head.get("name"), "flow.name")?.ok_or_else(|| bad("flow.name", "missing"))?;
        if !valid_name(&name) {
            return Err(bad("flow.name", format!("{name:?} must be 1 to 64 letters, digits, `-` or `_`")));
        }
        let steps = match doc.get("steps") {
            Some(Value::Table(t)) if !t.is_empty() => t,
            _ => return Err(bad("steps", "a flow needs at least one [steps.NAME] table")),
        };
        let mut reader = Reader { tables: Vec::new(), index: HashMap::new() };
        for (step, v) in steps {
            if !valid_name(step) {
                return Err(bad(format!("steps.{step}"), "a step name is 1 to 64 letters, digits, `-` or `_`"));
            }
            let Value::Table(t) = v else { return Err(bad(format!("steps.{step}"), "must be a table")) };
            reader.index.insert(step.as_str(), reader.tables.len());
            reader.tables.push((step.as_str(), t));
        }
        let start_name = string(head.get("start"), "flow.start")?.unwrap_or_else(|| "main".into());
        let start = *reader.index.get(start_name.as_str()).ok_or_else(|| {
            let steps = reader.tables.iter().map(|t| t.0).collect::<Vec<_>>().join(", ");
            bad("flow.start", format!("no step named {start_name:?} (steps: {steps})"))
        })?;
        let steps = (0..reader.tables.len()).map(|i| reader.step(i)).collect::<Result<Vec<_>, _>>()?;
        let flow = Flow {
            name,
            description: string(head.get("description"), "flow.description")?.unwrap_or_default(),
            start,
            budget: budget(head.get("budget"), "flow.budget")?,
            steps,
            source: source.to_string(),
        };
        check_tree(&flow)?;
        Ok(flow)
    }

    fn id(&self, name: &str, key: &str) -> Result<StepId, Bad> {
        self.index.get(name).copied().ok_or_else(|| bad(key, format!("no step named {name:?}")))
    }

    fn ids(&self, v: Option<&Value>, key: &str) -> Result<Vec<StepId>, Bad> {
        let names = strings(v, key)?;
        names.iter().map(|n| self.id(n, key)).collect()
    }

    fn step(&self, i: StepId) -> Result<Step, Bad> {
        let (name, t) = self.tables[i];
        let at = |k: &str| format!("steps.{name}.{k}");
        let kind_name = string(t.get("kind"), &at("kind"))?.unwrap_or_else(|| "agent".into());
        let allowed = kind_keys(&kind_name);
        if allowed.is_empty() {
            return Err(bad(
                at("kind"),
                format!(
                    "unknown kind {kind_name:?} (agent, sequence, parallel, vote, branch, saga, approval, machine)"
                ),
            ));
        }
        for key in t.keys() {
            if !COMMON_KEYS.contains(&key.as_str()) && !allowed.contains(&key.as_str()) {
                return Err(bad(
                    at(key),
                    format!(
                        "unknown key for a {kind_name} step (known: {}, {})",
                        allowed.join(", "),
                        COMMON_KEYS.join(", ")
                    ),
                ));
            }
        }
        let kind = match kind_name.as_str() {
            "agent" => Kind::Agent {
                agent: agent_name(string(t.get("agent"), &at("agent"))?, &at("agent"))?,
                compensate: boolean(t.get("compensate"), &at("compensate"))?.unwrap_or(true),
            },
            "sequence" | "saga" => {
                let steps = self.ids(t.get("steps"), &at("steps"))?;
                if steps.is_empty() {
                    return Err(bad(at("steps"), "needs at least one step"));
                }
                if kind_name == "saga" { Kind::Saga(steps) } else { Kind::Sequence(steps) }
            }
            "parallel" => self.parallel(name, t)?,
            "vote" => self.vote(name, t)?,
            "branch" => self.branch(name, t)?,
            "approval" => self.approval(name, t)?,
            _ => self.machine(name, t)?,
        };
        let on_error = match string(t.get("on-error"), &at("on-error"))? {
            None => ItemPolicy::Fail,
            Some(p) => policy(&p, &at("on-error"))?,
        };
        Ok(Step {
            name: name.to_string(),
            kind,
            input: t
                .get("input")
                .map(|v| Template::parse(v).map_err(|e| bad(at("input"), e.to_string())))
                .transpose()?,
            retry: retry(t.get("retry"), &at("retry"))?,
            timeout: span(t.get("timeout"), &at("timeout"))?,
            budget: budget(t.get("budget"), &at("budget"))?,
            limits: limits(t.get("limits"), &at("limits"))?,
            on_error,
        })
    }

    fn parallel(&self, name: &str, t: &toml::Table) -> Result<Kind, Bad> {
        let at = |k: &str| format!("steps.{name}.{k}");
        let branches = if t.contains_key("steps") { self.ids(t.get("steps"), &at("steps"))? } else { Vec::new() };
        let for_each = match (string(t.get("for-each"), &at("for-each"))?, string(t.get("do"), &at("do"))?) {
            (Some(r), Some(d)) => {
                let r = Ref::parse(r.trim_start_matches("{{").trim_end_matches("}}"))
                    .map_err(|e| bad(at("for-each"), e.to_string()))?;
                Some((r, self.id(&d, &at("do"))?))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(bad(at("do"), "for-each needs `do = \"STEP\"`, the step run per item"));
            }
            (None, Some(_)) => return Err(bad(at("for-each"), "`do` needs `for-each`, the array to go over")),
        };
        if branches.is_empty() == for_each.is_none() {
            return Err(bad(at("steps"), "a parallel step has either `steps` or `for-each` and `do`"));
        }
        let join = match string(t.get("join"), &at("join"))?.as_deref().unwrap_or("all") {
            "all" => Join::All,
            "any" => Join::Any,
            "quorum" => {
                let n = integer(t.get("quorum"), &at("quorum"))?
                    .ok_or_else(|| bad(at("quorum"), "join = \"quorum\" needs quorum = N"))?;
                if n < 1 || (for_each.is_none() && n as usize > branches.len()) {
                    return Err(bad(at("quorum"), format!("{n} is not between 1 and the number of branches")));
                }
                Join::Quorum(n as usize)
            }
            other => return Err(bad(at("join"), format!("{other:?} is not all, any or quorum"))),
        };
        let on_item_error = policy(
            &string(t.get("on-item-error"), &at("on-item-error"))?.unwrap_or_else(|| "fail".into()),
            &at("on-item-error"),
        )?;
        let max_concurrency = integer(t.get("max-concurrency"), &at("max-concurrency"))?.unwrap_or(64);
        if !(1..=10_000).contains(&max_concurrency) {
            return Err(bad(at("max-concurrency"), format!("{max_concurrency} is not between 1 and 10000")));
        }
        Ok(Kind::Parallel { branches, for_each, join, on_item_error, max_concurrency: max_concurrency as usize })
    }

    fn vote(&self, name: &str, t: &toml::Table) -> Result<Kind, Bad> {
        let at = |k: &str| format!("steps.{name}.{k}");
        let voters = self.ids(t.get("steps"), &at("steps"))?;
        if voters.len() < 2 {
            return Err(bad(at("steps"), "a vote needs at least two voters"));
        }
        let judge = string(t.get("judge"), &at("judge"))?.map(|j| self.id(&j, &at("judge"))).transpose()?;
        let method = match string(t.get("method"), &at("method"))?.as_deref().unwrap_or("majority") {
            "majority" => Method::Majority,
            "weighted" => {
                let Some(Value::Table(w)) = t.get("weights") else {
                    return Err(bad(at("weights"), "method = \"weighted\" needs weights = { STEP = N }"));
                };
                let mut weights = HashMap::new();
                for (voter, v) in w {
                    let key = format!("{}.{voter}", at("weights"));
                    if !voters.iter().any(|&id| self.tables[id].0 == voter) {
                        return Err(bad(key, format!("{voter:?} is not one of the voters")));
                    }
                    let n = integer(Some(v), &key)?.unwrap_or(1);
                    if !(0..=1_000_000).contains(&n) {
                        return Err(bad(key, format!("{n} is not between 0 and 1000000")));
                    }
                    weights.insert(voter.clone(), n as u32);
                }
                Method::Weighted(weights)
            }
            "judge" => {
                Method::Judge(judge.ok_or_else(|| bad(at("judge"), "method = \"judge\" needs judge = \"STEP\""))?)
            }
            other => return Err(bad(at("method"), format!("{other:?} is not majority, weighted or judge"))),
        };
        let tie = match string(t.get("tie"), &at("tie"))?.as_deref().unwrap_or("fail") {
            "fail" => Tie::Fail,
            "first" => Tie::First,
            "judge" if judge.is_some() => Tie::Judge,
            "judge" => return Err(bad(at("judge"), "tie = \"judge\" needs judge = \"STEP\"")),
            other => return Err(bad(at("tie"), format!("{other:?} is not fail, first or judge"))),
        };
        let field = string(t.get("field"), &at("field"))?.unwrap_or_default();
        if !field.is_empty() && !field.starts_with('/') {
            return Err(bad(at("field"), format!("{field:?} is not a JSON pointer (it starts with `/`)")));
        }
        Ok(Kind::Vote { voters, method, field, tie, judge })
    }

    fn branch(&self, name: &str, t: &toml::Table) -> Result<Kind, Bad> {
        let at = |k: &str| format!("steps.{name}.{k}");
        let Some(Value::Array(items)) = t.get("cases") else {
            return Err(bad(at("cases"), "a branch needs cases = [{ when = \"...\", then = \"STEP\" }]"));
        };
        let mut cases = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = format!("{}[{i}]", at("cases"));
            let Value::Table(c) = item else { return Err(bad(key, "must be { when = ..., then = ... }")) };
            if let Some(k) = c.keys().find(|k| *k != "when" && *k != "then") {
                return Err(bad(format!("{key}.{k}"), "unknown key (known: when, then)"));
            }
            let conds = conditions(c.get("when"), &format!("{key}.when"))?;
            let then =
                string(c.get("then"), &format!("{key}.then"))?.ok_or_else(|| bad(format!("{key}.then"), "missing"))?;
            cases.push((conds, self.id(&then, &format!("{key}.then"))?));
        }
        let otherwise = string(t.get("else"), &at("else"))?.map(|e| self.id(&e, &at("else"))).transpose()?;
        Ok(Kind::Branch { cases, otherwise })
    }

    fn approval(&self, name: &str, t: &toml::Table) -> Result<Kind, Bad> {
        let at = |k: &str| format!("steps.{name}.{k}");
        let question = t.get("question").ok_or_else(|| bad(at("question"), "missing"))?;
        let question = Template::parse(question).map_err(|e| bad(at("question"), e.to_string()))?;
        let options = strings(t.get("options"), &at("options"))?;
        if options.is_empty() {
            return Err(bad(at("options"), "an approval needs at least one option"));
        }
        let timeout = span(t.get("timeout"), &at("timeout"))?
            .ok_or_else(|| bad(at("timeout"), "an approval needs a timeout, e.g. \"1h\""))?;
        let on_timeout = string(t.get("on-timeout"), &at("on-timeout"))?;
        if let Some(o) = &on_timeout
            && !options.contains(o)
        {
            return Err(bad(at("on-timeout"), format!("{o:?} is not one of the options {options:?}")));
        }
        let mut next = BTreeMap::new();
        if let Some(v) = t.get("next") {
            let Value::Table(n) = v else { return Err(bad(at("next"), "must be { OPTION = \"STEP\" }")) };
            for (option, step) in n {
                let key = format!("{}.{option}", at("next"));
                if !options.contains(option) {
                    return Err(bad(key, format!("{option:?} is not one of the options {options:?}")));
                }
                let step = string(Some(step), &key)?.unwrap_or_default();
                next.insert(option.clone(), self.id(&step, &key)?);
            }
        }
        Ok(Kind::Approval { question, options, timeout, on_timeout, next })
    }

    fn machine(&self, name: &str, t: &toml::Table) -> Result<Kind, Bad> {
        let at = |k: &str| format!("steps.{name}.{k}");
        let Some(Value::Table(table)) = t.get("states") else {
            return Err(bad(at("states"), format!("a machine needs [steps.{name}.states.NAME] tables")));
        };
        let initial = string(t.get("initial"), &at("initial"))?.ok_or_else(|| bad(at("initial"), "missing"))?;
        // The initial state first; the others in the file's order.
        let mut names: Vec<&String> = table.keys().collect();
        let first = names
            .iter()
            .position(|n| **n == initial)
            .ok_or_else(|| bad(at("initial"), format!("no state named {initial:?}")))?;
        names.swap(0, first);
        let position = |s: &str, key: &str| {
            names.iter().position(|n| *n == s).ok_or_else(|| bad(key, format!("no state named {s:?}")))
        };
        let mut states = Vec::new();
        for state in &names {
            let key = format!("{}.{state}", at("states"));
            let Some(Value::Table(st)) = table.get(*state) else { return Err(bad(key, "must be a table")) };
            if let Some(k) = st.keys().find(|k| *k != "step" && *k != "next") {
                return Err(bad(format!("{key}.{k}"), "unknown key (known: step, next)"));
            }
            let step = string(st.get("step"), &format!("{key}.step"))?
                .map(|s| self.id(&s, &format!("{key}.step")))
                .transpose()?;
            let mut next = Vec::new();
            if let Some(v) = st.get("next") {
                let Value::Array(items) = v else {
                    return Err(bad(format!("{key}.next"), "must be [{ when = \"...\", to = \"STATE\" }]"));
                };
                for (i, item) in items.iter().enumerate() {
                    let k = format!("{key}.next[{i}]");
                    let Value::Table(tr) = item else { return Err(bad(k, "must be { when = ..., to = ... }")) };
                    if let Some(x) = tr.keys().find(|x| *x != "when" && *x != "to") {
                        return Err(bad(format!("{k}.{x}"), "unknown key (known: when, to)"));
                    }
                    let to =
                        string(tr.get("to"), &format!("{k}.to"))?.ok_or_else(|| bad(format!("{k}.to"), "missing"))?;
                    let guard = match tr.get("when") {
                        None => None,
                        Some(w) => {
                            let mut c = conditions(Some(w), &format!("{k}.when"))?;
                            if c.len() != 1 {
                                return Err(bad(format!("{k}.when"), "a transition has one condition"));
                            }
                            c.pop()
                        }
                    };
                    next.push((guard, position(&to, &format!("{k}.to"))?));
                }
            }
            states.push(State { name: state.to_string(), step, next });
        }
        let max_transitions = integer(t.get("max-transitions"), &at("max-transitions"))?
            .ok_or_else(|| bad(at("max-transitions"), "a machine needs a bound, e.g. max-transitions = 20"))?;
        if !(1..=100_000).contains(&max_transitions) {
            return Err(bad(at("max-transitions"), format!("{max_transitions} is not between 1 and 100000")));
        }
        Ok(Kind::Machine { states, max_transitions: max_transitions as u32 })
    }
}

/// A step's agent: the name of a plugin, never a path (a spec may come
/// from an API caller, and a path would load any file on the host).
fn agent_name(name: Option<String>, at: &str) -> Result<String, Bad> {
    let name = name.ok_or_else(|| bad(at, "missing"))?;
    paddock_core::names::validate_agent(&name).map_err(|why| bad(at, why.to_string()))?;
    Ok(name)
}
