//! Outbound HTTP from Python and JavaScript: the examples `plugins/fetch-py`
//! (its `http_client.py` over the `http-agent-world` bindings) and
//! `plugins/fetch-js` (componentize-js's `fetch`), built by `paddock build`
//! and put through what the Rust `fetcher` guest is put through in `http.rs`,
//! against the same server: a granted host answers GET and POST with a body;
//! an ungranted host, a redirect to one and a name resolving to a loopback
//! address are refused by the host, which says why.
//!
//! Like the other language tests, each fails when CI is set and its
//! toolchain is missing, and otherwise skips saying so.

use crate::languages::{paddock, toolchain_is_missing};
use crate::util::*;
use paddock::config::Settings;
use paddock::runtime::{RunOptions, Runtime};
use paddock::sandbox::Outcome;
use paddock::toolchain::Lang;
use paddock_test_guests::guests;
use serde_json::{Value, json};
use std::path::Path;

/// `plugins/<example>` built in a folder of its own beside a copy of the
/// contract (its build command names `../../wit`), its manifest asking for
/// `hosts` rather than `api.example.com`; `None` when the toolchain is
/// missing outside CI.
fn build(example: &str, lang: Lang, hosts: &str) -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(guests::ROOT);
    copy_folder(&root.join("wit"), &dir.path().join("wit"));
    let folder = dir.path().join("plugins").join(example);
    copy_folder(&root.join("plugins").join(example), &folder);
    let manifest = folder.join("agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let asking = text.replacen("http = [\"api.example.com\"]", &format!("http = [{hosts}]"), 1);
    assert_ne!(text, asking, "plugins/{example}/agent.toml asks for api.example.com");
    std::fs::write(&manifest, asking).unwrap();
    let config = format!(
        "[engine]\nmax-instances = 8\n[host]\nplugins = {:?}\ncode-cache = {:?}\nledger = \"memory\"\n\
         plugin-state = \"memory\"\n[tenants.acme]\nagents = [\"*\"]\nhttp = [\"127.0.0.1\", \"localhost\"]\n",
        dir.path().join("plugins"),
        dir.path().join("code-cache"),
    );
    std::fs::write(dir.path().join("paddock.toml"), config).unwrap();
    let built = paddock(dir.path(), &["build", example], None);
    if toolchain_is_missing(lang, &built) {
        return None;
    }
    assert_eq!(built.code, 0, "{}", built.stderr);
    Some(dir)
}

/// Copies the files of `from` (not its build output) into `to`.
fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if path.is_dir() {
            if !["build", "__pycache__"].contains(&&*name.to_string_lossy()) {
                copy_folder(&path, &to.join(name));
            }
        } else {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

fn host(dir: &Path) -> Runtime {
    let settings = Settings::load(Some(&dir.join("paddock.toml")));
    Runtime::new(settings.unwrap_or_else(|e| panic!("test settings are valid: {e}"))).expect("engine starts")
}

fn logged(outcome: &Outcome, message: &str) -> bool {
    outcome.logs.iter().any(|r| r.message == message)
}

/// What the host says when `agent`, asking for 127.0.0.1 only, sends to `localhost:port`.
fn not_granted(agent: &str, port: u16) -> String {
    format!(
        "denied: host \"localhost:{port}\" is not granted to agent \"{agent}\" (its manifest's capabilities.http: 127.0.0.1)"
    )
}

/// The answer an agent in `lang` gives for a request the host refused with `why`:
/// Python's client raises the host's text; JavaScript's `fetch` only knows
/// that the network failed (the agent's log has the text).
fn refused(lang: Lang, why: &str) -> Value {
    match lang {
        Lang::Js => json!({ "error": "NetworkError when attempting to fetch resource" }),
        _ => json!({ "error": why }),
    }
}

async fn sends_http_by_the_same_grants(example: &'static str, lang: Lang) {
    let hits = std::sync::Arc::default();
    let port = crate::http::server(hits).await;
    let Some(dir) = tokio::task::spawn_blocking(move || build(example, lang, "\"127.0.0.1\"")).await.unwrap() else {
        return;
    };
    let rt = host(dir.path());
    let acme = RunOptions { tenant: Some("acme".into()), ..Default::default() };
    let run = |input: Value| {
        let (rt, acme) = (rt.clone(), acme.clone());
        async move { run_with(&rt, example, &input.to_string(), &acme).await }
    };

    let requests = json!([
        {"url": format!("http://127.0.0.1:{port}/hello")},
        {"method": "POST", "url": format!("http://127.0.0.1:{port}/echo"), "body": "ping ".repeat(600)},
    ]);
    let answers = output_json(&run(json!({ "requests": requests })).await);
    assert_eq!(
        answers,
        json!([
            {"status": 200, "body": "hi", "location": null},
            {"status": 200, "body": "ping ".repeat(600), "location": null},
        ])
    );

    let why = not_granted(example, port);
    let elsewhere = json!({"url": format!("http://localhost:{port}/hello")});
    let outcome = run(json!({ "requests": [elsewhere] })).await;
    assert_eq!(output_json(&outcome), json!([refused(lang, &why)]));
    assert!(logged(&outcome, &format!("http: internal error: {why}")), "{:?}", outcome.logs);

    let redirect = json!({"url": format!("http://127.0.0.1:{port}/redirect")});
    let followed = output_json(&run(json!({ "requests": [redirect], "follow": true })).await);
    let location = format!("http://localhost:{port}/hello");
    assert_eq!(
        followed,
        json!([{"status": 302, "location": location}, refused(lang, &why)]),
        "the redirect is a request of its own, checked as every one is"
    );

    // The tenant grants localhost, but a name that resolves to a loopback
    // address needs its http-private too.
    let other = tokio::task::spawn_blocking(move || build(example, lang, "\"localhost\"")).await.unwrap().unwrap();
    let named = host(other.path());
    let outcome = run_with(&named, example, &json!({ "requests": [elsewhere] }).to_string(), &acme).await;
    let line = outcome.logs.iter().find_map(|r| r.message.strip_prefix("http: internal error: "));
    let why = line.unwrap_or_else(|| panic!("the host says why: {:?}", outcome.logs));
    assert!(why.starts_with("denied: localhost resolves to "), "{why}");
    assert!(why.ends_with(", which is a loopback address; only an address the tenant's http grant names, or a host its http-private names, may be reached there"), "{why}");
    assert_eq!(output_json(&outcome), json!([refused(lang, why)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_agent_sends_http_by_the_same_grants_as_a_rust_one() {
    sends_http_by_the_same_grants("fetch-py", Lang::Python).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_javascript_agent_sends_http_by_the_same_grants_as_a_rust_one() {
    sends_http_by_the_same_grants("fetch-js", Lang::Js).await;
}
