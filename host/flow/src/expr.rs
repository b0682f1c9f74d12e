//! References, input templates and conditions of a flow spec.
//!
//! A reference names a JSON value: `input` (the step's input), `flow` (the
//! run's input), `item`, `index`, `run`,
//! `steps.NAME` (the latest output of that step), or `bb:KEY` (a blackboard
//! value of the run's tenant, parsed as JSON when it is), each optionally
//! followed by `#` and a JSON pointer: `steps.plan#/tasks/0/title`,
//! `bb:flags/ship#/enabled`. Only after a board key, which may hold `/`, is
//! the `#` needed: `steps.plan/tasks/0/title` reads the same.
//!
//! A template is any TOML value; a string that is exactly `{{ref}}` becomes
//! the referenced value itself, and `{{ref}}` inside a longer string is
//! replaced by its text. A condition is `REF`, `not REF`, or
//! `REF OP LITERAL` with OP one of `== != < <= > >= contains` and LITERAL
//! JSON (`"pass"`, `3`, `true`, `null`).

use serde_json::Value;

#[cfg(test)]
mod fuzz;

/// Why a reference, template or condition does not parse. Each quotes the
/// text it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    /// `bb:` with nothing after it.
    #[error("`{text}`: bb: needs a key, e.g. bb:flags/ship")]
    NoBoardKey {
        /// The reference.
        text: String,
    },
    /// Not one of the roots a reference starts from.
    #[error(
        "`{text}` is not a reference (use input, flow, item, index, run, steps.NAME or bb:KEY, then an optional #/pointer)"
    )]
    NotAReference {
        /// The reference.
        text: String,
    },
    /// A pointer that does not start with `/`.
    #[error("`{text}`: a JSON pointer starts with `/`")]
    Pointer {
        /// The reference.
        text: String,
    },
    /// `{{` with no `}}` after it.
    #[error("`{text}`: `{{{{` without a closing `}}}}`")]
    Unclosed {
        /// The template string.
        text: String,
    },
    /// A comparison whose right side is not JSON.
    #[error("`{text}`: `{literal}` is not a JSON literal (strings need double quotes)")]
    NotALiteral {
        /// The condition.
        text: String,
        /// Its right side.
        literal: String,
    },
    /// A TOML value with no JSON form.
    #[error("{reason}")]
    NoJson {
        /// What the conversion said.
        reason: String,
    },
}

/// What a reference starts from.
#[derive(Clone, Debug, PartialEq)]
pub enum Root {
    /// The input of the step being run.
    Input,
    /// The run's input.
    Flow,
    /// The current item of a `for-each`.
    Item,
    /// The current item's index.
    Index,
    /// The run id.
    Run,
    /// The latest output of the named step.
    Step(String),
    /// A blackboard key of the run's tenant.
    Board(String),
}

/// A reference: a root and a JSON pointer into it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ref {
    /// What it starts from.
    pub root: Root,
    /// A JSON pointer (`""` for the whole value).
    pub pointer: String,
}

impl Ref {
    /// Parses `text`, e.g. `steps.plan/tasks`.
    pub fn parse(text: &str) -> Result<Ref, ExprError> {
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("bb:") {
            let (key, pointer) = rest.split_once('#').unwrap_or((rest, ""));
            if key.is_empty() {
                return Err(ExprError::NoBoardKey { text: text.to_string() });
            }
            check_pointer(text, pointer)?;
            return Ok(Ref { root: Root::Board(key.to_string()), pointer: pointer.to_string() });
        }
        // `steps.plan#/tasks` as after `bb:KEY`, or `steps.plan/tasks`:
        // the root ends at the first `#` or `/` (a pointer may hold either).
        let (head, pointer) = match text.find(['#', '/']) {
            Some(i) if text[i..].starts_with('#') => (&text[..i], &text[i + 1..]),
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let root = match head {
            "input" => Root::Input,
            "flow" => Root::Flow,
            "item" => Root::Item,
            "index" => Root::Index,
            "run" => Root::Run,
            _ => match head.strip_prefix("steps.") {
                Some(name) if valid_name(name) => Root::Step(name.to_string()),
                _ => {
                    return Err(ExprError::NotAReference { text: text.to_string() });
                }
            },
        };
        check_pointer(text, pointer)?;
        Ok(Ref { root, pointer: pointer.to_string() })
    }
}

fn check_pointer(text: &str, pointer: &str) -> Result<(), ExprError> {
    if pointer.is_empty() || pointer.starts_with('/') {
        Ok(())
    } else {
        Err(ExprError::Pointer { text: text.to_string() })
    }
}

/// Whether `name` is a step (or state) name: letters, digits, `-` and `_`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// A part of a string template.
#[derive(Clone, Debug, PartialEq)]
pub enum Piece {
    /// Text as written.
    Text(String),
    /// A reference, replaced by its value's text.
    Ref(Ref),
}

/// An input template.
#[derive(Clone, Debug, PartialEq)]
pub enum Template {
    /// A value with no reference in it.
    Literal(Value),
    /// Exactly one reference: the referenced value itself.
    Whole(Ref),
    /// A string with references in it.
    Text(Vec<Piece>),
    /// An array of templates.
    Array(Vec<Template>),
    /// An object of templates.
    Object(Vec<(String, Template)>),
}

impl Template {
    /// Parses a template from a TOML value.
    pub fn parse(value: &toml::Value) -> Result<Template, ExprError> {
        Ok(match value {
            toml::Value::String(s) => parse_text(s)?,
            toml::Value::Array(items) => Template::Array(items.iter().map(Template::parse).collect::<Result<_, _>>()?),
            toml::Value::Table(t) => Template::Object(
                t.iter().map(|(k, v)| Ok((k.clone(), Template::parse(v)?))).collect::<Result<_, ExprError>>()?,
            ),
            other => {
                Template::Literal(serde_json::to_value(other).map_err(|e| ExprError::NoJson { reason: e.to_string() })?)
            }
        })
    }

