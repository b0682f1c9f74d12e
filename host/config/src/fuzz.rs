//! Property tests of [`Settings::parse`]: no text makes it panic, every
//! refusal names the file, and a refusal past TOML's own names a key of a
//! section the file has (so the operator knows which line to fix).
//!
//! The structured strategy writes `paddock.toml` files from the real
//! sections and keys, each value mostly of its key's type (sizes, spans,
//! names, enumerations, nested tables) and sometimes of any type.

use crate::{ConfigError, Settings};
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::BTreeMap;
use std::path::Path;

const FILE: &str = "conf/paddock.toml";

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn parse(text: &str) -> Result<Settings, ConfigError> {
    Settings::parse(text, Path::new(FILE))
}

/// The sections with fixed names, and their keys.
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "host",
        &[
            "plugins",
            "data",
            "ledger",
            "flows",
            "code-cache",
            "plugin-state",
            "default-tenant",
            "secrets",
            "log-format",
        ],
    ),
    (
        "limits",
        &[
            "fuel",
            "memory",
            "timeout",
            "max-arg-bytes",
            "max-log-bytes",
            "max-log-total-bytes",
            "max-key-bytes",
            "max-value-bytes",
            "max-output-bytes",
            "max-io-bytes",
            "max-call-depth",
            "max-agent-calls",
            "log-bytes-per-second",
            "max-run-bytes",
            "max-flow-bytes",
            "max-question-bytes",
        ],
    ),
    ("ceiling", &["fuel", "memory", "timeout"]),
    (
        "engine",
        &[
            "pooling",
            "max-instances",
            "max-tables",
            "max-table-elements",
            "max-core-instances",
            "epoch-tick",
            "cpu-slots",
            "keep-resident",
            "memory-reservation",
        ],
    ),
    ("blackboard", &["store", "path", "max-keys", "max-bytes", "history"]),
    (
        "serve",
        &[
            "listen",
            "auth",
            "tls",
            "max-connections",
            "max-connections-per-source",
            "header-timeout",
            "max-header-bytes",
            "requests-per-key",
            "requests-per-tenant",
            "concurrent-per-key",
            "concurrent-per-tenant",
            "drain",
            "debounce",
            "flows",
            "mcp-flows",
            "threads",
        ],
    ),
    ("telemetry", &["endpoint", "protocol", "service-name", "sample-ratio"]),
    ("retention", &["runs", "runs-per-tenant", "approvals", "dead-letters", "usage", "interval"]),
];

/// The sections of `[SECTION.NAME]` tables: their keys, and the names tried.
const NAMED: &[(&str, &[&str], &[&str])] = &[
    ("agents", &["dirs", "settings"], &["planner", "reader", "a b"]),
    (
        "tenants",
        &["agents", "routes", "blackboard", "approvals", "dirs", "ceiling", "budget", "agent-budgets"],
        &["acme", "default", "b", "A B"],
    ),
    (
        "routes",
        &[
            "strategy",
            "targets",
            "max-attempts",
            "timeout",
            "backoff-base",
            "backoff-max",
            "affinity",
            "rate-limit-wait",
            "retries",
            "attempt-timeout",
            "first-token-timeout",
            "idle-timeout",
            "throttle-below",
            "breaker",
        ],
        &["fast", "smart", "r"],
    ),
    (
        "providers",
        &[
            "kind",
            "base-url",
            "api-key-env",
            "api-key-secret",
            "key-header",
            "query",
            "max-tokens-field",
            "seed",
            "latency",
            "chunk-delay",
            "reply-tokens",
            "failure-rate",
            "failures",
        ],
        &["simulated", "p", "q"],
    ),
    ("prices", &["input", "output"], &["sim-fast", "p/m", "m"]),
    (
        "mcp",
        &[
            "command",
            "env",
            "pass-env",
            "url",
            "headers",
            "header-env",
            "timeout",
            "connect-timeout",
            "max-result-bytes",
        ],
        &["github", "fetch", "Bad Name"],
    ),
];

const TRIGGER_KEYS: &[&str] = &["name", "tenant", "prefix", "agent", "concurrency", "deletes", "input"];
const DIR_KEYS: &[&str] = &["host", "guest", "write"];
const TLS_KEYS: &[&str] = &["cert", "key"];
const TENANT_BOARD_KEYS: &[&str] = &["read", "write", "max-keys", "max-bytes"];
const BUDGET_KEYS: &[&str] = &[
    "tokens-per-day",
    "tokens-per-month",
    "usd-per-day",
    "usd-per-month",
    "requests-per-minute",
    "tokens-per-minute",
    "max-concurrent",
    "fuel-per-minute",
];
const TARGET_KEYS: &[&str] = &["provider", "model", "retries", "attempt-timeout", "idle-timeout", "breaker"];
const BREAKER_KEYS: &[&str] =
    &["failures", "failure-rate", "window", "min-calls", "open-for", "probes", "close-after", "probe-timeout"];

