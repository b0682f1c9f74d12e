//! Tenants through real guests: a tenant reaches only its own board, runs
//! and calls only the agents it was granted, uses only its routes — and every
//! refusal is a `denied` naming the capability and the policy key.

use crate::util::*;
use paddock::runtime::{RunError, RunOptions, Runtime};
use paddock_test_guests::guests;
use serde_json::{Value, json};

const TENANTS: &str = r#"
[tenants.a]
agents = ["prober"]
routes = ["fast"]
[tenants.b]
agents = ["prober", "billing"]
routes = ["fast", "smart"]
blackboard = { read = ["shared/"], write = ["tasks/", "echo/"] }
"#;

fn tenant(name: &str) -> RunOptions {
    RunOptions { tenant: Some(name.into()), ..Default::default() }
}

/// A host with the plugins `prober` (asking for `caps`) and `billing`.
fn host(dir: &std::path::Path, caps: &str) -> Runtime {
    plugin(dir, "prober", guests::PROBER, caps);
    plugin(dir, "billing", guests::ECHO, "");
    runtime_with_plugins(dir, TENANTS)
}

/// Runs the prober for `tenant` with `ops` and returns its answer to each.
async fn probe(rt: &Runtime, tenant_name: &str, ops: Value) -> Vec<Value> {
    let out = output_json(&run_with(rt, "prober", &json!({ "ops": ops }).to_string(), &tenant(tenant_name)).await);
    out.as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn no_key_string_reaches_another_tenants_board() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let writer = paddock::blackboard::Writer::new("test", "setup");
    rt.blackboard().namespace("b").put("secret", b"b's", &writer).unwrap();
    rt.blackboard().namespace("a").put("mine", b"a's", &writer).unwrap();
    let long = "k".repeat(1_000_000);
    let keys =
        ["secret", "../b/secret", "/secret", "b/secret", "b:secret", "\u{0455}ecret", "secret\u{200b}", "./secret"];
    let mut ops: Vec<Value> = keys.iter().map(|k| json!({ "op": "get", "key": k })).collect();
    ops.push(json!({ "op": "list", "prefix": "" }));
    ops.push(json!({ "op": "watch", "prefix": "" }));
    ops.push(json!({ "op": "get", "key": "secret\u{0}" }));
    ops.push(json!({ "op": "get", "key": "" }));
    ops.push(json!({ "op": "get", "key": long }));
    ops.push(json!({ "op": "list", "prefix": "../" }));
    let answers = probe(&rt, "a", Value::Array(ops)).await;
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(answers[i], json!({ "ok": null }), "get {key:?} found something");
    }
    let n = keys.len();
    assert_eq!(answers[n], json!({ "ok": ["mine"] }), "list sees only its own keys");
    assert_eq!(answers[n + 1], json!({ "ok": ["mine"] }), "watch sees only its own changes");
    assert_eq!(
        answers[n + 2],
        json!({ "err": "denied: blackboard key: a key must not contain control characters (found '\\0')" })
    );
    assert_eq!(answers[n + 3], json!({ "err": "denied: blackboard key: a key must not be empty" }));
    assert_eq!(
        answers[n + 4],
        json!({ "err": "denied: blackboard key: a key of 1000000 bytes is over the limit of 512 bytes" })
    );
    assert_eq!(answers[n + 5], json!({ "ok": [] }));
    assert_eq!(&*rt.blackboard().namespace("b").get("secret").unwrap().unwrap().value, b"b's");
}

