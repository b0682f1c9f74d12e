//! The blackboard through real guests: per-tenant, with no lost updates,
//! provenance down to the run, and keys that expire.

use crate::util::*;
use paddock::blackboard::Writer;
use paddock::runtime::RunOptions;
use paddock_test_guests::guests;
use std::time::Duration;

fn tenant(name: &str) -> RunOptions {
    RunOptions { tenant: Some(name.into()), ..Default::default() }
}

#[tokio::test]
async fn tenants_never_see_each_others_writes() {
    let rt = runtime("");
    let a = output_json(&run_with(&rt, guests::ECHO, r#""from a""#, &tenant("a")).await);
    let b = output_json(&run_with(&rt, guests::ECHO, r#""from b""#, &tenant("b")).await);
    assert_eq!((a["input"].as_str(), a["revision"].as_u64()), (Some("\"from a\""), Some(1)));
    assert_eq!((b["input"].as_str(), b["revision"].as_u64()), (Some("\"from b\""), Some(1)));
    let board = rt.blackboard();
    assert_eq!(&*board.namespace("a").get("echo/last").unwrap().unwrap().value, b"\"from a\"");
    assert_eq!(&*board.namespace("b").get("echo/last").unwrap().unwrap().value, b"\"from b\"");
}

#[tokio::test]
async fn a_bad_tenant_name_is_refused() {
    let rt = runtime("");
    let agent = rt.load(guests::ECHO).unwrap();
    let err = rt.run(&agent, "{}", &tenant("../other")).await.unwrap_err();
    assert_eq!(err.to_string(), "tenant name `../other` must be 1 to 64 of a-z, 0-9, '-' and '_'");
}

#[tokio::test]
async fn concurrent_compare_and_swap_increments_lose_no_update() {
    let rt = runtime("");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move { output_json(&run(&rt, guests::HELLO, r#"{"name":"ada"}"#).await) }));
    }
    let mut seen: Vec<u64> = Vec::new();
    for task in tasks {
        seen.push(task.await.unwrap()["visits"].as_u64().unwrap());
    }
    seen.sort();
    assert_eq!(seen, (1..=32).collect::<Vec<u64>>(), "each run saw a distinct count");
    let stored = rt.blackboard().namespace("default").get("visits/ada").unwrap().unwrap();
    assert_eq!(&*stored.value, b"32");
}

#[tokio::test]
async fn the_board_benchmark_guest_completes_every_get_put_and_swap_it_times() {
    let rt = runtime("");
    for (op, revision) in [("get", 1), ("put", 102), ("cas", 203)] {
        let out = output_json(&run(&rt, guests::BENCH_BOARD, &format!(r#"{{"op":"{op}","n":100}}"#)).await);
        assert_eq!((out["done"].as_u64(), out["revision"].as_u64()), (Some(100), Some(revision)), "{op}");
        assert!(out["nanos"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn a_guests_write_records_its_agent_and_the_run_of_its_invocation() {
    let rt = runtime("");
    let outcome = run(&rt, guests::ECHO, r#""hello""#).await;
    let out = output_json(&outcome);
    assert_eq!((out["writer"].as_str(), out["run"].as_str()), (Some("echo"), Some(&*outcome.run)));
    let ns = rt.blackboard().namespace("default");
    let entry = ns.get("echo/last").unwrap().unwrap();
    assert_eq!(entry.writer, Writer::new("echo", outcome.run.clone()));
    let change = ns.changes_after("echo/", 0).unwrap().pop().unwrap();
    assert_eq!((change.revision, change.writer), (1, Writer::new("echo", outcome.run.clone())));
}

#[tokio::test]
async fn an_agent_called_by_another_writes_under_the_callers_run() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "boss", guests::CALLER, "[capabilities]\nagents = [\"echoer\"]\n");
    plugin(dir.path(), "echoer", guests::ECHO, "");
    let rt = runtime_with_plugins(dir.path(), "");
    let input = serde_json::json!({ "agent": "echoer", "input": "hi" }).to_string();
    let outcome = run(&rt, "boss", &input).await;
    assert_eq!(output_json(&outcome)["run"].as_str(), Some(&*outcome.run));
    let entry = rt.blackboard().namespace("default").get("echo/last").unwrap().unwrap();
    assert_eq!(entry.writer, Writer::new("echoer", outcome.run.clone()));
}

/// Runs the `lease` guest with `input`; its output and its run id.
async fn lease(rt: &paddock::runtime::Runtime, input: serde_json::Value) -> (serde_json::Value, String) {
    let outcome = run(rt, guests::LEASE, &input.to_string()).await;
    (output_json(&outcome), outcome.run.to_string())
}

#[tokio::test]
async fn a_guests_lease_reads_absent_after_its_ttl_and_its_removal_is_a_change_by_paddock_ttl() {
    let rt = runtime("");
    let (first, first_run) = lease(&rt, serde_json::json!({ "key": "lock", "ttl_ms": 40, "expect": 0 })).await;
    let entry = &first["entry"];
    assert_eq!((first["revision"].as_u64(), entry["writer"].as_str()), (Some(1), Some("lease")));
    assert_eq!(entry["run"].as_str(), Some(first_run.as_str()));
    let (written, expires) = (entry["written_at"].as_u64().unwrap(), entry["expires_at"].as_u64().unwrap());
    assert_eq!(expires - written, 40, "expires-at is written-at plus the ttl");

    // Wait until the lease has lapsed by the wall clock (at most the 40 ms ttl).
    let expires_at = std::time::UNIX_EPOCH + Duration::from_millis(expires);
    if let Ok(left) = expires_at.duration_since(std::time::SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(2)).await;
    }
    // No sweeper runs here: the next claim meets the expired entry and removes it first.
    let (second, second_run) =
        lease(&rt, serde_json::json!({ "key": "lock", "ttl_ms": 60_000, "expect": 0, "after": 1 })).await;
    assert_eq!(second["revision"].as_u64(), Some(3));
    assert_eq!(
        second["changes"],
        serde_json::json!([
            { "revision": 2, "key": "lock", "deleted": true, "writer": "paddock", "run": "ttl" },
            { "revision": 3, "key": "lock", "deleted": false, "writer": "lease", "run": second_run },
        ])
    );
    let (third, _) = lease(&rt, serde_json::json!({ "key": "lock", "ttl_ms": 60_000, "expect": 0 })).await;
    assert_eq!(third, serde_json::json!({ "error": "conflict: the current revision is 3" }), "the new lease holds");
}

#[tokio::test]
async fn a_guests_ttl_of_zero_or_over_a_year_is_denied_naming_the_key() {
    let rt = runtime("");
    let (zero, _) = lease(&rt, serde_json::json!({ "key": "lock", "ttl_ms": 0 })).await;
    assert_eq!(zero["error"], "denied: invalid ttl for key \"lock\": it must be at least 1ms, not 0s");
    let (long, _) = lease(&rt, serde_json::json!({ "key": "lock", "ttl_ms": 31_536_000_001u64 })).await;
    assert_eq!(
        long["error"],
        "denied: invalid ttl for key \"lock\": 31536000001 ms is over the limit of 31536000000 ms (365 days)"
    );
    assert_eq!(rt.blackboard().namespace("default").revision(), Ok(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_guests_each_cas_incrementing_a_thousand_times_count_exactly_64000() {
    let rt = runtime("[engine]\nmax-instances = 64\n");
    let agent = rt.load(guests::COUNTER).unwrap();
    let runs = (0..64).map(|_| {
        let (rt, agent) = (rt.clone(), agent.clone());
        tokio::spawn(async move { rt.run(&agent, r#"{"key":"hits","times":1000}"#, &RunOptions::default()).await })
    });
    let mut conflicts = 0;
    for run in runs {
        let outcome = run.await.unwrap().unwrap();
        conflicts += output_json(&outcome)["conflicts"].as_u64().unwrap();
    }
    let entry = rt.blackboard().namespace("default").get("hits").unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&entry.value).unwrap(), "64000", "no lost update ({conflicts} conflicts retried)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_watchers_each_see_every_change_in_revision_order() {
    let board = paddock::blackboard::Blackboard::new(Default::default());
    let ns = board.namespace("acme");
    let watchers: Vec<_> = (0..100)
        .map(|_| {
            let ns = ns.clone();
            tokio::spawn(async move {
                let (mut cursor, mut seen) = (0, Vec::new());
                while seen.len() < 500 {
                    for change in ns.watch("jobs/", cursor, std::time::Duration::from_secs(10)).await.unwrap() {
                        cursor = change.revision;
                        seen.push(change.revision);
                    }
                }
                seen
            })
        })
        .collect();
    let writer = Writer::new("writer", "test");
    for i in 0..1000u64 {
        // Every other write is outside the watched prefix.
        let key = if i % 2 == 0 { format!("jobs/{i}") } else { format!("other/{i}") };
        ns.put(&key, b"x", &writer).unwrap();
        if i % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    let expected: Vec<u64> = (0..1000u64).filter(|i| i % 2 == 0).map(|i| i + 1).collect();
    for w in watchers {
        assert_eq!(w.await.unwrap(), expected);
    }
}

#[test]
fn bb_commands_write_read_list_and_show_history_of_a_durable_board() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\n").unwrap();
    let bb = |args: &[&str]| TestCommand::new(dir.path(), &[&["bb"], args].concat()).run();
    assert_eq!(bb(&["put", "tasks/1", "write docs", "--tenant", "acme"]).stdout, "tasks/1 1\n");
    assert_eq!(bb(&["put", "tasks/2", "review", "--tenant", "acme", "--expect", "0"]).stdout, "tasks/2 2\n");
    let conflict = bb(&["put", "tasks/2", "again", "--tenant", "acme", "--expect", "0"]);
    assert_eq!((conflict.code, conflict.stderr.trim()), (1, "error: conflict: current revision is 2"));
    let got: serde_json::Value =
        serde_json::from_str(&bb(&["get", "tasks/1", "--tenant", "acme", "--json"]).stdout).unwrap();
    assert_eq!(
        (got["value"].as_str(), got["writer"].as_str(), got["run"].as_str(), got["revision"].as_u64()),
        (Some("write docs"), Some("paddock-cli"), Some("cli"), Some(1))
    );
    assert_eq!(bb(&["list", "tasks/", "--tenant", "acme"]).stdout, "tasks/1\ntasks/2\n");
    assert_eq!(bb(&["list", "--tenant", "globex"]).stdout, "", "another tenant's board is its own");
    assert_eq!(
        bb(&["history", "--after", "1", "--tenant", "acme"]).stdout,
        "2 put tasks/2 review (by paddock-cli, run cli)\n"
    );
    let missing = bb(&["get", "nope", "--tenant", "acme"]);
    assert_eq!((missing.code, missing.stderr.trim()), (1, "no key \"nope\" in tenant \"acme\""));
}

#[test]
fn bb_put_with_a_ttl_expires_and_later_commands_show_its_removal() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\n").unwrap();
    let bb = |args: &[&str]| TestCommand::new(dir.path(), &[&["bb"], args].concat()).run();
    assert_eq!(bb(&["put", "held", "x", "--ttl", "1h"]).stdout, "held 1\n");
    let got: serde_json::Value = serde_json::from_str(&bb(&["get", "held", "--json"]).stdout).unwrap();
    let (written, expires) = (got["written_at_ms"].as_u64().unwrap(), got["expires_at_ms"].as_u64().unwrap());
    assert_eq!(expires - written, 3_600_000);
    // A millisecond has passed before the next command has even started.
    assert_eq!(bb(&["put", "brief", "y", "--ttl", "1ms"]).stdout, "brief 2\n");
    assert_eq!(bb(&["get", "brief"]).code, 1);
    assert_eq!(bb(&["list"]).stdout, "held\n");
    assert_eq!(bb(&["history", "--after", "2"]).stdout, "3 delete brief (by paddock, run ttl)\n");
    let zero = bb(&["put", "k", "v", "--ttl", "0s"]);
    assert_eq!(
        (zero.code, zero.stderr.trim()),
        (1, "error: invalid ttl for key \"k\": it must be at least 1ms, not 0s")
    );
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\n").unwrap();
    let mut child = paddock_in(dir.path())
        .args(["bb", "put", "--lines", "--tenant", "acme"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for i in 0..100_000 {
            if writeln!(stdin, "k/{i:06} value-{i}").is_err() {
                break; // killed
            }
        }
    });
    let mut acked = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let (key, rev) = line.split_once(' ').unwrap();
        acked.push((key.to_string(), rev.parse::<u64>().unwrap()));
        if acked.len() == 300 {
            // SIGKILL by this child's own PID, mid-stream.
            Command::new("kill").args(["-9", &child.id().to_string()]).status().unwrap();
            break;
        }
    }
    let _ = child.wait();
    let _ = writer.join();

    let settings = settings_in(dir.path(), "[blackboard]\nstore = \"durable\"\n");
    let board = paddock::runtime::open_blackboard(&settings).unwrap();
    let ns = board.namespace("acme");
    for (key, revision) in &acked {
        let entry = ns.get(key).unwrap().unwrap_or_else(|| panic!("acknowledged {key} lost"));
        assert_eq!(entry.revision, *revision, "{key}");
        let i: u64 = key[2..].parse().unwrap();
        assert_eq!(&*entry.value, format!("value-{i}").as_bytes());
    }
    assert!(ns.revision().unwrap() >= 300);
}

async fn wait_for(ns: &paddock::blackboard::Namespace, key: &str, want: &str) -> bool {
    for _ in 0..200 {
        if ns.get(key).unwrap().is_some_and(|e| &*e.value == want.as_bytes()) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_runs_its_agent_once_per_change_under_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "tally", guests::COUNTER, "");
    let toml = "[[triggers]]\nname = \"tally-jobs\"\ntenant = \"acme\"\nprefix = \"jobs/\"\nagent = \"tally\"\nconcurrency = 4\ninput = { key = \"tally\", times = 1 }\n";
    let rt = runtime_with_plugins(dir.path(), toml);
    let triggers = paddock::triggers::start(&rt);
    let ns = rt.blackboard().namespace("acme");
    let writer = Writer::new("test", "test");
    for i in 0..20 {
        ns.put(&format!("jobs/{i}"), b"{}", &writer).unwrap();
        ns.put(&format!("elsewhere/{i}"), b"{}", &writer).unwrap();
    }
    ns.delete("jobs/0", &writer).unwrap(); // deletes do not fire unless asked
    assert!(wait_for(&ns, "tally", "20").await, "tally is {:?}", ns.get("tally").unwrap());
    // The cursor is stored where no tenant can reach it, past every handled
    // change: at the delete, the last change under the prefix (its revision
    // depends on how many of tally's own writes came first).
    let last = ns.changes_after("jobs/", 0).unwrap().last().unwrap().revision.to_string();
    let system = rt.blackboard().namespace(paddock::triggers::SYSTEM_NAMESPACE);
    let cursor_ok = async {
        for _ in 0..200 {
            let cursor = system.get("triggers/tally-jobs/cursor").unwrap().map(|e| e.value.to_vec());
            if cursor.as_deref() == Some(last.as_bytes()) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    };
    assert!(cursor_ok.await, "the cursor is {:?}, not {last}", system.get("triggers/tally-jobs/cursor").unwrap());
    assert!(rt.blackboard().namespace("other").get("tally").unwrap().is_none());
    drop(triggers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_writing_under_its_own_triggers_prefix_runs_max_depth_times_not_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "looper", guests::PROBER, "");
    // Each run rewrites the key whose change started it.
    let toml = "[[triggers]]\nname = \"echo-chamber\"\nprefix = \"loop/\"\nagent = \"looper\"\nmax-depth = 5\n\
                input = { ops = [{ op = \"put\", key = \"loop/k\", value = \"again\" }] }\n";
    let rt = runtime_with_plugins(dir.path(), toml);
    let triggers = paddock::triggers::start(&rt);
    let ns = rt.blackboard().namespace("default");
    ns.put("loop/k", b"start", &Writer::new("test", "test")).unwrap();
    // The first write and the writes of runs 1 to 5, each by the run one deeper.
    let settled = async {
        for _ in 0..200 {
            if ns.revision().unwrap() == 6 {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        false
    };
    assert!(settled.await, "the board is at revision {}", ns.revision().unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let runs: Vec<String> = ns.changes_after("loop/", 0).unwrap().iter().map(|c| c.writer.run.to_string()).collect();
    assert_eq!(runs.len(), 6, "no run after the fifth: {runs:?}");
    let depths: Vec<&str> = runs[1..].iter().map(|r| r.split('-').next().unwrap()).collect();
    assert_eq!(depths, ["t1", "t2", "t3", "t4", "t5"]);
    drop(triggers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_host_delivers_the_changes_after_its_cursor_and_no_others() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "tally", guests::COUNTER, "");
    let toml = "[blackboard]\nstore = \"durable\"\n[[triggers]]\nname = \"t\"\nprefix = \"jobs/\"\nagent = \"tally\"\ninput = { key = \"tally\", times = 1 }\n";
    let writer = Writer::new("test", "test");
    let put = |rt: &paddock::runtime::Runtime, range: std::ops::Range<u32>| {
        let ns = rt.blackboard().namespace("default");
        for i in range {
            ns.put(&format!("jobs/{i}"), b"{}", &writer).unwrap();
        }
    };
    {
        let rt = runtime_with_plugins(dir.path(), toml);
        let mut triggers = paddock::triggers::start(&rt);
        put(&rt, 0..5);
        assert!(wait_for(&rt.blackboard().namespace("default"), "tally", "5").await);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await; // the cursor is stored after the run
        triggers.shutdown().await;
    }
    {
        // The host is down for triggers while three more jobs arrive.
        let rt = runtime_with_plugins(dir.path(), toml);
        put(&rt, 5..8);
    }
    let rt = runtime_with_plugins(dir.path(), toml);
    let _triggers = paddock::triggers::start(&rt);
    let ns = rt.blackboard().namespace("default");
    assert!(wait_for(&ns, "tally", "8").await, "tally is {:?}", ns.get("tally").unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(&*ns.get("tally").unwrap().unwrap().value, b"8", "the first five were not delivered again");
}