/// Keys a table cannot do without; the others are left out more often than not.
const REQUIRED: &[(&str, &str)] = &[
    ("routes", "targets"),
    ("target", "provider"),
    ("target", "model"),
    ("providers", "kind"),
    ("prices", "input"),
    ("prices", "output"),
    ("triggers", "prefix"),
    ("triggers", "agent"),
    ("dirs", "host"),
    ("dirs", "guest"),
    ("tls", "cert"),
    ("tls", "key"),
];

/// Each kind of value as pools: `good` ones its key takes, `odd` ones of the
/// right type that validation may refuse (zero, too big, a word it does not know).
struct Pool {
    good: &'static [&'static str],
    odd: &'static [&'static str],
}

const WORDS: &[&str] = &["", "a", "x y", "fule", "default", "durable", "64MiB", "30s", "/data", "*", "é", "\u{0}"];
const SIZES: Pool =
    Pool { good: &["64MiB", "1 GiB", "512", "8KiB", "32KiB", "128MiB"], odd: &["0", "2GiB", "5GiB", "1KiB"] };
const SPANS: Pool = Pool { good: &["1ms", "250ms", "2s", "30s", "5m", "1h"], odd: &["0s", "10m", "2h", "400d"] };
const TENANTS: Pool = Pool { good: &["acme", "default", "b"], odd: &["A B", "", "paddock.system"] };
const AGENTS: Pool = Pool { good: &["planner", "reader", "x"], odd: &["2x", "Bad", "*"] };
const ROUTES: Pool = Pool { good: &["fast", "smart", "r"], odd: &["nope", "*"] };
const PREFIXES: Pool = Pool { good: &["", "tasks/", "a/b/", "ü/"], odd: &["bad\u{1}", "\n"] };
const PATHS: Pool = Pool { good: &["data", "/data", "plugins", "../x"], odd: &[""] };

/// A TOML key as written: bare when it can be, quoted otherwise.
fn key(k: &str) -> String {
    if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        k.to_string()
    } else {
        toml::Value::String(k.to_string()).to_string()
    }
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn inline_table(fields: &[(String, String)]) -> String {
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("{} = {v}", key(k))).collect();
    format!("{{ {} }}", body.join(", "))
}

/// A string from `pool`: mostly a good one.
fn text(pool: Pool) -> BoxedStrategy<String> {
    prop_oneof![4 => select(pool.good).prop_map(quoted), 1 => select(pool.odd).prop_map(quoted)].boxed()
}

/// A string of an enumeration: one of `words`, or one it does not have.
fn word(words: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![6 => select(words).prop_map(quoted), 1 => Just(quoted("other"))].boxed()
}

fn uint() -> BoxedStrategy<String> {
    prop_oneof![
        8 => 1..100i64,
        4 => 100..2_000_000i64,
        1 => Just(0i64),
        1 => Just(i64::from(u32::MAX)),
    ]
    .prop_map(|n| n.to_string())
    .boxed()
}

fn float() -> BoxedStrategy<String> {
    prop_oneof![
        8 => 0.0..1.0f64,
        1 => prop_oneof![Just(f64::NAN), Just(f64::INFINITY), Just(-1.0), Just(1.5), Just(1e300), any::<f64>()],
    ]
    .prop_map(|f| toml::Value::Float(f).to_string())
    .boxed()
}

fn boolean() -> BoxedStrategy<String> {
    any::<bool>().prop_map(|b| b.to_string()).boxed()
}

fn array(item: BoxedStrategy<String>, len: std::ops::Range<usize>) -> BoxedStrategy<String> {
    prop::collection::vec(item, len).prop_map(|v| format!("[{}]", v.join(", "))).boxed()
}

fn inline(fields: BoxedStrategy<Vec<(String, String)>>) -> BoxedStrategy<String> {
    fields.prop_map(|f| inline_table(&f)).boxed()
}

/// A table of `names` to values of `value`, inline.
fn map(names: BoxedStrategy<String>, value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop::collection::btree_map(names, value, 0..3)
        .prop_map(|m| inline_table(&m.into_iter().collect::<Vec<_>>()))
        .boxed()
}

