//! The `paddock` binary: output on stdout, errors on stderr, a distinct exit
//! code per kind of failure.

use crate::util::*;
use paddock_fake_provider::{Behavior, FakeProvider, Fault};
use paddock_test_guests::guests;

fn in_temp(args: &[&str]) -> (tempfile::TempDir, Ran) {
    let dir = tempfile::tempdir().unwrap();
    let ran = TestCommand::new(dir.path(), args).run();
    (dir, ran)
}

#[test]
fn hello_builds_and_greets_by_name() {
    let plugins = format!("{}/plugins", guests::ROOT);
    let dir = tempfile::tempdir().unwrap();
    let built = TestCommand::new(dir.path(), &["build", "--plugins", &plugins, "hello"]).run();
    assert_eq!(built.code, 0, "{}", built.stderr);
    assert!(built.stdout.starts_with("built hello 0.1.0 -> "), "{}", built.stdout);

    let ran =
        TestCommand::new(dir.path(), &["--plugins", &plugins, "run", "hello", "--input", r#"{"name":"ada"}"#]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let out: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(out["greeting"], "Hello, ada!");
    assert_eq!(out["visits"], 1);
    assert!(ran.stderr.contains("greeting ada"), "the agent's log goes to stderr: {}", ran.stderr);
}

#[test]
fn agent_error_exits_1() {
    let (_d, ran) = in_temp(&["run", guests::GIANT_VALUE, "--input", r#"{"bytes":2000000}"#]);
    assert_eq!(ran.code, 1);
    assert_eq!(ran.stderr.trim_end(), "error: agent \"giant_value\" returned an error: Error::TooLarge(1048576)");
    assert_eq!(ran.stdout, "");
}

#[test]
fn bad_input_json_exits_2() {
    let (_d, ran) = in_temp(&["run", guests::ECHO, "--input", "{nope"]);
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.starts_with("error: --input is not valid JSON: "), "{}", ran.stderr);
}

#[test]
fn limit_above_the_ceiling_exits_2() {
    let (_d, ran) = in_temp(&["run", guests::ECHO, "--memory", "4096"]);
    assert_eq!(ran.code, 2);
    assert_eq!(ran.stderr.trim_end(), "error: --memory 4 GiB is above ceiling.memory (1 GiB)");
}

#[test]
fn fuel_limit_exits_3_naming_the_limit() {
    let (_d, ran) = in_temp(&["run", guests::SPIN, "--fuel", "1000000"]);
    assert_eq!(ran.code, 3);
    assert_eq!(ran.stderr.trim_end(), "error: agent \"spin\" ran out of fuel (limit 1000000)");
}

#[test]
fn memory_and_timeout_flags_apply() {
    let (_d, ran) = in_temp(&["run", guests::MEMORY_BOMB, "--memory", "8"]);
    assert_eq!(ran.code, 3);
    assert!(ran.stderr.ends_with("error: agent \"memory_bomb\" exceeded its memory limit (8 MiB)\n"), "{}", ran.stderr);
    let (_d, ran) = in_temp(&["run", guests::WATCHER, "--timeout", "200ms"]);
    assert_eq!(ran.code, 3);
    assert_eq!(ran.stderr.trim_end(), "error: agent \"watcher\" exceeded its wall-clock limit (timeout 200ms)");
}

#[test]
fn unloadable_files_exit_4_with_their_reason() {
    let (_d, ran) = in_temp(&["run", "/nowhere/x.wasm"]);
    assert_eq!((ran.code, ran.stderr.trim_end()), (4, "error: /nowhere/x.wasm: no such file"));
    let other = format!("{}/other-world.wat", guests::FIXTURES);
    let (_d, ran) = in_temp(&["run", &other]);
    assert_eq!(ran.code, 4);
    assert!(
        ran.stderr.contains("does not fit world paddock:agent/agent-world@0.1.0: missing export"),
        "{}",
        ran.stderr
    );
    let (_d, ran) = in_temp(&["run", "nosuchplugin"]);
    assert_eq!(ran.code, 4);
    assert!(
        ran.stderr.starts_with("error: no plugin named \"nosuchplugin\" in ./plugins (found: none)"),
        "{}",
        ran.stderr
    );
}

#[test]
fn bad_configuration_exits_5_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[limits]\ntimeout = \"forever\"\n").unwrap();
    let ran = TestCommand::new(dir.path(), &["run", guests::ECHO]).run();
    assert_eq!(ran.code, 5);
    assert!(ran.stderr.starts_with("error: paddock.toml: TOML parse error at line 2, column 11"), "{}", ran.stderr);
    assert!(ran.stderr.contains("`forever` is not a duration"), "{}", ran.stderr);
}

#[test]
fn crash_exits_6() {
    let (_d, ran) = in_temp(&["run", guests::PANICKER, "--input", "1"]);
    assert_eq!(ran.code, 6);
    assert!(ran.stderr.contains("boom: 1"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("error: agent \"panicker\" crashed: wasm trap: wasm `unreachable` instruction executed"),
        "{}",
        ran.stderr
    );
}

#[test]
fn failing_build_command_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "broken", "out.wasm", "[build]\ncommand = \"echo compiling; exit 3\"\n");
    let ran = TestCommand::new(dir.path(), &["build", "."]).run();
    assert_eq!(ran.code, 7);
    assert!(ran.stderr.contains("compiling"), "build output is shown: {}", ran.stderr);
    assert!(ran.stderr.contains("error: broken: build command exited with 3 after"), "{}", ran.stderr);
}

