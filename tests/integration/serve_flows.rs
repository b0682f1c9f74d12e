//! The flow API of a real `paddock serve`: flows started by name, their
//! events streamed as they happen, idempotent starts, and every run, dead
//! letter and question kept to its own tenant.

use crate::util::*;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;

/// A two-step flow answering "hello WHO" for `{"who": WHO}`.
pub(crate) const GREET: &str = r#"
[flow]
name = "greet"
[steps.main]
kind = "sequence"
steps = ["first", "second"]
[steps.first]
agent = "step"
input = { name = "first", output = "{{input/who}}" }
[steps.second]
agent = "step"
input = { name = "second", output = "hello {{steps.first}}" }
"#;

const ASK: &str = r#"
[flow]
name = "ask"
[steps.main]
kind = "approval"
question = "Ship it?"
options = ["ship", "hold"]
timeout = "60s"
"#;

const FAN: &str = r#"
[flow]
name = "fan"
[steps.main]
kind = "parallel"
for-each = "input"
do = "item"
on-item-error = "dead_letter"
[steps.item]
agent = "step"
input = { name = "{{item}}", fail = "{{item}} fails" }
"#;

const SLOW: &str = r#"
[flow]
name = "slow"
[steps.main]
kind = "sequence"
steps = ["wait", "after"]
[steps.wait]
agent = "step"
input = { name = "wait", wait_ms = 60000 }
[steps.after]
agent = "step"
input = { name = "after" }
"#;

