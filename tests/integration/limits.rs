//! Every limit ends only the invocation that hit it, with an error naming the
//! agent, the limit and its value; the same host then serves normal agents.

use crate::util::*;
use paddock::caps::log::Source;
use paddock::config::Requested;
use paddock::runtime::RunOptions;
use paddock::sandbox::{InvokeError, LimitHit, Outcome};
use paddock_test_guests::guests;
use std::time::{Duration, Instant};

/// After an adversarial guest, the same host must still serve a normal one.
async fn still_serves(rt: &paddock::runtime::Runtime) {
    let out = output_json(&run(rt, guests::ECHO, r#"{"after":"abuse"}"#).await);
    assert_eq!(out["input"], r#"{"after":"abuse"}"#);
}

#[tokio::test]
async fn infinite_loop_runs_out_of_fuel_naming_the_limit() {
    let rt = runtime("[limits]\nfuel = 50000000\n");
    let outcome = run(&rt, guests::SPIN, "{}").await;
    assert_eq!(error_text(&outcome), "agent \"spin\" ran out of fuel (limit 50000000)");
    assert!(outcome.fuel_consumed >= 50_000_000, "consumed {}", outcome.fuel_consumed);
    still_serves(&rt).await;
}

/// Loads `spec` (compiling it, which a busy machine may take seconds over),
/// then runs it: the outcome, with the time from the run's start to its end.
async fn timed_run(rt: &paddock::runtime::Runtime, spec: &str, input: &str) -> Outcome {
    let agent = rt.load(spec).unwrap_or_else(|e| panic!("load {spec}: {e}"));
    let started = Instant::now();
    let mut outcome = rt.run(&agent, input, &RunOptions::default()).await.expect("options are valid");
    outcome.elapsed = started.elapsed();
    outcome
}

#[tokio::test]
async fn infinite_loop_with_ample_fuel_is_stopped_at_its_wall_clock_deadline() {
    let rt = runtime("[limits]\nfuel = 1000000000000\ntimeout = \"300ms\"\n");
    let outcome = timed_run(&rt, guests::SPIN, "{}").await;
    let took = outcome.elapsed;
    assert_eq!(error_text(&outcome), "agent \"spin\" exceeded its wall-clock limit (timeout 300ms)");
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(1300), "took {took:?}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn memory_bomb_is_stopped_at_its_memory_limit() {
    let rt = runtime("[limits]\nmemory = \"16MiB\"\n");
    let outcome = run(&rt, guests::MEMORY_BOMB, "{}").await;
    assert_eq!(error_text(&outcome), "agent \"memory_bomb\" exceeded its memory limit (16 MiB)");
    // The guest's own report of the failed allocation reaches the log.
    assert!(
        outcome
            .logs
            .iter()
            .any(|r| r.source == Source::Stderr && r.message.contains("memory allocation of 1048576 bytes failed"))
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn unbounded_recursion_overflows_the_stack_limit() {
    let rt = runtime("");
    let outcome = run(&rt, guests::RECURSION, "{}").await;
    assert_eq!(error_text(&outcome), "agent \"recursion\" overflowed its stack (1 MiB of wasm stack)");
    still_serves(&rt).await;
}

#[tokio::test]
async fn giant_log_message_breaks_the_log_size_cap() {
    let rt = runtime("");
    let outcome = run(&rt, guests::GIANT_LOG, r#"{"bytes":10485760}"#).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"giant_log\" broke a host-call limit: log message of 10485760 bytes is over limits.max-log-bytes (65536 bytes)"
    );
    assert!(outcome.logs.is_empty());
    still_serves(&rt).await;
}

#[tokio::test]
async fn log_message_at_the_cap_is_accepted() {
    let rt = runtime("[limits]\nmax-log-bytes = 1000\n");
    let outcome = run(&rt, guests::GIANT_LOG, r#"{"bytes":1000}"#).await;
    assert_eq!(outcome.result.as_deref().ok(), Some("logged"));
    assert_eq!(outcome.logs[0].message.len(), 1000);
}

#[tokio::test]
async fn giant_blackboard_value_is_refused_as_too_large_with_the_limit() {
    let rt = runtime("");
    let outcome = run(&rt, guests::GIANT_VALUE, r#"{"bytes":8388608}"#).await;
    assert_eq!(error_text(&outcome), "agent \"giant_value\" returned an error: Error::TooLarge(1048576)");
    assert_eq!(rt.blackboard().namespace("default").revision(), Ok(0), "nothing was written");
    still_serves(&rt).await;
}

#[tokio::test]
async fn oversized_blackboard_key_is_denied_naming_the_limit() {
    let rt = runtime("");
    let outcome = run(&rt, guests::GIANT_VALUE, r#"{"bytes":1,"key_bytes":600}"#).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"giant_value\" returned an error: Error::Denied(\"blackboard key: a key of 600 bytes is over the limit of 512 bytes\")"
    );
}

#[tokio::test]
async fn guest_blocked_in_a_host_call_is_stopped_at_its_deadline() {
    let rt = runtime("[limits]\ntimeout = \"400ms\"\n");
    let outcome = timed_run(&rt, guests::WATCHER, r#"{"wait_ms":60000}"#).await;
    let took = outcome.elapsed;
    assert_eq!(error_text(&outcome), "agent \"watcher\" exceeded its wall-clock limit (timeout 400ms)");
    assert!(took < Duration::from_millis(1400), "took {took:?}");
    still_serves(&rt).await;
}

#[tokio::test]
async fn stdout_is_captured_line_by_line_and_cut_at_the_output_cap() {
    let rt = runtime("[limits]\nmax-output-bytes = 1000\n");
    let outcome = run(&rt, guests::CHATTY, r#"{"lines":500}"#).await;
    assert_eq!(outcome.result.as_deref().ok(), Some("printed 500"));
    let stdout: Vec<&str> =
        outcome.logs.iter().filter(|r| r.source == Source::Stdout).map(|r| r.message.as_str()).collect();
    // The first 1000 bytes of "line 0\nline 1\n…": whole lines, then the cut one.
    let all: String = (0..500).map(|i| format!("line {i}\n")).collect();
    let expected: Vec<&str> = all[..1000].split_terminator('\n').collect();
    assert_eq!(stdout, expected);
    let host: Vec<&str> =
        outcome.logs.iter().filter(|r| r.source == Source::Host).map(|r| r.message.as_str()).collect();
    assert_eq!(host, ["stdout truncated: the agent wrote more than limits.max-output-bytes (1000 bytes)"]);
    let stderr: Vec<&str> =
        outcome.logs.iter().filter(|r| r.source == Source::Stderr).map(|r| r.message.as_str()).collect();
    assert_eq!(stderr, ["done printing"]);
}

#[tokio::test]
async fn total_log_volume_is_capped_and_the_drop_is_reported() {
    let rt = runtime("[limits]\nmax-log-total-bytes = 100\n");
    let outcome = run(&rt, guests::CHATTY, r#"{"lines":100}"#).await;
    let kept: usize = outcome.logs.iter().filter(|r| r.source != Source::Host).map(|r| r.message.len()).sum();
    assert!(kept <= 100, "kept {kept} bytes");
    let last = outcome.logs.last().unwrap();
    assert_eq!(last.source, Source::Host);
    assert!(
        last.message
            .ends_with("log records dropped: this invocation logged more than limits.max-log-total-bytes (100 bytes)"),
        "{}",
        last.message
    );
}

#[tokio::test]
async fn panic_is_a_crash_with_the_panic_message_in_the_log() {
    let rt = runtime("");
    let outcome = run(&rt, guests::PANICKER, r#""x""#).await;
    assert!(matches!(outcome.result, Err(InvokeError::Crashed { .. })));
    assert_eq!(
        error_text(&outcome),
        "agent \"panicker\" crashed: wasm trap: wasm `unreachable` instruction executed (a Rust guest panics or aborts this way; its stderr is in the log)"
    );
    assert!(
        outcome.logs.iter().any(|r| r.source == Source::Stderr && r.message == "boom: \"x\""),
        "{:?}",
        outcome.logs
    );
    still_serves(&rt).await;
}

#[tokio::test]
async fn input_over_the_io_cap_is_refused_before_the_agent_starts() {
    let rt = runtime("[limits]\nmax-io-bytes = 16\n");
    let outcome = run(&rt, guests::ECHO, r#""0123456789abcdef""#).await;
    assert_eq!(error_text(&outcome), "agent \"echo\" input of 18 bytes is over limits.max-io-bytes (16 bytes)");
    assert_eq!(outcome.fuel_consumed, 0);
}

#[tokio::test]
async fn output_over_the_io_cap_is_a_limit_hit() {
    let rt = runtime("[limits]\nmax-io-bytes = 40\n");
    let outcome = run(&rt, guests::ECHO, r#""0123456789""#).await;
    assert!(
        matches!(outcome.result, Err(InvokeError::Limit { limit: LimitHit::Io { what: "output", .. }, .. })),
        "{:?}",
        outcome.result
    );
}

#[tokio::test]
async fn error_text_over_the_io_cap_is_a_limit_hit() {
    let rt = runtime("[limits]\nmax-io-bytes = 40\n");
    let outcome = run(&rt, guests::GIANT_VALUE, r#"{"bytes":1,"key_bytes":600}"#).await;
    assert_eq!(
        error_text(&outcome),
        "agent \"giant_value\" error text of 82 bytes is over limits.max-io-bytes (40 bytes)"
    );
}

#[tokio::test]
async fn hostile_guests_running_at_once_end_only_their_own_invocations() {
    let rt = runtime("[limits]\nfuel = 200000000\nmemory = \"16MiB\"\n");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            let guest = [guests::SPIN, guests::MEMORY_BOMB, guests::RECURSION, guests::ECHO][i % 4];
            (i % 4, run(&rt, guest, "{}").await)
        }));
    }
    for task in tasks {
        let (kind, outcome) = task.await.unwrap();
        if kind == 3 {
            assert!(outcome.result.is_ok(), "echo failed: {:?}", outcome.result);
        } else {
            assert!(is_limit(&outcome), "guest {kind}: {:?}", outcome.result);
        }
    }
}

#[tokio::test]
async fn manifest_limits_apply_and_are_cut_to_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "greedy", guests::MEMORY_BOMB, "[limits]\nmemory = \"2GiB\"\nfuel = 1000\n");
    let rt = runtime_with_plugins(dir.path(), "[ceiling]\nmemory = \"64MiB\"\n");
    let agent = rt.load("greedy").unwrap();
    assert_eq!(agent.limits.memory, 64 << 20);
    assert_eq!(agent.notes, ["limits.memory (2 GiB) is above the operator's ceiling.memory; using 64 MiB"]);
    let outcome = rt.run(&agent, "{}", &RunOptions::default()).await.unwrap();
    assert_eq!(error_text(&outcome), "agent \"greedy\" ran out of fuel (limit 1000)");
}

#[tokio::test]
async fn run_overrides_lower_limits_but_never_pass_the_ceiling() {
    let rt = runtime("");
    let agent = rt.load(guests::SPIN).unwrap();
    let low = RunOptions { overrides: Requested { fuel: Some(1_000_000), ..Default::default() }, ..Default::default() };
    let outcome = rt.run(&agent, "{}", &low).await.unwrap();
    assert_eq!(error_text(&outcome), "agent \"spin\" ran out of fuel (limit 1000000)");
    let high = RunOptions {
        overrides: Requested { timeout: Some(Duration::from_secs(3600)), ..Default::default() },
        ..Default::default()
    };
    let err = rt.run(&agent, "{}", &high).await.unwrap_err();
    assert_eq!(err.to_string(), "--timeout 1h is above ceiling.timeout (10m)");
}

/// Winch (`engine.compiler = "winch"`) compiles five to seven times faster
/// into slower code; every limit holds as it does on Cranelift's code, in
/// pooled slots and in instances allocated on demand (`engine.pooling =
/// false`, which is also the engine a tiered host serves new versions from).
#[tokio::test]
async fn winch_compiled_agents_are_held_to_every_limit_as_cranelifts_are() {
    for pooling in [true, false] {
        let engine = format!("[engine]\ncompiler = \"winch\"\npooling = {pooling}\nmax-instances = 32\n");
        let rt = runtime(&format!("{engine}[limits]\nfuel = 50000000\nmemory = \"16MiB\"\n"));
        let outcome = run(&rt, guests::SPIN, "{}").await;
        assert_eq!(error_text(&outcome), "agent \"spin\" ran out of fuel (limit 50000000)", "pooling {pooling}");
        let outcome = run(&rt, guests::MEMORY_BOMB, "{}").await;
        assert_eq!(
            error_text(&outcome),
            "agent \"memory_bomb\" exceeded its memory limit (16 MiB)",
            "pooling {pooling}"
        );
        let outcome = run(&rt, guests::RECURSION, "{}").await;
        let overflow = "agent \"recursion\" overflowed its stack (1 MiB of wasm stack)";
        assert_eq!(error_text(&outcome), overflow, "pooling {pooling}");
        still_serves(&rt).await;
        let rt = runtime(&format!("{engine}[limits]\nfuel = 1000000000000\ntimeout = \"300ms\"\n"));
        let outcome = timed_run(&rt, guests::SPIN, "{}").await;
        let timeout = "agent \"spin\" exceeded its wall-clock limit (timeout 300ms)";
        assert_eq!(error_text(&outcome), timeout, "pooling {pooling}");
        assert!(outcome.elapsed < Duration::from_millis(1300), "took {:?}", outcome.elapsed);
    }
}