#[test]
fn build_that_produces_no_component_exits_7() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "liar", "out.wasm", "[build]\ncommand = \"true\"\n");
    let ran = TestCommand::new(dir.path(), &["build", "."]).run();
    assert_eq!(ran.code, 7);
    assert!(ran.stderr.contains("the build command succeeded but liar/out.wasm does not exist"), "{}", ran.stderr);
}

#[test]
fn build_copies_a_component_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let command = format!("[build]\ncommand = \"cp {} out.wasm\"\n", guests::ECHO);
    plugin(dir.path(), "copied", "out.wasm", &command);
    let ran = TestCommand::new(dir.path(), &["build", "."]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.starts_with("built copied 1.0.0 -> copied/out.wasm ("), "{}", ran.stdout);
    let ran = TestCommand::new(dir.path(), &["--plugins", ".", "run", "copied", "--input", "[1]"]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
}

#[test]
fn json_output_carries_the_output_as_json_with_logs_and_fuel() {
    let (_d, ran) = in_temp(&["run", guests::ECHO, "--input", "{\"a\":1}", "--json"]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let report: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(report["agent"], "echo");
    assert_eq!(report["error"], serde_json::Value::Null);
    assert_eq!(report["logs"][0]["message"], "echo 7 bytes");
    assert!(report["fuel_consumed"].as_u64().unwrap() > 0);
    // The agent's output is JSON, so it is a JSON value here, not a string of it.
    assert_eq!(report["output"]["input"], "{\"a\":1}");
}

#[test]
fn inspect_reports_the_fit_and_exits_4_on_a_misfit() {
    let (_d, ran) = in_temp(&["inspect", guests::ECHO]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stdout.contains("exports:\n  paddock:agent/agent@0.1.0\n"), "{}", ran.stdout);
    assert!(ran.stdout.ends_with("fits paddock:agent/agent-world@0.1.0: yes\n"), "{}", ran.stdout);
    let other = format!("{}/other-world.wat", guests::FIXTURES);
    let (_d, ran) = in_temp(&["inspect", &other]);
    assert_eq!(ran.code, 4);
    assert!(ran.stdout.contains("  foo:bar/baz   <- not provided by this host\n"), "{}", ran.stdout);
    assert!(ran.stdout.contains("fits paddock:agent/agent-world@0.1.0: no: missing export"), "{}", ran.stdout);
}

#[test]
fn plugins_list_shows_each_plugin_and_broken_manifests() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "good", guests::ECHO, "description = \"fine\"\n");
    std::fs::create_dir(dir.path().join("bad")).unwrap();
    std::fs::write(
        dir.path().join("bad/agent.toml"),
        "name = \"Bad Name\"\nversion = \"1.0.0\"\ncomponent = \"x.wasm\"\n",
    )
    .unwrap();
    let ran = TestCommand::new(dir.path(), &["--plugins", ".", "plugins", "list", "--json"]).run();
    assert_eq!(ran.code, 4);
    let rows: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(
        rows[0]["error"].as_str().unwrap(),
        "./bad/agent.toml: name: `Bad Name` is not an agent name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
    );
    assert_eq!((rows[1]["name"].as_str(), rows[1]["built"].as_bool()), (Some("good"), Some(true)));
}

