//! Property tests of [`Flow::parse`]: no text makes it panic, every refusal
//! names the file and (past TOML's own) a key of the spec — `flow...` or a
//! step the spec has — and a spec it accepts is a tree every step of which
//! runs.
//!
//! The structured strategy writes specs from the real step kinds and keys,
//! with step names from a small pool so references mostly resolve.

use super::{Flow, SpecError, StepId};
use proptest::prelude::*;
use proptest::sample::select;

const ORIGIN: &str = "flows/fuzz.toml";

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

const STEPS: &[&str] = &["main", "a", "b", "c", "d"];
const KINDS: &[&str] = &["agent", "sequence", "parallel", "vote", "branch", "saga", "approval", "machine", "loop"];
const COMMON: &[&str] = &["input", "retry", "timeout", "budget", "limits", "on-error", "description"];
const SPANS: &[&str] = &["1ms", "250ms", "2s", "1h", "0s", "584942417356y", "soon"];
const CONDITIONS: &[&str] = &[
    "steps.a/ok",
    "not bb:stop",
    "steps.b/score >= 8",
    "input/verdict == \"pass\"",
    "steps.a/v != \"a==b\"",
    "steps.zz/x",
    "nope",
    "steps.a == pass",
];
const TEMPLATES: &[&str] = &["{{input}}", "Ship {{steps.a/title}}?", "plain", "", "{{ unclosed", "{{steps.nope}}"];

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A string from `pool` (its first ones good, its last ones not), or now and then any string.
fn text(pool: &'static [&'static str]) -> BoxedStrategy<String> {
    let good = &pool[..pool.len().div_ceil(2)];
    prop_oneof![
        12 => select(good).prop_map(quoted),
        4 => select(pool).prop_map(quoted),
        1 => any::<String>().prop_map(|s| quoted(&s)),
    ]
    .boxed()
}

fn int() -> BoxedStrategy<String> {
    prop_oneof![4 => 1..6i64, 1 => Just(0i64), 1 => Just(-1i64), 1 => Just(i64::MAX), 1 => any::<i64>()]
        .prop_map(|n| n.to_string())
        .boxed()
}

fn float() -> BoxedStrategy<String> {
    prop_oneof![0.01..10.0f64, any::<f64>(), Just(f64::NAN), Just(-1.0)]
        .prop_map(|f| toml::Value::Float(f).to_string())
        .boxed()
}

fn array(item: BoxedStrategy<String>, len: std::ops::Range<usize>) -> BoxedStrategy<String> {
    prop::collection::vec(item, len).prop_map(|v| format!("[{}]", v.join(", "))).boxed()
}

/// An inline table of `fields`, each present or not.
fn inline(fields: Vec<(&'static str, BoxedStrategy<String>)>) -> BoxedStrategy<String> {
    let parts: Vec<_> = fields
        .into_iter()
        .map(|(k, v)| prop::option::weighted(0.6, v.prop_map(move |v| format!("{k} = {v}"))))
        .collect();
    parts.prop_map(|p| format!("{{ {} }}", p.into_iter().flatten().collect::<Vec<_>>().join(", "))).boxed()
}

/// A table of `names` to values of `value`, inline.
fn map(names: &'static [&'static str], value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop::collection::btree_map(select(names), value, 0..3)
        .prop_map(|m| {
            format!("{{ {} }}", m.iter().map(|(k, v)| format!("{} = {v}", quoted(k))).collect::<Vec<_>>().join(", "))
        })
        .boxed()
}

fn conditions() -> BoxedStrategy<String> {
    prop_oneof![text(CONDITIONS), array(text(CONDITIONS), 0..3)].boxed()
}

/// A value of the type `key` takes (valid or not).
fn typed(key: &'static str) -> BoxedStrategy<String> {
    match key {
        "agent" => text(&["planner", "x", ""]),
        "compensate" => any::<bool>().prop_map(|b| b.to_string()).boxed(),
        "steps" => array(text(STEPS), 0..4),
        "for-each" => text(&["{{input/items}}", "steps.a/list", "item", "bad ref", "bb:"]),
        "do" | "judge" | "else" => text(STEPS),
        "join" => text(&["all", "any", "quorum", "most"]),
        "quorum" | "max-concurrency" | "max-transitions" => int(),
        "on-item-error" | "on-error" => text(&["fail", "skip", "dead_letter", "ignore"]),
        "method" => text(&["majority", "weighted", "judge", "random"]),
        "weights" => map(STEPS, int()),
        "field" => text(&["", "/verdict", "verdict"]),
        "tie" => text(&["fail", "first", "judge", "coin"]),
        "cases" => array(inline(vec![("when", conditions()), ("then", text(STEPS))]), 0..3),
        "question" => text(TEMPLATES),
        "options" => array(text(&["ship", "hold", ""]), 0..3),
        "timeout" | "backoff" | "max-backoff" => text(SPANS),
        "on-timeout" => text(&["ship", "hold", "never"]),
        "next" => map(&["ship", "hold", "other"], text(STEPS)),
        "initial" => text(&["start", "end", "none"]),
        "states" => map(&["start", "end"], state()),
        "input" => prop_oneof![text(TEMPLATES), map(&["task", "n"], text(TEMPLATES)), int()].boxed(),
        "retry" => inline(vec![("attempts", int()), ("backoff", text(SPANS)), ("max-backoff", text(SPANS))]),
        "budget" => inline(vec![("tokens", int()), ("usd", prop_oneof![float(), int()].boxed())]),
        "limits" => inline(vec![("fuel", int()), ("memory", text(&["32MiB", "0", "lots", "99999999999GiB"]))]),
        _ => text(&["a step", ""]),
    }
}

