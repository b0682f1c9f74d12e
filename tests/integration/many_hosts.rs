//! Several `paddock serve` processes on one PostgreSQL database (`[store]
//! backend = "postgres"`), each with its own folder, as hosts of a fleet are:
//! the board one host writes, another reads and streams, and the CLI of a
//! third folder reaches it with no host at all.

use crate::util::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A host folder on the database at `url`, with tenant `acme` the default;
/// returns an `operate` key of its own keyring.
fn host_folder(dir: &Path, url: &str) -> String {
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"acme\"\n\
         [store]\nbackend = \"postgres\"\nurl = {url:?}\npool = 4\n\
         [tenants.acme]\nagents = [\"*\"]\nroutes = [\"*\"]\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::create_dir_all(dir.join("plugins")).unwrap();
    paddock::gateway::install_crypto();
    key(dir, "acme", "operate")
}

/// The first server-sent event of `stream`, as its `data` and its `id`.
async fn next_event(stream: &mut reqwest::Response, text: &mut String) -> (Value, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, stream.chunk()).await.expect("an event within 10 s").unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream goes on")));
    }
    let (event, rest) = text.split_once("\n\n").unwrap();
    let fields: Vec<(String, String)> =
        event.lines().filter_map(|l| l.split_once(": ")).map(|(f, v)| (f.to_string(), v.to_string())).collect();
    *text = rest.to_string();
    let field = |name: &str| fields.iter().find(|(f, _)| f == name).map(|(_, v)| v.clone()).unwrap_or_default();
    (serde_json::from_str(&field("data")).unwrap(), field("id"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_on_one_database_share_the_board_and_a_watch_on_one_streams_the_writes_made_through_another() {
    let Some(url) = paddock_postgres::testing::database_url("hosts_board") else { return };
    let (a_dir, b_dir, cli_dir) =
        (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a_key, b_key) = (host_folder(a_dir.path(), &url), host_folder(b_dir.path(), &url));
    host_folder(cli_dir.path(), &url);
    let (a, b) = (serve(a_dir.path(), &[]), serve(b_dir.path(), &[]));

    let mut stream = reqwest::Client::new()
        .get(format!("http://{}/v1/board/watch?prefix=jobs/", a.address))
        .bearer_auth(&a_key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let (status, put) = call(&b, Method::PUT, "/v1/board/keys/jobs%2F1", &b_key, "through b").await;
    assert_eq!((status, put["revision"].as_u64()), (StatusCode::OK, Some(1)), "{put}");
    let mut text = String::new();
    let (data, id) = next_event(&mut stream, &mut text).await;
    assert_eq!((data["key"].as_str(), data["value"].as_str(), id.as_str()), (Some("jobs/1"), Some("through b"), "1"));

    // The next revision is one more whichever host writes it, and a stale swap is refused on either.
    let (status, put) = call(&a, Method::PUT, "/v1/board/keys/jobs%2F1?expect=1", &a_key, "through a").await;
    assert_eq!((status, put["revision"].as_u64()), (StatusCode::OK, Some(2)), "{put}");
    let (status, refused) = call(&b, Method::PUT, "/v1/board/keys/jobs%2F1?expect=1", &b_key, "stale").await;
    assert_eq!((status, refused["error"]["kind"].as_str()), (StatusCode::CONFLICT, Some("conflict")), "{refused}");
    let (data, id) = next_event(&mut stream, &mut text).await;
    assert_eq!((data["value"].as_str(), id.as_str()), (Some("through a"), "2"));

    // A CLI in a folder with no serving host reads the database itself.
    let dir = cli_dir.path().to_path_buf();
    let got = tokio::task::spawn_blocking(move || TestCommand::new(&dir, &["bb", "get", "jobs/1", "--json"]).run())
        .await
        .unwrap();
    assert_eq!(got.code, 0, "{}", got.stderr);
    let got: Value = serde_json::from_str(got.stdout.trim()).unwrap();
    assert_eq!((&got["value"], &got["revision"]), (&json!("through a"), &json!(2)));
}

/// A host folder on the database at `url` with the `step` plugin and `crash.toml`.
fn flow_folder(dir: &Path, url: &str) {
    plugin(&dir.join("plugins"), "step", paddock_test_guests::guests::FLOW_STEP, "[limits]\ntimeout = \"120s\"\n");
    let config =
        format!("[host]\nplugin-state = \"memory\"\n[store]\nbackend = \"postgres\"\nurl = {url:?}\npool = 4\n");
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    std::fs::write(dir.join("crash.toml"), crate::recovery::FLOW).unwrap();
}

/// `paddock ARGS` in `dir`, off the async workers.
async fn cli(dir: &Path, args: &[&str]) -> Ran {
    let (dir, args): (std::path::PathBuf, Vec<String>) = (dir.into(), args.iter().map(|a| a.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        TestCommand::new(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()).run()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_host_is_killed_is_finished_by_another_and_no_finished_step_runs_twice() {
    use std::io::BufRead;
    let Some(url) = paddock_postgres::testing::database_url("hosts_failover") else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    flow_folder(a_dir.path(), &url);
    flow_folder(b_dir.path(), &url);
    let b = serve(b_dir.path(), &[]);

    // Host A runs the flow; it is killed (SIGKILL, by its PID) in the second step.
    let mut a = std::process::Command::new(env!("CARGO_BIN_EXE_paddock"))
        .current_dir(a_dir.path())
        .args(["flow", "run", "crash.toml", "--json"])
        .env_remove("PADDOCK_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = std::io::BufReader::new(a.stdout.take().unwrap()).lines();
    let started: Value = serde_json::from_str(&events.next().unwrap().unwrap()).unwrap();
    let run = started["run"].as_str().unwrap().to_string();
    let mut log = std::io::BufReader::new(a.stderr.take().unwrap()).lines();
    let second_started = log.by_ref().map_while(Result::ok).any(|l| l.contains("second counted run 1 on attempt 1"));
    assert!(second_started, "host A started the second step");
    a.kill().unwrap();
    a.wait().unwrap();

    // Host B finds the run orphaned at its next scan and finishes it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        let ran = cli(b_dir.path(), &["flow", "status", &run, "--json"]).await;
        let status: Value = serde_json::from_str(&ran.stdout).unwrap_or_default();
        if status["run"]["status"] == "succeeded" {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "host B did not finish the run: {status} {}", ran.stderr);
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(status["run"]["output"], "\"done\"");
    assert!(status["run"]["owner"].as_str().unwrap().starts_with(&format!("{}@", b.child.id())), "{status}");
    let steps: Vec<(&str, u64)> = status["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(steps, [("main/first", 1), ("main/second", 2), ("main/third", 1), ("main", 0)], "{status}");
    // The counters on the shared board: each finished step ran once, the interrupted one twice.
    for (step, runs) in [("first", "1"), ("second", "2"), ("third", "1")] {
        let got = cli(b_dir.path(), &["bb", "get", &format!("runs/{step}")]).await;
        assert_eq!((got.code, got.stdout.trim()), (0, runs), "runs/{step}: {}", got.stderr);
    }
}