#[test]
fn a_durable_blackboard_keeps_state_across_host_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\n").unwrap();
    for expected in 1..=3 {
        let ran = TestCommand::new(dir.path(), &["run", guests::HELLO, "--input", r#"{"name":"ada"}"#]).run();
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let out: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
        assert_eq!(out["visits"], expected, "run {expected}");
    }
    assert!(dir.path().join(".paddock/blackboard.sqlite").is_file());
}

#[test]
fn a_command_in_a_subfolder_uses_the_nearest_paddock_toml_its_plugins_and_its_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\n").unwrap();
    plugin(&dir.path().join("plugins"), "hello", guests::HELLO, "");
    let below = dir.path().join("plugins/hello");
    for (visits, folder) in [(1, dir.path()), (2, below.as_path())] {
        let ran = TestCommand::new(folder, &["run", "hello", "--input", r#"{"name":"ada"}"#]).run();
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let out: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
        assert_eq!(out["visits"], visits, "one board for both, the file's: {out}");
    }
    assert!(dir.path().join(".paddock/blackboard.sqlite").is_file());
    // Not even the data folder the environment names for a host with no file.
    assert!(!below.join(DATA_DIR).exists(), "nothing is kept in the agent's folder");
}

#[test]
fn with_no_paddock_toml_up_to_the_root_data_goes_to_the_users_folder_and_none_is_made_here() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().join("agent");
    std::fs::create_dir_all(&here).unwrap();
    assert_eq!(paddock::config::nearest_file(&here), None, "no paddock.toml above the temporary folder");
    let (home, xdg, named) = (dir.path().join("home"), dir.path().join("xdg"), dir.path().join("named"));
    for (data, xdg_home, kept) in [
        (None, None, home.join(".local/share/paddock")),
        (None, Some(xdg.as_path()), xdg.join("paddock")),
        (Some(named.as_path()), Some(xdg.as_path()), named.clone()),
    ] {
        let ran = TestCommand::new(&here, &["run", guests::ECHO])
            .env("PADDOCK_DATA_DIR", data)
            .env("XDG_DATA_HOME", xdg_home)
            .env("HOME", Some(home.as_path()))
            .run();
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(kept.join("ledger.sqlite").is_file(), "the ledger is kept in {}", kept.display());
    }
    let made: Vec<_> = std::fs::read_dir(&here).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(made.is_empty(), "nothing is made in the current folder: {made:?}");
}

#[test]
fn an_unreadable_board_file_stops_the_host_naming_the_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "[blackboard]\nstore = \"durable\"\npath = \"board.sqlite\"\n")
        .unwrap();
    std::fs::write(dir.path().join("board.sqlite"), "this is not a SQLite file, only text of some length").unwrap();
    let ran = TestCommand::new(dir.path(), &["run", guests::ECHO]).run();
    assert_eq!(ran.code, 6);
    assert!(
        ran.stderr.starts_with(
            "error: cannot start the host: blackboard.path: storage failure: ./board.sqlite: file is not a database"
        ),
        "{}",
        ran.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_check_reports_each_target_and_exits_8_when_one_fails() {
    let (good, bad) = (FakeProvider::start().await.unwrap(), FakeProvider::start().await.unwrap());
    bad.set_default(Behavior::Fault(Fault::Unauthorized));
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "{}{}[routes.fast]\ntargets = [{{ provider = \"good\", model = \"m1\" }}, {{ provider = \"bad\", model = \"m2\" }}]\n",
        fake_provider("good", "openai", &good),
        fake_provider("bad", "anthropic", &bad)
    );
    std::fs::write(dir.path().join("paddock.toml"), toml).unwrap();
    let path = dir.path().to_path_buf();
    let ran = tokio::task::spawn_blocking(move || TestCommand::new(&path, &["providers", "check", "--json"]).run())
        .await
        .unwrap();
    assert_eq!(ran.code, 8, "{}", ran.stderr);
    let reports: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(reports[0]["provider"], "good");
    assert_eq!(reports[0]["status"], "ok");
    assert_eq!(reports[0]["breaker"], "closed");
    assert_eq!(reports[1]["provider"], "bad");
    assert!(reports[1]["status"].as_str().unwrap().starts_with("auth (HTTP 401)"), "{}", reports[1]);
    assert_eq!((good.request_count(), bad.request_count()), (1, 1));

    let path = dir.path().to_path_buf();
    let listed =
        tokio::task::spawn_blocking(move || TestCommand::new(&path, &["providers", "list"]).run()).await.unwrap();
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("fast         bad              anthropic  m2"), "{}", listed.stdout);
    assert_eq!(good.request_count(), 1, "list makes no request");
}

#[test]
fn gc_in_a_folder_with_nothing_kept_forgets_nothing_and_makes_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let ran = TestCommand::new(dir.path(), &["gc"]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        ran.stdout.trim(),
        "forgot 0 finished runs, 0 settled questions, 0 dead letters (0 bytes), 0 kept versions and 0 per-day usage rows"
    );
    assert!(!dir.path().join(".paddock/flows.sqlite").exists(), "gc makes no flow store");
    assert!(!dir.path().join(".paddock/ledger.sqlite").exists(), "nor a ledger");
}

