//! Property tests of references, templates and conditions: no text makes
//! them panic, every refusal quotes what it refused, and what is written
//! from a parsed value reads back as that value.

use super::{Cond, ExprError, Op, Piece, Ref, Root, Template};
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// The text a reference is written as.
fn written(r: &Ref) -> String {
    let head = match &r.root {
        Root::Input => "input".to_string(),
        Root::Flow => "flow".to_string(),
        Root::Item => "item".to_string(),
        Root::Index => "index".to_string(),
        Root::Run => "run".to_string(),
        Root::Step(name) => format!("steps.{name}"),
        Root::Board(key) if r.pointer.is_empty() => return format!("bb:{key}"),
        Root::Board(key) => return format!("bb:{key}#{}", r.pointer),
    };
    format!("{head}{}", r.pointer)
}

fn op_written(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        Op::Contains => "contains",
    }
}

/// A reference whose text holds no operator and no `{{`/`}}`: one a
/// condition or a template can hold unambiguously.
fn plain_ref() -> impl Strategy<Value = Ref> {
    let root = prop_oneof![
        Just(Root::Input),
        Just(Root::Flow),
        Just(Root::Item),
        Just(Root::Index),
        Just(Root::Run),
        "[A-Za-z0-9_-]{1,64}".prop_map(Root::Step),
        "[A-Za-z0-9_./:-]{1,24}".prop_map(Root::Board),
    ];
    let pointer = prop_oneof![Just(String::new()), "(/[A-Za-z0-9_~.-]{0,6}){1,4}"];
    (root, pointer).prop_map(|(root, pointer)| Ref { root, pointer })
}

/// A reference with any characters its syntax allows in a board key and a pointer.
fn any_ref() -> impl Strategy<Value = Ref> {
    let root = prop_oneof![
        Just(Root::Input),
        Just(Root::Item),
        "[A-Za-z0-9_-]{1,64}".prop_map(Root::Step),
        any::<String>().prop_filter("a key with no #", |k| !k.is_empty() && !k.contains('#')).prop_map(Root::Board),
    ];
    let pointer = prop_oneof![Just(String::new()), any::<String>().prop_map(|p| format!("/{p}"))];
    (root, pointer)
        .prop_map(|(root, pointer)| Ref { root, pointer })
        .prop_filter("text that trimming leaves alone", |r| written(r).trim() == written(r))
}

/// A JSON value, with strings that look like operators among the others.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        select(&[0.5, -1.25, 1e10, 3.0][..]).prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        select(&["a==b", "x < y", ">", "<", "!=", ">=", " contains ", "not x"][..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn cond() -> impl Strategy<Value = Cond> {
    let op = select(&[Op::Eq, Op::Ne, Op::Lt, Op::Le, Op::Gt, Op::Ge, Op::Contains][..]);
    prop_oneof![
        plain_ref().prop_map(Cond::Truthy),
        plain_ref().prop_map(Cond::Not),
        (plain_ref(), op, json()).prop_map(|(r, op, literal)| Cond::Compare(r, op, literal)),
    ]
}

fn cond_written(c: &Cond) -> String {
    match c {
        Cond::Truthy(r) => written(r),
        Cond::Not(r) => format!("not {}", written(r)),
        Cond::Compare(r, op, literal) => format!("{} {} {literal}", written(r), op_written(*op)),
    }
}

/// Text with no reference in it: no `{{`, and no `{` to make one with the next piece.
fn plain_text() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("text without a reference", |t| !t.contains("{{") && !t.ends_with('{'))
}

/// The text each reference is replaced by, in `render`.
fn shown(r: &Ref) -> String {
    format!("<{}>", written(r))
}

/// Whether a refusal quotes the text it is about (`NoJson` quotes TOML's reason instead).
fn quotes(err: &ExprError, text: &str) -> bool {
    let message = err.to_string();
    !message.is_empty() && (matches!(err, ExprError::NoJson { .. }) || message.contains(text.trim()))
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn any_reference_text_is_read_or_refused_quoting_it(text in any::<String>()) {
        if let Err(err) = Ref::parse(&text) {
            prop_assert!(quotes(&err, &text), "{}", err);
        }
    }

    #[test]
    fn any_condition_text_is_read_or_refused_with_a_message(text in any::<String>()) {
        if let Err(err) = Cond::parse(&text) {
            prop_assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn any_template_string_is_read_or_refused_quoting_it(text in any::<String>()) {
        match Template::parse(&toml::Value::String(text.clone())) {
            Err(err @ ExprError::Unclosed { .. }) => prop_assert!(quotes(&err, &text), "{}", err),
            Err(err) => prop_assert!(!err.to_string().is_empty()),
            Ok(t) => {
                let out = t.render(&|r| Ok::<_, ()>(Value::String(shown(r))));
                prop_assert!(out.is_ok());
            }
        }
    }

    #[test]
    fn a_written_reference_reads_back_as_itself(r in any_ref()) {
        prop_assert_eq!(Ref::parse(&written(&r)), Ok(r));
    }

    #[test]
    fn a_written_condition_reads_back_as_itself(c in cond()) {
        let text = cond_written(&c);
        prop_assert_eq!(Cond::parse(&text), Ok(c), "{}", text);
    }

    #[test]
    fn a_template_renders_its_text_with_each_reference_replaced(
        pieces in prop::collection::vec(prop_oneof![plain_text().prop_map(Piece::Text), plain_ref().prop_map(Piece::Ref)], 0..6),
    ) {
        let mut text = String::new();
        let mut want = String::new();
        for p in &pieces {
            match p {
                Piece::Text(t) => {
                    text.push_str(t);
                    want.push_str(t);
                }
                Piece::Ref(r) => {
                    text.push_str(&format!("{{{{{}}}}}", written(r)));
                    want.push_str(&shown(r));
                }
            }
        }
        let template = Template::parse(&toml::Value::String(text.clone())).map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        let refs: Vec<Ref> = pieces.iter().filter_map(|p| if let Piece::Ref(r) = p { Some(r.clone()) } else { None }).collect();
        prop_assert_eq!(template.refs().into_iter().cloned().collect::<Vec<_>>(), refs);
        prop_assert_eq!(template.render(&|r| Ok::<_, ()>(Value::String(shown(r)))), Ok(Value::String(want)));
    }
}