/// A value of any type: scalars, arrays of them, a small table; any string.
fn any_value() -> BoxedStrategy<String> {
    let scalar = prop_oneof![
        prop_oneof![Just(-1i64), Just(i64::from(u32::MAX) + 1), Just(i64::MAX), any::<i64>()]
            .prop_map(|n| n.to_string()),
        float(),
        boolean(),
        select(WORDS).prop_map(quoted),
        any::<String>().prop_map(|s| quoted(&s)),
    ]
    .boxed();
    let words = select(WORDS).prop_map(String::from).boxed();
    prop_oneof![4 => scalar.clone(), 1 => array(scalar.clone(), 0..3), 1 => map(words, scalar)].boxed()
}

/// Some of `keys` (the required ones always), each with a value, and now
/// and then a key no section has.
fn fields(ctx: &'static str, keys: &'static [&'static str]) -> BoxedStrategy<Vec<(String, String)>> {
    let parts: Vec<_> = keys
        .iter()
        .map(|&k| {
            let p = if REQUIRED.contains(&(ctx, k)) { 0.999 } else { 0.25 };
            prop::option::weighted(p, value(ctx, k).prop_map(move |v| (k.to_string(), v)))
        })
        .collect();
    let stray = prop::option::weighted(0.01, (Just("fule".to_string()), any_value()));
    (parts, stray).prop_map(|(parts, stray)| parts.into_iter().flatten().chain(stray).collect::<Vec<_>>()).boxed()
}

/// A value for `key` in `ctx`: mostly of its type, now and then of any.
fn value(ctx: &'static str, key: &'static str) -> BoxedStrategy<String> {
    prop_oneof![40 => typed(ctx, key), 1 => any_value()].boxed()
}

/// A value of the type `key` takes in `ctx` (valid or not).
fn typed(ctx: &'static str, key: &'static str) -> BoxedStrategy<String> {
    let names = |pool: Pool| prop_oneof![4 => select(pool.good), 1 => select(pool.odd)].prop_map(String::from).boxed();
    match (ctx, key) {
        ("tenants", "blackboard") => inline(fields("tenant-board", TENANT_BOARD_KEYS)),
        ("tenants", "ceiling") => inline(fields("ceiling", &["fuel", "memory", "timeout"])),
        ("tenants", "budget") => inline(fields("budget", BUDGET_KEYS)),
        ("tenants", "agent-budgets") => map(names(AGENTS), inline(fields("budget", BUDGET_KEYS))),
        ("tenants", "agents") => array(text(AGENTS), 0..3),
        ("tenants", "routes") => array(text(ROUTES), 0..3),
        ("tenant-board", "read" | "write") => array(text(PREFIXES), 0..3),
        (_, "dirs") => array(inline(fields("dirs", DIR_KEYS)), 0..3),
        ("agents", "settings") => {
            map(select(WORDS).prop_map(String::from).boxed(), select(WORDS).prop_map(quoted).boxed())
        }
        ("routes", "targets") => array(inline(fields("target", TARGET_KEYS)), 0..3),
        (_, "breaker") => inline(fields("breaker", BREAKER_KEYS)),
        ("serve", "tls") => inline(fields("tls", TLS_KEYS)),
        ("serve", "mcp-flows") => array(word(&["review", "Bad Name", "a/b"]), 0..3),
        ("triggers", "input") => map(select(WORDS).prop_map(String::from).boxed(), any_value()),
        ("mcp", "command" | "pass-env") => array(word(&["python3", "server.py", ""]), 0..3),
        ("mcp", "env" | "headers" | "header-env") => {
            map(select(WORDS).prop_map(String::from).boxed(), select(WORDS).prop_map(quoted).boxed())
        }
        ("mcp", "url") => word(&["http://127.0.0.1:9/mcp", "https://x.test/mcp", "ftp://x"]),
        ("providers", "failures") => array(word(&["timeout", "rate-limited", "server"]), 0..3),
        _ => scalar(key),
    }
}

/// A scalar of the type `key` takes.
fn scalar(key: &'static str) -> BoxedStrategy<String> {
    match key {
        "memory"
        | "max-bytes"
        | "max-header-bytes"
        | "max-arg-bytes"
        | "max-log-bytes"
        | "max-log-total-bytes"
        | "max-key-bytes"
        | "max-value-bytes"
        | "max-output-bytes"
        | "max-io-bytes"
        | "max-result-bytes" => prop_oneof![3 => text(SIZES), 1 => uint()].boxed(),
        "timeout"
        | "epoch-tick"
        | "header-timeout"
        | "drain"
        | "debounce"
        | "latency"
        | "chunk-delay"
        | "backoff-base"
        | "backoff-max"
        | "rate-limit-wait"
        | "attempt-timeout"
        | "first-token-timeout"
        | "idle-timeout"
        | "window"
        | "open-for"
        | "probe-timeout"
        | "connect-timeout" => text(SPANS),
        "pooling" | "approvals" | "write" | "deletes" | "affinity" | "code-cache" => boolean(),
        "sample-ratio" | "failure-rate" | "throttle-below" | "usd-per-day" | "usd-per-month" | "input" | "output" => {
            float()
        }
        "log-format" => word(&["text", "json"]),
        "ledger" | "flows" | "plugin-state" | "store" => word(&["durable", "memory"]),
        "auth" => word(&["keys", "none"]),
        "protocol" => word(&["http/protobuf", "http/json"]),
        "kind" => word(&["openai", "anthropic", "gemini", "ollama", "simulated"]),
        "strategy" => word(&["priority", "cheapest", "fastest"]),
        "key-header" => word(&["authorization", "api-key"]),
        "max-tokens-field" => word(&["max_tokens", "max_completion_tokens"]),
        "listen" => word(&["127.0.0.1:7700", "[::1]:0", "0.0.0.0:7700"]),
        "endpoint" | "base-url" => word(&["http://127.0.0.1:4318", "https://x.test/v1/", "127.0.0.1:4318"]),
        "default-tenant" | "tenant" => text(TENANTS),
        "agent" => text(AGENTS),
        "provider" => word(&["simulated", "p", "q"]),
        "model" => word(&["sim-fast", "m", "x"]),
        "prefix" => text(PREFIXES),
        "api-key-env" => word(&["PATH", "PADDOCK_FUZZ_UNSET"]),
        "api-key-secret" | "name" | "query" | "service-name" => select(WORDS).prop_map(quoted).boxed(),
        "plugins" | "data" | "secrets" | "path" | "host" | "guest" | "cert" | "key" => text(PATHS),
        _ => uint(),
    }
}

/// A whole file, and the sections it has (`limits`, `tenants`, `triggers`...).
fn document() -> impl Strategy<Value = (String, Vec<&'static str>)> {
    let fixed: Vec<_> = SECTIONS
        .iter()
        .map(|&(name, keys)| prop::option::weighted(0.25, fields(name, keys).prop_map(move |f| (name, f))))
        .collect();
    let named: Vec<_> = NAMED
        .iter()
        .map(|&(section, keys, names)| {
            prop::collection::btree_map(select(names), fields(section, keys), 0..3).prop_map(move |m| (section, m))
        })
        .collect();
    let triggers = prop::collection::vec(fields("triggers", TRIGGER_KEYS), 0..3);
    (fixed, named, triggers).prop_map(|(fixed, named, triggers)| render(fixed, named, triggers))
}

type Fields = Vec<(String, String)>;

fn render(
    fixed: Vec<Option<(&'static str, Fields)>>,
    named: Vec<(&'static str, BTreeMap<&'static str, Fields>)>,
    triggers: Vec<Fields>,
) -> (String, Vec<&'static str>) {
    let mut text = String::new();
    let mut sections = Vec::new();
    let mut table = |header: String, fields: &Fields| {
        text.push_str(&header);
        text.push('\n');
        for (k, v) in fields {
            text.push_str(&format!("{} = {v}\n", key(k)));
        }
    };
    for (name, fields) in fixed.into_iter().flatten() {
        sections.push(name);
        table(format!("[{name}]"), &fields);
    }
    for (section, tables) in named {
        if !tables.is_empty() {
            sections.push(section);
        }
        for (name, fields) in tables {
            table(format!("[{section}.{}]", key(name)), &fields);
        }
    }
    if !triggers.is_empty() {
        sections.push("triggers");
    }
    for fields in triggers {
        table("[[triggers]]".to_string(), &fields);
    }
    (text, sections)
}

/// The first segment of the key a validation message starts with:
/// `tenants` of `tenants.acme.budget.max-concurrent must be ...`.
fn section_named(message: &str) -> &str {
    message.split(['.', '[', ':', ' ']).next().unwrap_or_default()
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn any_text_is_parsed_or_refused_naming_the_file(text in any::<String>()) {
        if let Err(err) = parse(&text) {
            prop_assert_eq!(err.file.as_str(), FILE);
            prop_assert!(!err.message.trim().is_empty());
        }
    }
}

proptest! {
    #![proptest_config(config(10000))]

    #[test]
    fn a_refused_file_is_refused_naming_a_key_of_a_section_it_has((text, sections) in document()) {
        if let Err(err) = parse(&text) {
            prop_assert_eq!(err.file.as_str(), FILE);
            let message = err.message.as_str();
            prop_assert!(!message.trim().is_empty());
            if !message.starts_with("TOML parse error") {
                prop_assert!(
                    sections.contains(&section_named(message)),
                    "`{}` names no section of the file ({:?}):\n{}", message, sections, text
                );
            }
        }
    }
}