#[tokio::test]
async fn blackboard_prefixes_outside_the_tenants_grant_are_denied_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "[capabilities.blackboard]\nread = [\"shared/\"]\nwrite = [\"tasks/\"]\n");
    let answers = probe(
        &rt,
        "b",
        json!([
            { "op": "put", "key": "tasks/1", "value": "x" },
            { "op": "get", "key": "tasks/1" },
            { "op": "get", "key": "shared/news" },
            { "op": "put", "key": "shared/news", "value": "x" },
            { "op": "get", "key": "private/x" },
            { "op": "list", "prefix": "" },
            { "op": "watch", "prefix": "tasks" },
            { "op": "delete", "key": "private/x" },
        ]),
    )
    .await;
    let denied = |op: &str, what: &str, granted: &str| json!({ "err": format!("denied: blackboard {op} of {what} is not granted to agent \"prober\" for tenant \"b\" (granted: {granted})") });
    assert_eq!(answers[0], json!({ "ok": 1 }));
    assert_eq!(answers[1], json!({ "ok": "x" }), "writing implies reading");
    assert_eq!(answers[2], json!({ "ok": null }));
    assert_eq!(answers[3], denied("write", "\"shared/news\"", "write [\"tasks/\"]"));
    assert_eq!(answers[4], denied("read", "\"private/x\"", "read [\"shared/\", \"tasks/\"]"));
    assert_eq!(answers[5], denied("read", "prefix \"\"", "read [\"shared/\", \"tasks/\"]"));
    assert_eq!(answers[6], denied("read", "prefix \"tasks\"", "read [\"shared/\", \"tasks/\"]"));
    assert_eq!(answers[7], denied("write", "\"private/x\"", "write [\"tasks/\"]"));
}

#[tokio::test]
async fn a_tenant_runs_only_the_agents_it_was_granted() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    let billing = rt.load("billing").unwrap();
    match rt.run(&billing, "\"x\"", &tenant("a")).await {
        Err(RunError::Refused(why)) => {
            assert_eq!(why, "denied: agent \"billing\" is not granted to tenant \"a\" (tenants.a.agents = [prober])")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match rt.run(&billing, "\"x\"", &tenant("nobody")).await {
        Err(RunError::Refused(why)) => assert_eq!(why, "denied: no tenant named \"nobody\" (configured: a, b)"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(rt.run(&billing, "\"x\"", &tenant("b")).await.unwrap().result.is_ok());
}

#[tokio::test]
async fn calling_another_tenants_agent_is_denied_naming_the_tenants_grant() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "[capabilities]\nagents = [\"billing\"]\n");
    let answers = probe(&rt, "a", json!([{ "op": "call", "agent": "billing" }])).await;
    assert_eq!(
        answers[0],
        json!({ "err": "denied: calling agent \"billing\" is not granted to agent \"prober\" by tenant \"a\": not in tenants.a.agents = [prober]" })
    );
    let answers = probe(&rt, "b", json!([{ "op": "call", "agent": "billing" }])).await;
    assert!(answers[0]["ok"].is_string(), "{answers:?}");
}

#[tokio::test]
async fn a_route_the_tenant_did_not_grant_is_denied_naming_the_tenants_grant() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "[capabilities]\nroutes = [\"fast\", \"smart\"]\n");
    let answers = probe(
        &rt,
        "a",
        json!([{ "op": "llm", "route": "smart" }, { "op": "llm", "route": "fast" }, { "op": "llm", "route": "other" }]),
    )
    .await;
    assert_eq!(
        answers[0],
        json!({ "err": "denied: route \"smart\" is not granted to agent \"prober\" by tenant \"a\": not in tenants.a.routes = [fast]" })
    );
    assert!(answers[1]["ok"].as_str().is_some_and(|t| t.starts_with("[simulated]")), "{answers:?}");
    assert_eq!(
        answers[2],
        json!({ "err": "denied: route \"other\" is not granted to agent \"prober\" (its manifest's capabilities.routes: fast, smart)" })
    );
}

#[tokio::test]
async fn a_tenant_ceiling_lowers_limits_and_overrides_above_it_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "prober", guests::PROBER, "[limits]\ntimeout = \"60s\"\n");
    let rt = runtime_with_plugins(dir.path(), "[tenants.a]\nagents = [\"*\"]\nceiling = { timeout = \"2s\" }\n");
    let prober = rt.load("prober").unwrap();
    let options = RunOptions {
        overrides: paddock::config::Requested {
            timeout: Some(std::time::Duration::from_secs(5)),
            ..Default::default()
        },
        ..tenant("a")
    };
    match rt.run(&prober, "{\"ops\":[]}", &options).await {
        Err(RunError::Options(why)) => {
            assert_eq!(why, "--timeout 5s is above ceiling.timeout (2s) (lowered by tenants.a.ceiling)")
        }
        other => panic!("expected an options error, got {other:?}"),
    }
}

