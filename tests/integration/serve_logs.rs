//! What a serving host logs: one JSON object a line, the HTTP request and the
//! invocation it caused tied together by the request id.

use crate::util::*;
use paddock_test_guests::guests;
use serde_json::Value;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_lines_parse_and_carry_the_request_id_into_the_invocation() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let token = key(dir.path(), "default", "run");
    let served = serve(dir.path(), &["--log-format", "json"]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/agents/echo/run", served.address);
    let named = client.post(&url).bearer_auth(&token).header("x-request-id", "req-42").body("{}").send().await.unwrap();
    assert_eq!(named.status().as_u16(), 200);
    assert_eq!(named.headers()["x-request-id"], "req-42");
    let unnamed = client.post(&url).bearer_auth(&token).body("{}").send().await.unwrap();
    let made = unnamed.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");

    let key_id = token.split('_').nth(1).unwrap();
    let of = |lines: &[Value], target: &str| {
        lines.iter().find(|l| l["target"] == target && l["span"]["request_id"] == "req-42").cloned()
    };
    let since = Instant::now();
    let (http, invoke) = loop {
        let text = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        if let (Some(h), Some(i)) = (of(&lines, "paddock::http"), of(&lines, "paddock::invoke")) {
            assert!(lines.iter().all(|l| l["timestamp"].is_string()), "a line without a time");
            break (h, i);
        }
        assert!(since.elapsed() < Duration::from_secs(5), "no request and invocation lines for req-42 in:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((http["method"].as_str(), http["path"].as_str()), (Some("POST"), Some("/v1/agents/echo/run")));
    assert_eq!((http["status"].as_u64(), http["span"]["tenant"].as_str()), (Some(200), Some("default")));
    assert_eq!(http["span"]["key"].as_str(), Some(key_id));
    assert_eq!((invoke["agent"].as_str(), invoke["outcome"].as_str()), (Some("echo"), Some("ok")));
    assert_eq!(invoke["tenant"].as_str(), Some("default"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_invocations_and_requests_by_tenant_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "echo", guests::ECHO, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let (run, admin) = (key(dir.path(), "default", "run"), key(dir.path(), "default", "admin"));
    let served = serve(dir.path(), &[]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.address);
    for _ in 0..3 {
        let r = client.post(format!("{base}/v1/agents/echo/run")).bearer_auth(&run).body("{}").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    let unauthenticated = client.get(format!("{base}/v1/runs")).send().await.unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);
    let text = client.get(format!("{base}/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    assert!(has(r#"paddock_invocations_total{tenant="default",agent="echo",outcome="ok"} 3"#), "{text}");
    assert!(text.contains(r#"paddock_invocation_seconds_count{tenant="default",agent="echo"} 3"#), "{text}");
    assert!(text.contains(r#"paddock_fuel_consumed_total{tenant="default",agent="echo"} "#), "{text}");
    let ran =
        r#"paddock_http_requests_total{route="/v1/agents/{name}/run",method="POST",status="200",tenant="default"} 3"#;
    assert!(has(ran), "{text}");
    assert!(has(r#"paddock_http_requests_total{route="/v1/runs",method="GET",status="401",tenant=""} 1"#), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1, "one end mark, at the end");
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_carry_limits_board_ops_flows_refusals_breakers_and_the_code_cache_by_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "prober", guests::PROBER, "[capabilities]\nroutes = [\"fast\"]\n");
    plugin(&plugins, "spin", guests::SPIN, "[limits]\nfuel = 100000\n");
    plugin(&plugins, "step", guests::FLOW_STEP, "");
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    let flow =
        "[flow]\nname = \"greet\"\n[steps.main]\nagent = \"step\"\ninput = { name = \"main\", output = \"hi\" }\n";
    std::fs::write(dir.path().join("flows/greet.toml"), flow).unwrap();
    std::fs::write(
        dir.path().join("paddock.toml"),
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n[tenants.acme]\nagents = [\"prober\", \"spin\", \"step\"]\n\
         routes = [\"fast\"]\nbudget = { tokens-per-day = 19 }\n",
    )
    .unwrap();
    let (run, admin) = (key(dir.path(), "acme", "run"), key(dir.path(), "acme", "admin"));
    let served = serve(dir.path(), &[]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.address);
    let post =
        |path: &str, body: &str| client.post(format!("{base}{path}")).bearer_auth(&run).body(body.to_string()).send();
    // Two LLM calls of 19 tokens on a budget of 19: the second is refused.
    let ops = r#"{"ops":[{"op":"put","key":"k","value":"v"},{"op":"get","key":"k"},{"op":"llm","route":"fast"},{"op":"llm","route":"fast"}]}"#;
    assert_eq!(post("/v1/agents/prober/run", ops).await.unwrap().status().as_u16(), 200);
    assert_eq!(post("/v1/agents/spin/run", "{}").await.unwrap().status().as_u16(), 422);
    let started = post("/v1/flows/greet/runs", "{}").await.unwrap();
    let id = started.json::<Value>().await.unwrap()["run"].as_str().unwrap().to_string();
    // The run's events end when it does.
    client.get(format!("{base}/v1/runs/{id}/events")).bearer_auth(&run).send().await.unwrap().text().await.unwrap();

    let text = client.get(format!("{base}/metrics")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    let has = |line: &str| text.lines().any(|l| l == line);
    for line in [
        r#"paddock_limits_hit_total{tenant="acme",agent="spin",limit="fuel"} 1"#,
        r#"paddock_invocations_in_flight{tenant="acme"} 0"#,
        // The prober's put and get; the flow step's read and swap of its counter.
        r#"paddock_board_ops_total{tenant="acme",op="put"} 1"#,
        r#"paddock_board_ops_total{tenant="acme",op="read"} 2"#,
        r#"paddock_board_ops_total{tenant="acme",op="compare-and-swap"} 1"#,
        r#"paddock_flow_runs_total{tenant="acme",flow="greet",status="started"} 1"#,
        r#"paddock_flow_runs_total{tenant="acme",flow="greet",status="succeeded"} 1"#,
        r#"paddock_flow_steps_total{tenant="acme",flow="greet",outcome="finished"} 1"#,
        r#"paddock_llm_budget_refusals_total{tenant="acme",agent="prober"} 1"#,
        r#"paddock_llm_breaker_state{route="fast",provider="simulated",model="sim-fast",state="closed"} 1"#,
        r#"paddock_llm_breaker_state{route="fast",provider="simulated",model="sim-fast",state="open"} 0"#,
        r#"paddock_llm_cooldown_seconds{route="fast",provider="simulated",model="sim-fast"} 0.0"#,
    ] {
        assert!(has(line), "no line {line} in:\n{text}");
    }
    let loads: u64 = text
        .lines()
        // A tiered host also counts each optimized code swapped in behind Winch's.
        .filter(|l| l.starts_with("paddock_code_cache_loads_total{") && !l.contains(r#"result="optimized""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(loads, 3, "prober, spin and step were each loaded once:\n{text}");
    assert!(text.contains("# TYPE paddock_flow_step_seconds histogram"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_logging_past_its_rate_is_kept_from_the_host_log_with_one_note_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    plugin(&plugins, "chatty", guests::CHATTY, "");
    let config = "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n[limits]\nlog-bytes-per-second = \"2KiB\"\n\
                  [tenants.mallory]\nagents = [\"chatty\"]\n[tenants.acme]\nagents = [\"chatty\"]\n";
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let (mallory, acme) = (key(dir.path(), "mallory", "run"), key(dir.path(), "acme", "run"));
    let served = serve(dir.path(), &["--log-format", "json"]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/agents/chatty/run", served.address);
    let started = Instant::now();
    // 3 × 1,000 lines of ~9 bytes: 27 KB, against 2 KiB a second.
    for _ in 0..3 {
        let ran = client.post(&url).bearer_auth(&mallory).body(r#"{"lines": 1000}"#).send().await.unwrap();
        let body: Value = ran.json().await.unwrap();
        assert_eq!(body["output"], "printed 1000", "{body}");
    }
    let ran = client.post(&url).bearer_auth(&acme).body(r#"{"lines": 10}"#).send().await.unwrap();
    assert_eq!(ran.status().as_u16(), 200);
    let seconds = started.elapsed().as_secs() + 1;

    let agent_lines = |tenant: &str| -> Vec<Value> {
        let text = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "paddock::agent" && l["tenant"] == tenant)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while agent_lines("acme").len() < 11 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(agent_lines("acme").len(), 11, "another tenant's records all reach the host log");
    let lines = agent_lines("mallory");
    let notes = lines
        .iter()
        .filter(|l| l["message"].as_str().unwrap_or("").contains("logged over limits.log-bytes-per-second (2048)"))
        .count();
    let bytes: usize =
        lines.iter().filter(|l| l["source"] == "Stdout").map(|l| l["message"].as_str().unwrap().len()).sum();
    assert!(notes >= 1 && notes as u64 <= seconds, "{notes} notes in {seconds} s");
    assert!(bytes as u64 <= 2048 * seconds, "{bytes} bytes of mallory's records in {seconds} s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_manifest_and_an_unbuilt_plugin_are_logged_once_each_saying_nothing_serves_them() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(plugins.join("broken")).unwrap();
    std::fs::write(plugins.join("broken/agent.toml"), "name = \n").unwrap();
    plugin(&plugins, "unbuilt", "build/agent.wasm", "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\n")
        .unwrap();
    let admin = key(dir.path(), "default", "admin");
    let served = serve(dir.path(), &[]);
    // A new plugin makes the host read the folder again.
    plugin(&plugins, "echo", guests::ECHO, "");
    paddock::gateway::install_crypto();
    let since = Instant::now();
    loop {
        let (_, listed) = call(&served, reqwest::Method::GET, "/v1/plugins", &admin, "").await;
        if listed.as_array().unwrap().iter().any(|p| p["name"] == "echo" && !p["serving"].is_null()) {
            break;
        }
        assert!(since.elapsed() < Duration::from_secs(20), "echo was not served within 20 s: {listed}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(dir.path().join(SERVE_LOG)).unwrap();
    let count = |text: &str| log.lines().filter(|l| l.contains(text)).count();
    let broken: Vec<&str> = log.lines().filter(|l| l.contains("plugin not loaded: ")).collect();
    assert!(broken.len() == 1 && broken[0].contains("broken/agent.toml"), "{log}");
    let unbuilt: Vec<&str> = log.lines().filter(|l| l.contains("not loaded, nothing serves it: ")).collect();
    assert!(unbuilt.len() == 1 && unbuilt[0].contains("unbuilt"), "{log}");
    assert_eq!(count("keeps serving"), 0, "{log}");
}