    /// Every reference in it.
    pub fn refs(&self) -> Vec<&Ref> {
        match self {
            Template::Literal(_) => Vec::new(),
            Template::Whole(r) => vec![r],
            Template::Text(pieces) => pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Ref(r) => Some(r),
                    Piece::Text(_) => None,
                })
                .collect(),
            Template::Array(items) => items.iter().flat_map(Template::refs).collect(),
            Template::Object(fields) => fields.iter().flat_map(|(_, t)| t.refs()).collect(),
        }
    }

    /// The value, with each reference resolved by `lookup`; fails only
    /// with the first error `lookup` gives.
    pub fn render<E>(&self, lookup: &dyn Fn(&Ref) -> Result<Value, E>) -> Result<Value, E> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Whole(r) => lookup(r)?,
            Template::Text(pieces) => {
                let mut out = String::new();
                for p in pieces {
                    match p {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Ref(r) => match lookup(r)? {
                            Value::String(s) => out.push_str(&s),
                            other => out.push_str(&other.to_string()),
                        },
                    }
                }
                Value::String(out)
            }
            Template::Array(items) => Value::Array(items.iter().map(|t| t.render(lookup)).collect::<Result<_, _>>()?),
            Template::Object(fields) => {
                Value::Object(fields.iter().map(|(k, t)| Ok((k.clone(), t.render(lookup)?))).collect::<Result<_, E>>()?)
            }
        })
    }
}

fn parse_text(s: &str) -> Result<Template, ExprError> {
    let mut pieces = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        let Some(close) = rest[open..].find("}}") else {
            return Err(ExprError::Unclosed { text: s.to_string() });
        };
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        pieces.push(Piece::Ref(Ref::parse(&rest[open + 2..open + close])?));
        rest = &rest[open + close + 2..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(match pieces.as_slice() {
        [] => Template::Literal(Value::String(String::new())),
        [Piece::Ref(r)] => Template::Whole(r.clone()),
        [Piece::Text(t)] => Template::Literal(Value::String(t.clone())),
        _ => Template::Text(pieces),
    })
}

/// Resolves a JSON pointer, `null` when nothing is there.
pub fn point(value: &Value, pointer: &str) -> Value {
    if pointer.is_empty() {
        return value.clone();
    }
    value.pointer(pointer).cloned().unwrap_or(Value::Null)
}

/// A comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`: a string contains a string, or an array holds a value.
    Contains,
}

/// The comparison operators as written, the longest first at each place.
const OPERATORS: [(&str, Op); 7] = [
    (" contains ", Op::Contains),
    ("==", Op::Eq),
    ("!=", Op::Ne),
    ("<=", Op::Le),
    (">=", Op::Ge),
    ("<", Op::Lt),
    (">", Op::Gt),
];

/// A condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// The value is truthy (not null, false, 0, "", [] or {}).
    Truthy(Ref),
    /// The value is not truthy.
    Not(Ref),
    /// The value compares with a literal.
    Compare(Ref, Op, Value),
}

