//! Budgets through real guests: concurrent agents racing one budget never
//! spend past it, refusals name who, which budget and which window, and the
//! ledger still holds after a restart.

use crate::util::*;
use paddock::runtime::{RunOptions, Runtime};
use paddock_test_guests::guests;
use serde_json::{Value, json};

fn tenant(name: &str) -> RunOptions {
    RunOptions { tenant: Some(name.into()), ..Default::default() }
}

/// Today's UTC date, as budget windows name it.
fn today() -> String {
    paddock::quota::window_names(std::time::SystemTime::now()).0
}

/// Runs the prober for tenant `a`, making `calls` LLM calls on `fast`, and
/// returns each answer.
async fn spend(rt: &Runtime, calls: usize) -> Vec<Value> {
    let ops: Vec<Value> = (0..calls).map(|_| json!({ "op": "llm", "route": "fast" })).collect();
    let input = json!({ "ops": ops }).to_string();
    let out = output_json(&run_with(rt, "prober", &input, &tenant("a")).await);
    out.as_array().cloned().unwrap_or_default()
}

fn host(dir: &std::path::Path, extra: &str) -> Runtime {
    plugin(dir, "prober", guests::PROBER, "[capabilities]\nroutes = [\"fast\"]\n");
    runtime_with_plugins(
        dir,
        &format!(
            "{extra}\n[tenants.a]\nagents = [\"prober\"]\nroutes = [\"fast\"]\nbudget = {{ tokens-per-day = 1000 }}\n"
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_agents_racing_one_budget_never_spend_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let rt = host(dir.path(), "");
    // Each call: "hello" is 3 input tokens, max-tokens 16 → a reservation of
    // 19, and the simulated provider uses exactly that. 1000 / 19 = 52 calls.
    let mut runs = Vec::new();
    for _ in 0..16 {
        let rt = rt.clone();
        runs.push(tokio::spawn(async move { spend(&rt, 10).await }));
    }
    let mut answers = Vec::new();
    for r in runs {
        answers.extend(r.await.unwrap());
    }
    let ok = answers.iter().filter(|a| a["ok"].is_string()).count();
    let refused: Vec<&str> = answers.iter().filter_map(|a| a["err"].as_str()).collect();
    assert_eq!((ok, refused.len()), (52, 108));
    let prefix = format!("budget exceeded: tenant \"a\" would go over its tokens-per-day budget for {}", today());
    for r in &refused {
        assert!(r.starts_with(&prefix), "{r}");
        assert!(r.contains("(tenants.a.budget.tokens-per-day = 1000)"), "{r}");
    }
    let usage = rt.ledger().unwrap().usage(Some("a"));
    let day = usage.iter().find(|u| u.agent.is_none() && u.window == today()).unwrap();
    assert_eq!((day.requests, day.input_tokens + day.output_tokens, day.refusals), (52, 988, 108));
}

#[tokio::test]
async fn an_agent_budget_refusal_names_the_agent_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "prober", guests::PROBER, "[capabilities]\nroutes = [\"fast\"]\n");
    let rt = runtime_with_plugins(
        dir.path(),
        "[tenants.a]\nagents = [\"prober\"]\nroutes = [\"fast\"]\nagent-budgets.prober = { tokens-per-day = 30 }\n",
    );
    let answers = spend(&rt, 2).await;
    assert!(answers[0]["ok"].is_string(), "{answers:?}");
    let err = answers[1]["err"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "budget exceeded: agent \"prober\" of tenant \"a\" would go over its tokens-per-day budget for {} (tenants.a.agent-budgets.prober.tokens-per-day = 30)",
            today()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn the_ledger_still_holds_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let durable = "ledger = \"durable\"";
    {
        let rt = host(dir.path(), durable);
        let answers = spend(&rt, 60).await;
        assert_eq!(answers.iter().filter(|a| a["ok"].is_string()).count(), 52);
        rt.ledger().unwrap().flush().unwrap();
    }
    assert!(dir.path().join(".paddock/ledger.sqlite").is_file());
    let rt = host(dir.path(), durable);
    let answers = spend(&rt, 1).await;
    let err = answers[0]["err"].as_str().unwrap_or_default();
    assert!(err.contains("988 used"), "the restarted host refuses on what was spent before: {answers:?}");
    let rows = paddock::quota::read_usage(&dir.path().join(".paddock/ledger.sqlite"), Some("a")).unwrap();
    let day = rows.iter().find(|u| u.agent.is_none() && u.window == today()).unwrap();
    assert_eq!(day.input_tokens + day.output_tokens, 988);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_abandoned_when_its_invocation_times_out_keeps_no_budget_reserved() {
    use paddock_fake_provider::{Behavior, FakeProvider, Fault, Reply};
    let fake = FakeProvider::start().await.unwrap();
    fake.push(Behavior::Fault(Fault::StallBeforeFirstByte { ms: 10_000 }));
    fake.set_default(Behavior::Reply(Reply::text("fine")));
    let dir = tempfile::tempdir().unwrap();
    plugin(dir.path(), "prober", guests::PROBER, "[capabilities]\nroutes = [\"fast\"]\n");
    // A call reserves 19 tokens of the 30: a leaked reservation would refuse the next call.
    let toml = format!(
        "{}[routes.fast]\ntargets = [{{ provider = \"f\", model = \"m\" }}]\n[tenants.a]\nagents = [\"prober\"]\nroutes = [\"fast\"]\nbudget = {{ tokens-per-day = 30 }}\n",
        fake_provider("f", "openai", &fake)
    );
    let rt = runtime_with_plugins(dir.path(), &toml);
    let prober = rt.load("prober").unwrap();
    let ops = json!({ "ops": [{ "op": "llm", "route": "fast" }] }).to_string();
    let short = RunOptions {
        overrides: paddock::config::Requested {
            timeout: Some(std::time::Duration::from_millis(300)),
            ..Default::default()
        },
        ..tenant("a")
    };
    let stalled = rt.run(&prober, &ops, &short).await.unwrap();
    assert!(is_limit(&stalled), "the stalled call outlives its invocation: {:?}", stalled.result);
    let answers = output_json(&rt.run(&prober, &ops, &tenant("a")).await.unwrap());
    assert_eq!(answers[0], json!({ "ok": "fine" }));
    fake.shutdown().await;
}