#[test]
fn plugins_check_and_usage_show_grants_refusals_and_spend_per_tenant() {
    let dir = tempfile::tempdir().unwrap();
    plugin(
        &dir.path().join("plugins"),
        "prober",
        guests::PROBER,
        "[capabilities]\nroutes = [\"fast\", \"smart\"]\nblackboard = { write = [\"tasks/\"] }\n",
    );
    let config = "[host]\ndefault-tenant = \"acme\"\n[tenants.acme]\nagents = [\"prober\"]\nroutes = [\"fast\"]\nbudget = { tokens-per-day = 30 }\n";
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let paddock = |args: &[&str]| TestCommand::new(dir.path(), args).run();

    let check = paddock(&["plugins", "check"]);
    assert_eq!(check.code, 9, "a refusal makes plugins check exit 9: {}", check.stderr);
    assert!(check.stdout.starts_with("prober 1.0.0 for tenant acme: may run\n"), "{}", check.stdout);
    assert!(
        check.stdout.contains("    routes     asked [\"fast\",\"smart\"]  granted [\"fast\"]\n"),
        "{}",
        check.stdout
    );
    assert!(check.stdout.contains("    refused   route \"smart\": not in tenants.acme.routes = [fast]\n"));
    // A tenant that does not list the plugin is its policy, shown and not an error.
    let both_routes = config.replace("routes = [\"fast\"]", "routes = [\"fast\", \"smart\"]");
    std::fs::write(dir.path().join("paddock.toml"), format!("{both_routes}[tenants.globex]\nagents = []\n")).unwrap();
    let check = paddock(&["plugins", "check"]);
    assert_eq!(check.code, 0, "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains("prober 1.0.0 for tenant globex: may NOT run\n"), "{}", check.stdout);
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();

    let ops = r#"{"ops":[{"op":"llm","route":"fast"},{"op":"llm","route":"fast"}]}"#;
    let ran = paddock(&["run", "prober", "--input", ops]);
    let answers: Value = serde_json::from_str(&ran.stdout).unwrap_or_else(|_| panic!("{} {}", ran.stdout, ran.stderr));
    assert!(
        answers[0]["ok"].is_string()
            && answers[1]["err"].as_str().unwrap().starts_with("budget exceeded: tenant \"acme\"")
    );

    let usage = paddock(&["usage", "--tenant", "acme", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&usage.stdout).unwrap();
    let day = rows.iter().find(|r| r["agent"].is_null() && r["window"].as_str().unwrap().len() == 10).unwrap();
    assert_eq!((day["requests"].as_u64(), day["refusals"].as_u64()), (Some(1), Some(1)));
    assert_eq!(day["budget"]["tokens"].as_u64(), Some(30));

    let refused = paddock(&["run", "prober", "--tenant", "globex", "--input", "{}"]);
    assert_eq!(
        (refused.code, refused.stderr.trim()),
        (9, "error: denied: no tenant named \"globex\" (configured: acme)")
    );
}

#[tokio::test]
async fn a_tenants_board_limits_are_its_own_and_named_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "prober", guests::PROBER, "");
    let rt = runtime_with_plugins(
        dir.path(),
        "[tenants.a]\nagents = [\"*\"]\nblackboard = { max-keys = 1 }\n[tenants.b]\nagents = [\"*\"]\n",
    );
    let two_keys = json!([{ "op": "put", "key": "k1", "value": "x" }, { "op": "put", "key": "k2", "value": "x" }]);
    let answers = probe(&rt, "a", two_keys.clone()).await;
    assert_eq!(
        answers[1],
        json!({ "err": "quota exceeded: tenant \"a\" holds 1 keys, the limit (tenants.a.blackboard.max-keys)" })
    );
    let answers = probe(&rt, "b", two_keys).await;
    assert_eq!(answers[1], json!({ "ok": 2 }), "another tenant keeps the host's limits");
}