impl Cond {
    /// Parses `text`, e.g. `steps.audit/verdict == "pass"`.
    pub fn parse(text: &str) -> Result<Cond, ExprError> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix("not ") {
            return Ok(Cond::Not(Ref::parse(rest)?));
        }
        // The operator is the first one, from the left, whose right side is a
        // JSON literal: a literal may hold operators (`!= "a==b"`), and so may
        // a pointer before it (`steps.a/x<y == 1`). At one place the longest
        // operator is taken, so `<=` is not read as `<`.
        let mut unread = None;
        for (at, _) in t.char_indices() {
            let Some((token, op)) = OPERATORS.iter().find(|(token, _)| t[at..].starts_with(token)) else { continue };
            let right = t[at + token.len()..].trim();
            match serde_json::from_str::<Value>(right) {
                Ok(literal) => return Ok(Cond::Compare(Ref::parse(&t[..at])?, *op, literal)),
                Err(_) => {
                    unread.get_or_insert(right);
                }
            }
        }
        if let Some(literal) = unread {
            return Err(ExprError::NotALiteral { text: text.to_string(), literal: literal.to_string() });
        }
        Ok(Cond::Truthy(Ref::parse(t)?))
    }

    /// The reference it reads.
    pub fn reference(&self) -> &Ref {
        match self {
            Cond::Truthy(r) | Cond::Not(r) | Cond::Compare(r, _, _) => r,
        }
    }

    /// Whether it holds for `value` (the referenced value).
    pub fn holds(&self, value: &Value) -> bool {
        match self {
            Cond::Truthy(_) => truthy(value),
            Cond::Not(_) => !truthy(value),
            Cond::Compare(_, op, literal) => compare(value, *op, literal),
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn compare(v: &Value, op: Op, literal: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (v, literal) {
        (Value::Number(a), Value::Number(b)) => a.as_f64().zip(b.as_f64()).and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match op {
        Op::Eq => v == literal || order == Some(Ordering::Equal),
        Op::Ne => !(v == literal || order == Some(Ordering::Equal)),
        Op::Lt => order == Some(Ordering::Less),
        Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        Op::Contains => match (v, literal) {
            (Value::String(s), Value::String(x)) => s.contains(x.as_str()),
            (Value::Array(items), x) => items.contains(x),
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pointer_follows_a_hash_after_any_root_as_after_a_board_key() {
        for (with_hash, without) in [("steps.plan#/tasks/0", "steps.plan/tasks/0"), ("flow#/topic", "flow/topic")] {
            assert_eq!(Ref::parse(with_hash).unwrap(), Ref::parse(without).unwrap());
        }
        assert_eq!(Ref::parse("input#").unwrap(), Ref::parse("input").unwrap());
        assert!(matches!(Ref::parse("flow#topic"), Err(ExprError::Pointer { .. })));
    }

    #[test]
    fn references_parse_roots_and_pointers() {
        assert_eq!(
            Ref::parse("steps.plan/tasks/0").unwrap(),
            Ref { root: Root::Step("plan".into()), pointer: "/tasks/0".into() }
        );
        assert_eq!(
            Ref::parse("bb:flags/ship#/on").unwrap(),
            Ref { root: Root::Board("flags/ship".into()), pointer: "/on".into() }
        );
        assert_eq!(
            Ref::parse("stepz.plan").unwrap_err().to_string(),
            "`stepz.plan` is not a reference (use input, flow, item, index, run, steps.NAME or bb:KEY, then an optional #/pointer)"
        );
    }

    #[test]
    fn a_whole_reference_keeps_its_json_type_and_text_references_interpolate() {
        let t = Template::parse(&toml::Value::Table(
            toml::from_str("task = \"{{item}}\"\nnote = \"goal: {{input/goal}}!\"").unwrap(),
        ))
        .unwrap();
        let out = t
            .render(&|r| {
                Ok::<_, String>(match &r.root {
                    Root::Item => json!({"id": "t1"}),
                    _ => point(&json!({"goal": "ship"}), &r.pointer),
                })
            })
            .unwrap();
        assert_eq!(out, json!({"task": {"id": "t1"}, "note": "goal: ship!"}));
    }

    #[test]
    fn conditions_compare_numbers_strings_and_membership() {
        let c = Cond::parse("steps.audit/score >= 8").unwrap();
        assert!(c.holds(&json!(8)) && !c.holds(&json!(7.5)));
        assert!(Cond::parse("steps.a/verdict == \"pass\"").unwrap().holds(&json!("pass")));
        assert!(Cond::parse("steps.a/tags contains \"x\"").unwrap().holds(&json!(["x"])));
        assert!(Cond::parse("not bb:stop").unwrap().holds(&Value::Null));
        assert_eq!(
            Cond::parse("steps.a == pass").unwrap_err().to_string(),
            "`steps.a == pass`: `pass` is not a JSON literal (strings need double quotes)"
        );
    }

    #[test]
    fn a_condition_whose_literal_holds_an_operator_compares_with_that_literal() {
        // Found by fuzzing: the operator was the first of a fixed list found anywhere, so
        // `input < [{"<=":null}]` split at the `<=` inside the literal and was refused.
        let input = Ref { root: Root::Input, pointer: String::new() };
        let step = |pointer: &str| Ref { root: Root::Step("a".into()), pointer: pointer.into() };
        for (text, want) in [
            (r#"input < [{"<=":null}]"#, Cond::Compare(input, Op::Lt, json!([{"<=": null}]))),
            (r#"steps.a/v != "a==b""#, Cond::Compare(step("/v"), Op::Ne, json!("a==b"))),
            (r#"steps.a/v > "<""#, Cond::Compare(step("/v"), Op::Gt, json!("<"))),
            (r#"steps.a/tags contains "x == y""#, Cond::Compare(step("/tags"), Op::Contains, json!("x == y"))),
            ("steps.a/x<y == 1", Cond::Compare(step("/x<y"), Op::Eq, json!(1))),
        ] {
            assert_eq!(Cond::parse(text), Ok(want), "{text}");
        }
    }
}
