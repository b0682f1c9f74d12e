//! Flow storage against a hostile tenant, through a real `paddock serve`: a
//! fan-out amplifying a small request into large outputs, oversized
//! questions, a tenant filling the store. Each is stopped at its bound with
//! its error while another tenant's runs go on; lists are read a page at a
//! time; `paddock gc` frees a full tenant.

use crate::serve_flows::GREET;
use crate::util::*;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;

/// A fan-out over `input/items` whose agent returns about `pad` bytes for
/// each item, from an input of a few bytes.
fn fan_out(name: &str, pad: u32) -> String {
    format!(
        "[flow]\nname = \"{name}\"\n[steps.main]\nkind = \"parallel\"\nfor-each = \"input/items\"\ndo = \"item\"\n\
         [steps.item]\nagent = \"step\"\ninput = {{ name = \"{{{{item}}}}\", pad = {pad} }}\n"
    )
}

const ASK: &str = r#"
[flow]
name = "ask"
[steps.main]
kind = "approval"
question = "{{input/q}}"
options = ["ship", "hold"]
timeout = "60s"
"#;

/// A host whose tenants `a` and `b` may run `step`, with `limits` added to
/// its settings; the API key of each tenant.
fn setup(dir: &Path, limits: &str) -> (Served, Value) {
    plugin(&dir.join("plugins"), "step", guests::FLOW_STEP, "");
    let cache = concat!(env!("CARGO_TARGET_TMPDIR"), "/code-cache");
    let config = format!(
        "[host]\nledger = \"memory\"\nplugin-state = \"memory\"\ncode-cache = {cache:?}\ndefault-tenant = \"a\"\n\
         {limits}\n[tenants.a]\nagents = [\"step\"]\n[tenants.b]\nagents = [\"step\"]\n"
    );
    std::fs::write(dir.join("paddock.toml"), config).unwrap();
    let flows = dir.join("flows");
    std::fs::create_dir_all(&flows).unwrap();
    let (amp, fill) = (fan_out("amp", 60_000), fan_out("fill", 30_000));
    for (name, text) in [("amp", amp.as_str()), ("fill", &fill), ("greet", GREET), ("ask", ASK)] {
        std::fs::write(flows.join(format!("{name}.toml")), text).unwrap();
    }
    let tokens = json!({ "a": key(dir, "a", "operate"), "b": key(dir, "b", "operate") });
    paddock::gateway::install_crypto();
    (serve(dir, &[]), tokens)
}

struct Api {
    client: reqwest::Client,
    base: String,
    tokens: Value,
}

impl Api {
    fn new(served: &Served, tokens: Value) -> Api {
        Api { client: reqwest::Client::new(), base: format!("http://{}", served.address), tokens }
    }

    async fn call(&self, method: reqwest::Method, path: &str, tenant: &str, body: &Value) -> reqwest::Response {
        let token = self.tokens[tenant].as_str().unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base)).bearer_auth(token);
        if !body.is_null() {
            request = request.body(body.to_string());
        }
        request.send().await.unwrap()
    }

    /// Runs flow `name` on `input` for `tenant` to its end: status and body.
    async fn run(&self, name: &str, tenant: &str, input: &Value) -> (u16, Value) {
        let path = format!("/v1/flows/{name}/runs?wait=true");
        let response = self.call(reqwest::Method::POST, &path, tenant, input).await;
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn get(&self, path: &str, tenant: &str) -> (Value, Option<String>) {
        let response = self.call(reqwest::Method::GET, path, tenant, &Value::Null).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let link = response.headers().get("link").map(|l| l.to_str().unwrap().to_string());
        (response.json().await.unwrap(), link)
    }
}