/// `paddock usage | head -1`: a reader that stops early ends a command
/// quietly, killed by SIGPIPE as `head` expects of any command, never by a
/// panic on the broken pipe.
#[test]
fn a_reader_that_stops_early_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    for args in [&["usage"][..], &["plugins", "list"]] {
        // The reader is gone before the command writes its first line.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = paddock_in(dir.path()).args(args).stdout(writer).output().unwrap();
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {:?}", out.status);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

/// `paddock serve --help` names every route the host answers.
#[test]
fn serve_help_names_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let help = TestCommand::new(dir.path(), &["serve", "--help"]).run();
    assert_eq!(help.code, 0, "{}", help.stderr);
    let routes = [
        "POST /v1/agents/NAME/run",
        "GET /v1/plugins",
        "POST /v1/plugins/NAME/approve",
        "GET /v1/flows",
        "POST /v1/flows/NAME/runs",
        "POST /v1/flows/run",
        "GET /v1/runs",
        "GET /v1/runs/ID",
        "GET /v1/runs/ID/events",
        "POST /v1/runs/ID/cancel",
        "POST /v1/runs/ID/resume",
        "GET /v1/runs/ID/journal?step=PATH",
        "POST /v1/runs/ID/replay",
        "GET /v1/approvals",
        "POST /v1/approvals/ID",
        "GET /v1/dlq",
        "GET|DELETE /v1/dlq/ID",
        "POST /v1/dlq/ID/retry",
        "GET /v1/board",
        "GET|PUT|DELETE /v1/board/keys/KEY",
        "GET /v1/board/keys/KEY/history",
        "GET /v1/board/history",
        "GET /v1/board/watch",
        "GET /v1/usage",
        "GET /v1/providers",
        "GET /v1/providers/hour",
        "POST /v1/providers/check",
        "GET /v1/tenants",
        "POST /v1/admin/reload",
        "GET /metrics",
        "POST /v1/chat/completions",
        "POST /v1/embeddings",
        "GET /v1/models",
        "POST /v1/messages",
        "/mcp",
        "GET / (sign in with a key)",
        "POST|DELETE /console/session",
        "GET /console/whoami",
        "GET /v1/health",
    ];
    let missing: Vec<&str> = routes.iter().copied().filter(|r| !help.stdout.contains(r)).collect();
    assert!(missing.is_empty(), "missing {missing:?} in:\n{}", help.stdout);
}

/// `paddock flow check` refuses a spec naming an agent the plugins folder
/// does not have, naming the step, as `flow run` would before starting.
#[test]
fn flow_check_refuses_an_agent_that_is_not_in_the_plugins_folder() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    let spec = |agent: &str| format!("[flow]\nname = \"greet\"\n[steps.main]\nagent = {agent:?}\n");
    std::fs::write(dir.path().join("typo.toml"), spec("stpe")).unwrap();
    std::fs::write(dir.path().join("good.toml"), spec("step")).unwrap();
    let typo = TestCommand::new(dir.path(), &["flow", "check", "typo.toml"]).run();
    assert_eq!(typo.code, 4, "{}", typo.stderr);
    assert_eq!(
        typo.stderr,
        "error: typo.toml: steps.main.agent: no plugin named \"stpe\" in ./plugins (found: step)\n"
    );
    let good = TestCommand::new(dir.path(), &["flow", "check", "good.toml"]).run();
    assert_eq!((good.code, good.stdout.as_str()), (0, "good.toml: flow greet is valid: 1 steps, agents step\n"));
}

/// An author widening their own agent is not stopped by a hold in a one-shot
/// `paddock run`: it runs, says what a serving host would hold it for, and
/// records nothing as accepted, so a serving host still holds it.
#[test]
fn a_one_shot_run_of_a_wider_version_runs_and_says_a_serving_host_would_hold_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nplugin-state = \"durable\"\n").unwrap();
    let host = || {
        let toml = format!("[host]\nplugins = {:?}\nplugin-state = \"durable\"\n", plugins.display().to_string());
        paddock::runtime::Runtime::new(settings_in(dir.path(), &toml)).unwrap()
    };
    // A serving host accepted the first version's capabilities.
    let first = host().load("echo").unwrap();
    // The author adds a route; the new manifest is a new version.
    let wider =
        "name = \"echo\"\nversion = \"1.1.0\"\ncomponent = \"agent.wasm\"\n[capabilities]\nroutes = [\"fast\"]\n";
    std::fs::write(plugins.join("echo/agent.toml"), wider).unwrap();
    let ran = TestCommand::new(dir.path(), &["run", "echo", "--input", r#"{"n":1}"#]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let v2 = paddock::plugins::Manifest::load(&plugins.join("echo/agent.toml")).unwrap().version_id(&first.hash);
    assert!(
        ran.stderr.contains(&format!(
            "version {v2} asks for route \"fast\", beyond the version last accepted: it runs here, once; a serving \
             host holds it until `paddock plugins approve echo {v2}`"
        )),
        "{}",
        ran.stderr
    );
    // Nothing was accepted: a serving host holds it.
    let held = host().load("echo").err().expect("held").to_string();
    assert!(held.contains(&format!("version {v2} is held")), "{held}");
}
