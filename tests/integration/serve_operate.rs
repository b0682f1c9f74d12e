//! The operator API of a real `paddock serve` beside the CLI: a durable board
//! read and written over HTTP and by `paddock bb` from other processes while
//! the host holds it, usage, tenant scoping and roles, a watch as
//! server-sent events, and the providers' live breakers.

use crate::util::*;
use paddock_fake_provider::{Behavior, FakeProvider, Fault};
use paddock_test_guests::guests;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A durable board and ledger; tenants `acme` (the default) and `globex`;
/// `extra` appended to `paddock.toml`.
fn setup(dir: &Path, extra: &str) {
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"acme\"\n\
         [blackboard]\nstore = \"durable\"\n\
         [tenants.acme]\nagents = [\"*\"]\nroutes = [\"*\"]\n[tenants.globex]\nagents = [\"*\"]\nroutes = [\"*\"]\n{extra}"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    paddock::gateway::install_crypto();
}

/// `paddock ARGS` in `dir`, off the async workers.
async fn cli(dir: &Path, args: &[&str]) -> Ran {
    let (dir, args): (std::path::PathBuf, Vec<String>) = (dir.into(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        TestCommand::new(&dir, &args).run()
    })
    .await
    .unwrap()
}

/// The row of `usage` (`GET /v1/usage`) for `tenant`'s whole day.
fn day_row<'a>(usage: &'a Value, tenant: &str) -> Option<&'a Value> {
    let rows = usage["rows"].as_array()?;
    rows.iter()
        .find(|r| r["tenant"] == tenant && r["agent"].is_null() && r["window"].as_str().is_some_and(|w| w.len() == 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb_and_usage_act_through_a_host_that_holds_a_durable_board() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "");
    let operate = key(dir.path(), "acme", "operate");
    let served = serve(dir.path(), &[]);

    let put = cli(dir.path(), &["bb", "put", "tasks/1", "write the report"]).await;
    assert_eq!((put.code, put.stdout.as_str()), (0, "tasks/1 1\n"), "{}", put.stderr);
    assert!(!put.stderr.contains("Database already open"), "{}", put.stderr);
    let got = cli(dir.path(), &["bb", "get", "tasks/1"]).await;
    assert_eq!((got.code, got.stdout.as_str()), (0, "write the report\n"), "{}", got.stderr);
    assert!(got.stderr.starts_with("revision 1 by paddock-api (run "), "{}", got.stderr);
    let got = cli(dir.path(), &["bb", "get", "tasks/1", "--json"]).await;
    let entry: Value = serde_json::from_str(got.stdout.trim()).unwrap();
    assert_eq!(
        (entry["key"].as_str(), entry["value"].as_str(), entry["revision"].as_u64()),
        (Some("tasks/1"), Some("write the report"), Some(1))
    );

    // The same entry over HTTP, the key percent-encoded as one segment.
    let (status, body) = call(&served, Method::GET, "/v1/board/keys/tasks%2F1", &operate, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, entry);

    let absent = cli(dir.path(), &["bb", "get", "tasks/2"]).await;
    assert_eq!((absent.code, absent.stderr.as_str()), (1, "no key \"tasks/2\" in tenant \"acme\"\n"));
    let cas = cli(dir.path(), &["bb", "put", "tasks/1", "again", "--expect", "7"]).await;
    assert_eq!((cas.code, cas.stderr.as_str()), (1, "error: conflict: current revision is 1\n"));
    let second = cli(dir.path(), &["bb", "put", "tasks/2", "x", "--ttl", "1h"]).await;
    assert_eq!(second.stdout, "tasks/2 2\n", "{}", second.stderr);
    let listed = cli(dir.path(), &["bb", "list", "tasks/", "--json"]).await;
    assert_eq!(listed.stdout.trim(), r#"["tasks/1","tasks/2"]"#, "{}", listed.stderr);
    let history = cli(dir.path(), &["bb", "history", "tasks/"]).await;
    let lines: Vec<&str> = history.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", history.stdout);
    assert!(lines[0].starts_with("1 put tasks/1 write the report (by paddock-api, run "), "{}", history.stdout);

    let deleted = cli(dir.path(), &["bb", "delete", "tasks/2"]).await;
    assert_eq!(
        (deleted.code, deleted.stdout.as_str()),
        (
            0,
            "tasks/2 deleted
"
        ),
        "{}",
        deleted.stderr
    );
    let again = cli(dir.path(), &["bb", "delete", "tasks/2"]).await;
    assert_eq!((again.code, again.stderr.as_str()), (1, "no key \"tasks/2\" in tenant \"acme\"\n"));

    let usage = cli(dir.path(), &["usage", "--json"]).await;
    assert_eq!((usage.code, usage.stdout.trim()), (0, "[]"), "{}", usage.stderr);
    let usage = cli(dir.path(), &["usage"]).await;
    assert_eq!(usage.code, 0, "{}", usage.stderr);
    let (status, body) = call(&served, Method::GET, "/v1/usage", &operate, "").await;
    assert_eq!((status, body), (StatusCode::OK, json!({ "rows": [] })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn board_routes_need_operate_and_never_show_another_tenants_keys() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "");
    let (run, acme, globex) =
        (key(dir.path(), "acme", "run"), key(dir.path(), "acme", "operate"), key(dir.path(), "globex", "operate"));
    let served = serve(dir.path(), &[]);

    let (status, body) = call(&served, Method::GET, "/v1/board", &run, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["message"], "a run key may not read or write the blackboard; that needs the operate role");
    let (status, _) = call(&served, Method::PUT, "/v1/board/keys/a", &run, "v").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = call(&served, Method::PUT, "/v1/board/keys/secret%2Fplan", &globex, "globex only").await;
    assert_eq!((status, body["revision"].as_u64()), (StatusCode::OK, Some(1)), "{body}");
    let (status, _) = call(&served, Method::PUT, "/v1/board/keys/notes", &acme, "acme's").await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = call(&served, Method::GET, "/v1/board/keys/secret%2Fplan", &acme, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, listed) = call(&served, Method::GET, "/v1/board", &acme, "").await;
    assert_eq!(listed, json!({ "keys": ["notes"] }));
    let (_, history) = call(&served, Method::GET, "/v1/board/history", &acme, "").await;
    assert_eq!(history.as_array().map(|h| h.len()), Some(1), "{history}");
    assert_eq!(history[0]["key"], "notes");
    let (status, _) = call(&served, Method::GET, "/v1/board?tenant=globex", &acme, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only an admin names another tenant");
    let (status, _) = call(&served, Method::DELETE, "/v1/board/keys/secret%2Fplan", &acme, "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, still) = call(&served, Method::GET, "/v1/board/keys/secret%2Fplan", &globex, "").await;
    assert_eq!(still["value"], "globex only", "acme's delete never reached globex");
    let (_, tenants) = call(&served, Method::GET, "/v1/tenants", &acme, "").await;
    let names: Vec<&Value> = tenants["tenants"].as_array().unwrap().iter().map(|t| &t["name"]).collect();
    assert_eq!(names, [&json!("acme")], "a tenant's key sees its own policy only: {tenants}");
    let (status, _) = call(&served, Method::GET, "/v1/usage", &run, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&served, Method::GET, "/v1/usage?tenant=globex", &acme, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The local admin key reads globex's board only by naming it.
    let named = cli(dir.path(), &["bb", "list", "--tenant", "globex"]).await;
    assert_eq!(named.stdout, "secret/plan\n", "{}", named.stderr);

    // The guest API's limits: a key over 512 bytes, a value over 1 MiB.
    let long = "k".repeat(513);
    let (status, body) = call(&served, Method::PUT, &format!("/v1/board/keys/{long}"), &acme, "v").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "invalid key: a key of 513 bytes is over the limit of 512 bytes");
    let big = "v".repeat((1 << 20) + 1);
    let (status, body) = call(&served, Method::PUT, "/v1/board/keys/big", &acme, &big).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["message"], "value of 1048577 bytes is over the limit of 1048576 bytes");
    let (status, body) = call(&served, Method::PUT, "/v1/board/keys/notes?expect=0", &acme, "v").await;
    assert_eq!((status, body["error"]["kind"].as_str()), (StatusCode::CONFLICT, Some("conflict")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_watch_streams_a_put_made_after_it_started() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "");
    let operate = key(dir.path(), "acme", "operate");
    let served = serve(dir.path(), &[]);
    let (status, _) = call(&served, Method::PUT, "/v1/board/keys/jobs%2F0", &operate, "before").await;
    assert_eq!(status, StatusCode::OK);

    let mut stream = reqwest::Client::new()
        .get(format!("http://{}/v1/board/watch?prefix=jobs/", served.address))
        .bearer_auth(&operate)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // A CLI watcher beside it, through the host.
    let watcher = {
        let dir = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || {
            TestCommand::new(&dir, &["bb", "watch", "jobs/", "--count", "1", "--json"]).run()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, put) = call(&served, Method::PUT, "/v1/board/keys/jobs%2F1", &operate, "after").await;
    assert_eq!((status, put["revision"].as_u64()), (StatusCode::OK, Some(2)));
    let (_, entry) = call(&served, Method::GET, "/v1/board/keys/jobs%2F1", &operate, "").await;

    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await.expect("an event in time").unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
    }
    let event = text.split("\n\n").next().unwrap();
    let fields: Vec<(&str, &str)> = event.lines().filter_map(|l| l.split_once(": ")).collect();
    let data: Value = serde_json::from_str(fields.iter().find(|(f, _)| *f == "data").unwrap().1).unwrap();
    let expected =
        json!({ "revision": 2, "key": "jobs/1", "value": "after", "writer": "paddock-api", "run": entry["run"] });
    assert_eq!(data, expected, "{event}");
    assert!(fields.contains(&("event", "change")) && fields.contains(&("id", "2")), "{event}");

    let watched = watcher.await.unwrap();
    assert_eq!(watched.code, 0, "{}", watched.stderr);
    assert_eq!(serde_json::from_str::<Value>(watched.stdout.trim()).unwrap(), expected);

    // Resuming after the first change replays the second.
    let resumed = reqwest::Client::new()
        .get(format!("http://{}/v1/board/watch?prefix=jobs/", served.address))
        .bearer_auth(&operate)
        .header("last-event-id", "1")
        .send()
        .await
        .unwrap();
    let mut resumed = resumed;
    let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.chunk()).await.unwrap().unwrap().unwrap();
    assert!(String::from_utf8_lossy(&chunk).contains("id: 2"), "{chunk:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_route_shows_the_open_breaker_and_usage_the_failed_calls_against_the_budget() {
    let fake = FakeProvider::start().await.unwrap();
    fake.set_default(Behavior::Fault(Fault::Status { code: 500 }));
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "[tenants.acme.budget]\ntokens-per-day = 100000\n{}[routes.r]\nretries = 0\nbackoff-base = \"1ms\"\nbreaker = {{ failures = 2, open-for = \"60s\" }}\n\
         targets = [{{ provider = \"p\", model = \"m-1\" }}]\n",
        fake_provider("p", "openai", &fake)
    );
    setup(dir.path(), &routes);
    plugin(&dir.path().join("plugins"), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\"]\n");
    let (admin, runner) = (key(dir.path(), "acme", "admin"), key(dir.path(), "acme", "run"));
    let served = serve(dir.path(), &[]);

    let (status, body) = call(&served, Method::GET, "/v1/providers", &admin, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let target =
        |body: &Value| body["targets"].as_array().unwrap().iter().find(|t| t["route"] == "r").cloned().unwrap();
    assert_eq!(target(&body)["breaker"], "closed");
    for _ in 0..2 {
        let input = json!({"op": "complete", "route": "r", "prompt": "hi"}).to_string();
        let (status, _) = call(&served, Method::POST, "/v1/agents/client/run", &runner, &input).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, body) = call(&served, Method::GET, "/v1/providers", &admin, "").await;
    let open = target(&body);
    assert_eq!((open["breaker"].as_str(), open["provider"].as_str()), (Some("open"), Some("p")), "{body}");
    assert!(open["breaker_open_ms"].as_u64().is_some_and(|ms| ms > 50_000), "{open}");
    let (status, _) = call(&served, Method::GET, "/v1/providers", &runner, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The calls that failed count as requests, against the tenant's budget.
    let (status, usage) = call(&served, Method::GET, "/v1/usage", &admin, "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    let rows = usage["rows"].as_array().unwrap();
    let day = day_row(&usage, "acme").unwrap_or_else(|| panic!("a day row of acme: {usage}"));
    assert_eq!(day["requests"], 2, "{day}");
    let used = day["input_tokens"].as_u64().unwrap() + day["output_tokens"].as_u64().unwrap();
    assert_eq!(day["budget"]["tokens"], 100_000, "{day}");
    assert_eq!(day["budget"]["left"]["tokens"], 100_000 - used, "{day}");
    let printed = cli(dir.path(), &["usage", "--json", "--tenant", "acme"]).await;
    let printed: Value = serde_json::from_str(printed.stdout.trim()).unwrap();
    assert_eq!(printed.as_array().map(Vec::len), Some(rows.len()), "{printed}");

    // `paddock providers check` runs in the host, so it reports the open breaker.
    let checked = cli(dir.path(), &["providers", "check", "--json"]).await;
    assert_eq!(checked.code, 8, "{}", checked.stderr);
    let reports: Value = serde_json::from_str(checked.stdout.trim()).unwrap();
    let row = reports.as_array().unwrap().iter().find(|r| r["route"] == "r").unwrap();
    assert_eq!(row["breaker"], "open", "{reports}");
}

#[test]
fn commands_that_call_no_provider_load_without_the_providers_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[providers.x]\nkind = \"openai\"\nbase-url = \"http://127.0.0.1:9\"\napi-key-env = \"PADDOCK_TEST_NEVER_SET\"\n\
                  [routes.fast]\ntargets = [{ provider = \"x\", model = \"m\" }]\n";
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    for args in [&["bb", "list"][..], &["usage"], &["providers", "list"], &["keys", "list"]] {
        let ran = TestCommand::new(dir.path(), args).run();
        assert_eq!(ran.code, 0, "paddock {args:?}: {}", ran.stderr);
    }
    let absent = TestCommand::new(dir.path(), &["bb", "delete", "nothing"]).run();
    assert_eq!(absent.code, 1, "{}", absent.stderr);
    assert!(absent.stderr.ends_with("no key \"nothing\" in tenant \"default\"\n"), "{}", absent.stderr);
    let ran = TestCommand::new(dir.path(), &["providers", "check"]).run();
    assert_eq!(ran.code, 5, "a check calls the providers: {}", ran.stderr);
    assert!(ran.stderr.contains("PADDOCK_TEST_NEVER_SET"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_approves_a_held_version_over_http_and_it_serves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "echo", guests::ECHO, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!("[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {cache:?}\n");
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let (admin, operate) = (key(dir.path(), "default", "admin"), key(dir.path(), "default", "operate"));
    let served = serve(dir.path(), &["--debounce", "20ms"]);
    paddock::gateway::install_crypto();

    // Version 2 asks for approvals, which version 1 did not: it is held.
    let manifest = format!(
        "name = \"echo\"\nversion = \"2.0.0\"\ncomponent = {:?}\n[capabilities]\napprovals = true\n",
        link_component(&plugins.join("echo"), Path::new(guests::ECHO))
    );
    std::fs::write(plugins.join("echo/agent.toml"), manifest).unwrap();
    let mut held = Value::Null;
    for _ in 0..200 {
        let (_, rows) = call(&served, Method::GET, "/v1/plugins", &admin, "").await;
        held = rows[0]["held"]["version"]["version"].clone();
        if held.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v2 = held.as_str().expect("version 2 is held").to_string();
    assert!(v2.starts_with("2.0.0+"), "{v2}");

    let body = json!({ "version": v2 }).to_string();
    let (status, _) = call(&served, Method::POST, "/v1/plugins/echo/approve", &operate, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, answer) =
        call(&served, Method::POST, "/v1/plugins/echo/approve", &admin, r#"{"version":"9.9.9+0"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, answer) = call(&served, Method::POST, "/v1/plugins/echo/approve", &admin, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["kept"], false, "plugin-state is memory: {answer}");
    assert_eq!(answer["serving"], json!([{ "plugin": "echo", "from": answer["serving"][0]["from"], "to": v2 }]));
    let (_, rows) = call(&served, Method::GET, "/v1/plugins", &admin, "").await;
    assert_eq!(rows[0]["serving"]["version"], *v2, "{rows}");

    // With no tenants configured, a key sees its tenant's open policy.
    let (status, tenants) = call(&served, Method::GET, "/v1/tenants", &operate, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&tenants["configured"], &tenants["tenants"][0]["name"]), (&json!(false), &json!("default")));
    assert_eq!(tenants["tenants"][0]["open"], true, "{tenants}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_run_beside_a_serving_host_shares_its_durable_board_and_ledger() {
    let fake = FakeProvider::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let routes = format!(
        "{}[routes.r]\ntargets = [{{ provider = \"p\", model = \"m-1\" }}]\n",
        fake_provider("p", "openai", &fake)
    );
    setup(dir.path(), &routes);
    plugin(&dir.path().join("plugins"), "counter", guests::COUNTER, "");
    plugin(&dir.path().join("plugins"), "client", guests::LLM_CLIENT, "[capabilities]\nroutes = [\"r\"]\n");
    let (admin, runner) = (key(dir.path(), "acme", "admin"), key(dir.path(), "acme", "run"));
    let served = serve(dir.path(), &[]);

    // Two agents in the host and two in `paddock run` processes swap one counter on the board file.
    let count = json!({"key": "n", "times": 25}).to_string();
    let in_host = (0..2).map(|_| call(&served, Method::POST, "/v1/agents/counter/run", &runner, &count));
    let args = ["run", "counter", "--input", &count];
    let in_cli = (0..2).map(|_| cli(dir.path(), &args));
    let (hosted, ran) = tokio::join!(futures_util::future::join_all(in_host), futures_util::future::join_all(in_cli));
    for (status, body) in hosted {
        assert_eq!((status, &body["error"]), (StatusCode::OK, &Value::Null), "{body}");
    }
    for ran in ran {
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let (status, counter) = call(&served, Method::GET, "/v1/board/keys/n", &admin, "").await;
    assert_eq!((status, &counter["value"], &counter["revision"]), (StatusCode::OK, &json!("100"), &json!(100)));
    let got = cli(dir.path(), &["bb", "get", "n"]).await;
    assert_eq!((got.code, got.stdout.as_str()), (0, "100\n"), "{}", got.stderr);

    // A model call in the host and one in `paddock run`: the ledger file has both.
    let ask = json!({"op": "complete", "route": "r", "prompt": "hi"}).to_string();
    let (status, body) = call(&served, Method::POST, "/v1/agents/client/run", &runner, &ask).await;
    assert_eq!((status, &body["error"]), (StatusCode::OK, &Value::Null), "{body}");
    let ran = cli(dir.path(), &["run", "client", "--input", &ask]).await;
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let (status, usage) = call(&served, Method::GET, "/v1/usage", &admin, "").await;
    assert_eq!(status, StatusCode::OK, "{usage}");
    assert_eq!(day_row(&usage, "acme").map(|d| &d["requests"]), Some(&json!(2)), "{usage}");
}

/// The minutes of `tenant` in a `GET /v1/activity` answer, as (invocations, errors, limits) summed.
fn activity_of(answer: &Value, tenant: &str) -> Option<(u64, u64, u64)> {
    let row = answer["tenants"].as_array()?.iter().find(|t| t["tenant"] == tenant)?;
    let minutes = row["minutes"].as_array()?;
    let sum = |k: &str| minutes.iter().filter_map(|m| m[k].as_u64()).sum();
    Some((sum("invocations"), sum("errors"), sum("limits")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activity_counts_each_tenants_invocations_and_failures_and_shows_a_run_key_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), "[engine]\nmax-instances = 40\n");
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    plugin(&dir.path().join("plugins"), "panicker", guests::PANICKER, "");
    let (admin, acme, globex) =
        (key(dir.path(), "acme", "admin"), key(dir.path(), "acme", "run"), key(dir.path(), "globex", "run"));
    let served = serve(dir.path(), &[]);
    for (token, agent) in [(&acme, "echo"), (&acme, "echo"), (&acme, "panicker"), (&globex, "echo")] {
        call(&served, Method::POST, &format!("/v1/agents/{agent}/run"), token, "{}").await;
    }

    let (status, mine) = call(&served, Method::GET, "/v1/activity", &acme, "").await;
    assert_eq!(status, StatusCode::OK, "{mine}");
    let tenants: Vec<&str> = mine["tenants"].as_array().unwrap().iter().filter_map(|t| t["tenant"].as_str()).collect();
    assert_eq!(tenants, ["acme"], "{mine}");
    assert_eq!(activity_of(&mine, "acme"), Some((3, 1, 0)), "{mine}");
    assert_eq!(mine["tenants"][0]["in_flight"], 0);
    assert!(mine.get("instances").is_none(), "only an admin sees the host's instances: {mine}");
    let (status, refused) = call(&served, Method::GET, "/v1/activity?tenant=globex", &acme, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");

    let (_, every) = call(&served, Method::GET, "/v1/activity", &admin, "").await;
    assert_eq!((activity_of(&every, "acme"), activity_of(&every, "globex")), (Some((3, 1, 0)), Some((1, 0, 0))));
    assert_eq!(every["instances"], json!({"in_use": 0, "max": 40}));
    let (_, named) = call(&served, Method::GET, "/v1/activity?tenant=globex", &admin, "").await;
    assert_eq!(named["tenants"].as_array().map(Vec::len), Some(1), "{named}");
    assert_eq!(activity_of(&named, "globex"), Some((1, 0, 0)));
}