/// The bytes of the flow store's file and its write-ahead log.
fn store_bytes(dir: &Path) -> u64 {
    ["flows.sqlite", "flows.sqlite-wal"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(".paddock").join(f)).map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_past_max_run_bytes_fails_with_the_bound_and_the_store_grows_by_about_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (served, tokens) = setup(dir.path(), "[limits]\nmax-run-bytes = \"1MiB\"\n");
    let api = Api::new(&served, tokens);
    let before = store_bytes(dir.path());

    // 300 items of 60 KB: 18 MB of outputs asked for by a 1.5 KB request,
    // while tenant b runs a flow of its own.
    let items: Vec<u32> = (0..300).collect();
    let (flood_input, normal_input) = (json!({ "items": items }), json!({ "who": "bo" }));
    let flood = api.run("amp", "a", &flood_input);
    let normal = api.run("greet", "b", &normal_input);
    let ((status, run), (b_status, b_run)) = tokio::join!(flood, normal);
    assert_eq!((b_status, &b_run["status"], &b_run["output"]), (200, &json!("succeeded"), &json!("hello bo")));
    assert_eq!((status, &run["status"]), (422, &json!("failed")), "{run}");
    let id = run["run"].as_str().unwrap();
    let error = run["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("would take run {id} to ")) && error.contains("past limits.max-run-bytes (1 MiB)"),
        "{error}"
    );

    let (listed, _) = api.get("/v1/runs?flow=amp", "a").await;
    let kept = listed[0]["bytes"].as_u64().unwrap();
    assert!(kept <= 1 << 20, "the run keeps {kept} bytes, at most 1 MiB");
    // The file grows by what the run keeps, and the log by at most its
    // 4 MiB before SQLite reuses it: not by the 18 MB asked for.
    let grown = store_bytes(dir.path()) - before;
    assert!(grown < 6 << 20, "the store grew by {grown} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_past_max_question_bytes_is_refused_and_none_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (served, tokens) = setup(dir.path(), "[limits]\nmax-question-bytes = \"1KiB\"\n");
    let api = Api::new(&served, tokens);
    let (status, run) = api.run("ask", "a", &json!({ "q": "q".repeat(2000) })).await;
    assert_eq!((status, &run["status"]), (422, &json!("failed")), "{run}");
    let error = run["error"].as_str().unwrap();
    assert!(
        error.ends_with("the question (2.0 KiB with its options) is over limits.max-question-bytes (1 KiB)"),
        "{error}"
    );
    assert_eq!(api.get("/v1/approvals", "a").await.0, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_at_max_flow_bytes_starts_no_run_until_paddock_gc_forgets_its_finished_ones() {
    let dir = tempfile::tempdir().unwrap();
    let limits = "[limits]\nmax-run-bytes = \"512KiB\"\nmax-flow-bytes = \"1MiB\"\n[retention]\nruns-per-tenant = 1\n";
    let (served, tokens) = setup(dir.path(), limits);
    let api = Api::new(&served, tokens);
    // Each run keeps about 260 KB: two 30 KB outputs in each item's
    // checkpoint (as JSON and as returned), in the fan-out's and in the run's
    // record, and a 20 KB input. Three fit; a few more fail as the last bytes
    // go, until a start is refused.
    let input = json!({ "items": [1, 2], "pad": "y".repeat(20_000) });
    let mut outcomes = Vec::new();
    let refused = loop {
        let (status, body) = api.run("fill", "a", &input).await;
        if status == 507 {
            break body;
        }
        assert!(status == 200 || status == 422, "{status} {body}");
        outcomes.push(body["status"].as_str().unwrap().to_string());
        assert!(outcomes.len() < 40, "never refused: {outcomes:?}");
    };
    assert_eq!(&outcomes[..3], ["succeeded", "succeeded", "succeeded"]);
    assert_eq!(refused["error"]["kind"], "quota-exceeded");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("tenant \"a\" keeps ")
            && message.ends_with(
                "would pass limits.max-flow-bytes (1 MiB); finished runs are forgotten by [retention], or at once by \
                 `paddock gc`"
            ),
        "{message}"
    );
    // Tenant b is not charged for it.
    let (status, b_run) = api.run("greet", "b", &json!({ "who": "bo" })).await;
    assert_eq!((status, &b_run["status"]), (200, &json!("succeeded")));

    let gc = TestCommand::new(dir.path(), &["gc", "--json"]).run();
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    let pruned: Value = serde_json::from_str(gc.stdout.trim()).unwrap();
    assert_eq!(pruned["flows"]["runs"], json!(outcomes.len() - 1), "all but a's newest finished run: {pruned}");
    let (listed, _) = api.get("/v1/runs", "a").await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (status, again) = api.run("fill", "a", &input).await;
    assert_eq!((status, &again["status"]), (200, &json!("succeeded")), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_a_page_at_a_time_newest_first_and_a_full_page_links_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let (served, tokens) = setup(dir.path(), "");
    let api = Api::new(&served, tokens);
    let mut ids = Vec::new();
    for who in ["r1", "r2", "r3", "r4", "r5"] {
        let (_, run) = api.run("greet", "a", &json!({ "who": who })).await;
        ids.push(run["run"].as_str().unwrap().to_string());
    }
    api.run("greet", "b", &json!({ "who": "other" })).await;
    ids.reverse();

    let mut path = "/v1/runs?limit=2".to_string();
    let mut pages = Vec::new();
    loop {
        let (rows, link) = api.get(&path, "a").await;
        let page: Vec<String> = rows.as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap().into()).collect();
        assert!(rows.as_array().unwrap().iter().all(|r| r.get("output").is_none()), "lists carry no outputs");
        pages.push(page);
        match link {
            Some(link) => {
                let next = link.strip_prefix('<').and_then(|l| l.strip_suffix(">; rel=\"next\"")).unwrap();
                path = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, [ids[..2].to_vec(), ids[2..4].to_vec(), ids[4..].to_vec()]);
    let (b_rows, _) = api.get("/v1/runs", "b").await;
    assert_eq!(b_rows.as_array().unwrap().len(), 1, "tenant b sees its own run only");
}