/// Tenants `a` and `b` may both run `step`, each with an `operate` key, and
/// `c` may run nothing, with a `run` key (the keys written to `tokens.json`); the flows folder holds `greet`, `ask`, `fan`,
/// `slow` and a broken `bad`.
fn setup(dir: &Path) -> Served {
    plugin(&dir.join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"a\"\n\
         [tenants.a]\nagents = [\"step\"]\n[tenants.b]\nagents = [\"step\"]\n[tenants.c]\nagents = []\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let bad = "[flow]\nname = \"bad\"\n[steps.main]\nkind = \"loop\"\n";
    for (name, text) in [("greet", GREET), ("ask", ASK), ("fan", FAN), ("slow", SLOW), ("bad", bad)] {
        std::fs::write(flows.join(format!("{name}.toml")), text).unwrap();
    }
    let tokens = json!({ "a": key(dir, "a", "operate"), "b": key(dir, "b", "operate"), "c": key(dir, "c", "run") });
    std::fs::write(dir.join("tokens.json"), tokens.to_string()).unwrap();
    paddock::gateway::install_crypto();
    serve(dir, &[])
}

struct Api {
    client: reqwest::Client,
    base: String,
    /// The API key of each tenant.
    tokens: Value,
}

impl Api {
    fn new(served: &Served) -> Api {
        let tokens = serde_json::from_str(&std::fs::read_to_string(served.dir.join("tokens.json")).unwrap()).unwrap();
        Api { client: reqwest::Client::new(), base: format!("http://{}", served.address), tokens }
    }

    /// A request acting for `tenant`: with its key.
    fn request(&self, method: reqwest::Method, path: &str, tenant: &str) -> reqwest::RequestBuilder {
        let token = self.tokens[tenant].as_str().unwrap_or_else(|| panic!("no key for tenant {tenant}"));
        self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token)
    }

    async fn send(&self, method: &str, path: &str, tenant: &str, body: &str, key: Option<&str>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.request(method, path, tenant);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.body(body.to_string()).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, tenant: &str) -> (u16, Value) {
        self.send("GET", path, tenant, "", None).await
    }

    /// The events of a run, read until the stream ends: `(event, step)` pairs.
    async fn events(&self, run: &str, tenant: &str) -> Vec<(String, String)> {
        let path = format!("/v1/runs/{run}/events");
        let text = self.request(reqwest::Method::GET, &path, tenant).send().await.unwrap().text().await.unwrap();
        text.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .map(|e| (e["event"].as_str().unwrap().to_string(), e["step"].as_str().unwrap_or("").to_string()))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_started_by_name_streams_its_events_and_shows_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path());
    let api = Api::new(&served);
    let (status, started) = api.send("POST", "/v1/flows/greet/runs", "a", r#"{"who": "ada"}"#, None).await;
    assert_eq!((status, &started["status"], &started["flow"]), (202, &json!("running"), &json!("greet")));
    let run = started["run"].as_str().unwrap().to_string();
    assert_eq!(started["links"]["events"], format!("/v1/runs/{run}/events"));

    // Read from the first event, however late the subscriber comes, to the end.
    let pairs = |list: &[(&str, &str)]| list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
    assert_eq!(
        api.events(&run, "a").await,
        pairs(&[
            ("run-started", ""),
            ("step-started", "main"),
            ("step-started", "main/first"),
            ("step-finished", "main/first"),
            ("step-started", "main/second"),
            ("step-finished", "main/second"),
            ("step-finished", "main"),
            ("run-finished", ""),
        ])
    );
    let (status, shown) = api.get(&format!("/v1/runs/{run}"), "a").await;
    assert_eq!((status, &shown["status"], &shown["output"]), (200, &json!("succeeded"), &json!("hello ada")));
    let paths: Vec<&str> = shown["steps"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["main/first", "main/second", "main"], "in the order they were written");

    let (status, waited) = api.send("POST", "/v1/flows/greet/runs?wait=true", "a", r#"{"who": "bo"}"#, None).await;
    assert_eq!((status, &waited["status"], &waited["output"]), (200, &json!("succeeded"), &json!("hello bo")));
    let (_, listed) = api.get("/v1/runs?flow=greet&status=succeeded", "a").await;
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(ids, [waited["run"].as_str().unwrap(), run.as_str()], "newest first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_starts_one_run_and_refuses_another_input() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path());
    let api = Api::new(&served);
    let input = r#"{"who": "ada"}"#;
    let (first, started) = api.send("POST", "/v1/flows/greet/runs?wait=true", "a", input, Some("order-7")).await;
    let (again, repeated) = api.send("POST", "/v1/flows/greet/runs", "a", input, Some("order-7")).await;
    assert_eq!((first, again), (200, 200));
    assert_eq!((&repeated["run"], &repeated["output"]), (&started["run"], &json!("hello ada")));
    let (_, listed) = api.get("/v1/runs?flow=greet", "a").await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "one run for one key");

    let (status, refused) = api.send("POST", "/v1/flows/greet/runs", "a", r#"{"who": "bo"}"#, Some("order-7")).await;
    let run = started["run"].as_str().unwrap();
    assert_eq!(
        (status, refused["error"]["message"].as_str().unwrap()),
        (409, format!("this idempotency key started run {run} with another input").as_str())
    );
    // The same key is another run for another tenant.
    let (status, other) = api.send("POST", "/v1/flows/greet/runs?wait=true", "b", input, Some("order-7")).await;
    assert_eq!(status, 200);
    assert_ne!(other["run"], started["run"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_runs_dead_letters_and_questions_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path());
    let api = Api::new(&served);
    let (_, fan) = api.send("POST", "/v1/flows/fan/runs?wait=true", "a", r#"["x"]"#, None).await;
    assert_eq!((&fan["status"], &fan["output"]), (&json!("succeeded"), &json!([null])));
    let run = fan["run"].as_str().unwrap();
    let no_run = json!({"kind": "not-found", "message": format!("no run with id {run:?}")});
    assert_eq!(api.get(&format!("/v1/runs/{run}"), "b").await, (404, json!({ "error": no_run })));
    assert_eq!(api.get(&format!("/v1/runs/{run}/events"), "b").await, (404, json!({ "error": no_run })));
    assert_eq!(api.get("/v1/runs", "b").await, (200, json!([])));

    let (_, dead) = api.get("/v1/dlq", "a").await;
    let dead_id = dead[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        (&dead[0]["step"], &dead[0]["error"]),
        (&json!("main[0]/item"), &json!("agent \"step\" returned an error: x fails"))
    );
    assert_eq!(api.get("/v1/dlq", "b").await, (200, json!([])));
    let no_dead = json!({"error": {"kind": "not-found", "message": format!("no dead letter with id {dead_id:?}")}});
    for method in ["GET", "DELETE"] {
        assert_eq!(api.send(method, &format!("/v1/dlq/{dead_id}"), "b", "", None).await, (404, no_dead.clone()));
    }
    assert_eq!(api.send("POST", &format!("/v1/dlq/{dead_id}/retry"), "b", "", None).await, (404, no_dead.clone()));
    let (status, shown) = api.get(&format!("/v1/dlq/{dead_id}"), "a").await;
    assert_eq!((status, &shown["input"]), (200, &json!(r#"{"fail":"x fails","name":"x"}"#)));
    assert_eq!(
        api.send("DELETE", &format!("/v1/dlq/{dead_id}"), "a", "", None).await,
        (200, json!({"dropped": dead_id}))
    );

    let (status, asking) = api.send("POST", "/v1/flows/ask/runs", "a", "", None).await;
    assert_eq!(status, 202);
    let question = loop {
        let (_, waiting) = api.get("/v1/approvals", "a").await;
        if let Some(q) = waiting.as_array().unwrap().first() {
            break q.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let id = question["id"].as_str().unwrap();
    assert_eq!(api.get("/v1/approvals", "b").await, (200, json!([])));
    let answer = r#"{"option": "ship", "by": "eve"}"#;
    let no_question = json!({"error": {"kind": "not-found", "message": format!("no approval with id {id:?}")}});
    assert_eq!(api.send("POST", &format!("/v1/approvals/{id}"), "b", answer, None).await, (404, no_question));
    let (status, answered) = api.send("POST", &format!("/v1/approvals/{id}"), "a", answer, None).await;
    assert_eq!((status, &answered["answer"]), (200, &json!("ship")));
    let ask_run = asking["run"].as_str().unwrap();
    assert_eq!(api.events(ask_run, "a").await.last().unwrap().0, "run-finished");
    let (_, done) = api.get(&format!("/v1/runs/{ask_run}"), "a").await;
    assert_eq!((&done["status"], &done["output"]), (&json!("succeeded"), &json!("ship")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_starts_are_refused_naming_the_flow_the_file_or_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path());
    let api = Api::new(&served);
    let refused =
        |status: u16, kind: &str, message: String| (status, json!({"error": {"kind": kind, "message": message}}));
    for name in ["nope", "..%2Fpaddock", "Greet"] {
        let decoded = name.replace("%2F", "/");
        assert_eq!(
            api.send("POST", &format!("/v1/flows/{name}/runs"), "a", "{}", None).await,
            refused(404, "not-found", format!("no flow named {decoded:?} in ./flows"))
        );
    }
    let invalid = "./flows/bad.toml: steps.main.kind: unknown kind \"loop\" (agent, sequence, parallel, vote, branch, saga, approval, machine)";
    assert_eq!(api.send("POST", "/v1/flows/bad/runs", "a", "{}", None).await, refused(422, "invalid", invalid.into()));
    assert_eq!(
        api.send("POST", "/v1/flows/greet/runs", "a", "{who", None).await,
        refused(400, "bad-request", "the input is not valid JSON: key must be a string at line 1 column 2".into())
    );
    assert_eq!(
        api.send("POST", "/v1/flows/greet/runs", "a", "{}", Some(&"k".repeat(129))).await,
        refused(400, "bad-request", "idempotency-key must be 1 to 128 visible ASCII characters".into())
    );
    assert_eq!(api.send("POST", "/v1/flows/greet/runs", "c", "{}", None).await.1["error"]["kind"], "denied");
    let (status, listed) = api.get("/v1/flows", "a").await;
    assert_eq!(status, 200);
    let names: Vec<(&str, bool)> =
        listed.as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap(), f["error"].is_null())).collect();
    assert_eq!(names, [("ask", true), ("bad", false), ("fan", true), ("greet", true), ("slow", true)]);
    assert_eq!(listed[1]["error"], invalid);
    assert_eq!(api.get("/v1/runs", "a").await, (200, json!([])), "nothing started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_run_stops_its_agent_and_starts_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let served = setup(dir.path());
    let api = Api::new(&served);
    let (_, started) = api.send("POST", "/v1/flows/slow/runs", "a", "", None).await;
    let run = started["run"].as_str().unwrap().to_string();
    loop {
        let (_, shown) = api.get(&format!("/v1/runs/{run}"), "a").await;
        if shown["steps"].as_array().unwrap().iter().any(|s| s["path"] == "main/wait") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let by = r#"{"by": "ada"}"#;
    let cancel = format!("/v1/runs/{run}/cancel");
    assert_eq!(api.send("POST", &cancel, "b", by, None).await.0, 404, "another tenant cannot cancel it");
    let (status, cancelled) = api.send("POST", &cancel, "a", by, None).await;
    assert_eq!(
        (status, &cancelled["status"], &cancelled["error"]),
        (200, &json!("cancelled"), &json!("cancelled by ada"))
    );
    let events = api.events(&run, "a").await;
    assert_eq!(events.last().unwrap().0, "run-finished");
    assert!(!events.iter().any(|(_, step)| step == "main/after"), "{events:?}");
    let (status, again) = api.send("POST", &cancel, "a", by, None).await;
    assert_eq!(
        (status, again["error"]["message"].as_str().unwrap()),
        (409, format!("run {run} was cancelled; only an unfinished run can be cancelled").as_str())
    );
    let (_, listed) = api.get("/v1/runs?status=cancelled", "a").await;
    assert_eq!(listed[0]["run"], run.as_str());
}