fn state() -> BoxedStrategy<String> {
    let transition = inline(vec![("when", conditions()), ("to", text(&["start", "end", "none"]))]);
    inline(vec![("step", text(STEPS)), ("next", array(transition, 0..3))])
}

/// A value for `key`: mostly of its type, sometimes of another.
fn value(key: &'static str) -> BoxedStrategy<String> {
    prop_oneof![9 => typed(key), 1 => prop_oneof![int(), float(), text(&["x"]), Just("[1]".to_string())]].boxed()
}

/// A step's table: its kind, and some of its keys.
fn step() -> BoxedStrategy<Vec<(&'static str, String)>> {
    use super::read::kind_keys;
    (select(KINDS), prop::bool::weighted(0.9))
        .prop_flat_map(|(kind, named)| {
            let common = COMMON.iter().filter(move |k| !kind_keys(kind).contains(k));
            let keys: Vec<_> = kind_keys(kind)
                .iter()
                .chain(common)
                .map(|&k| {
                    let p = if kind_keys(kind).contains(&k) { 0.7 } else { 0.15 };
                    prop::option::weighted(p, value(k).prop_map(move |v| (k, v)))
                })
                .collect();
            let kind = if named { Some(("kind", quoted(kind))) } else { None };
            (Just(kind), keys).prop_map(|(kind, keys)| kind.into_iter().chain(keys.into_iter().flatten()).collect())
        })
        .boxed()
}

/// A whole spec, and the names of its steps.
fn spec() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    let head = (
        text(&["ship", "my-flow", "bad name", ""]),
        prop::option::weighted(0.3, text(&["ships"])),
        prop::option::weighted(0.2, text(&["main", "a", "none"])),
        prop::option::weighted(0.3, typed("budget")),
    )
        .prop_map(|(name, description, start, budget)| {
            let fields = [("name", Some(name)), ("description", description), ("start", start), ("budget", budget)];
            let fields: Vec<String> =
                fields.iter().filter_map(|(k, v)| Some(format!("{k} = {}", v.as_ref()?))).collect();
            format!("{{ {} }}", fields.join(", "))
        });
    let steps =
        (step(), prop::collection::btree_map(select(&STEPS[1..]), step(), 0..4)).prop_map(|(main, mut others)| {
            others.insert("main", main);
            others
        });
    (prop::option::weighted(0.95, head), steps, prop::option::weighted(0.02, Just("[extra]\n"))).prop_map(
        |(head, steps, extra)| {
            let mut text = String::new();
            if let Some(head) = head {
                text.push_str(&format!("flow = {head}\n"));
            }
            for (name, keys) in &steps {
                text.push_str(&format!("[steps.{name}]\n"));
                for (k, v) in keys {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            text.push_str(extra.unwrap_or_default());
            (text, steps.keys().copied().collect())
        },
    )
}

/// Every step `flow` reaches from its start, each reached once through no
/// circle: the steps of a tree that runs whole.
fn reached(flow: &Flow) -> Result<Vec<bool>, String> {
    fn walk(flow: &Flow, id: StepId, path: &mut Vec<StepId>, seen: &mut Vec<bool>) -> Result<(), String> {
        if path.contains(&id) || id >= flow.steps.len() {
            return Err(format!("step {id} is in a circle or out of range"));
        }
        seen[id] = true;
        path.push(id);
        for child in flow.steps[id].kind.children() {
            walk(flow, child, path, seen)?;
        }
        path.pop();
        Ok(())
    }
    let mut seen = vec![false; flow.steps.len()];
    walk(flow, flow.start, &mut Vec::new(), &mut seen)?;
    Ok(seen)
}

/// Whether a refused spec's key is one of its own: `flow...`, `steps`, or
/// `steps.NAME...` of a step it has.
fn names_its_key(err: &SpecError, steps: &[&str]) -> bool {
    let Some(key) = err.key() else { return true };
    match key.split_once('.') {
        _ if key == "flow" || key == "steps" => true,
        Some(("flow", _)) => true,
        Some(("steps", rest)) => steps.contains(&rest.split(['.', '[']).next().unwrap_or_default()),
        _ => matches!(err, SpecError::UnknownTable { .. }),
    }
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn any_text_is_read_or_refused_naming_the_file(text in any::<String>()) {
        if let Err(err) = Flow::parse(&text, ORIGIN) {
            prop_assert_eq!(err.origin(), ORIGIN);
            prop_assert!(err.to_string().len() > ORIGIN.len() + 2, "{}", err);
        }
    }
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn a_spec_is_refused_naming_its_key_or_accepted_as_a_tree_that_runs_whole((text, steps) in spec()) {
        match Flow::parse(&text, ORIGIN) {
            Err(err) => {
                prop_assert_eq!(err.origin(), ORIGIN);
                prop_assert!(err.to_string().len() > ORIGIN.len() + 2, "{}", err);
                prop_assert!(names_its_key(&err, &steps), "{} names no key of:\n{}", err, text);
            }
            Ok(flow) => {
                let mut names: Vec<&str> = flow.steps.iter().map(|s| s.name.as_str()).collect();
                names.sort_unstable();
                prop_assert_eq!(names, steps);
                let seen = reached(&flow).map_err(TestCaseError::fail)?;
                prop_assert!(seen.iter().all(|s| *s), "a step never runs:\n{}", text);
                prop_assert_eq!(flow.source.as_str(), text.as_str());
            }
        }
    }
}
