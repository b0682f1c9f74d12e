//! Property tests of what `paddock serve` reads from a request: each body
//! and query type from any JSON (no panic, and a refusal names the field it
//! is about), and any body, path and query sent to the real routes that read
//! them, answered without a crash: never a 500, always a message.

use super::board::Params;
use super::flows::{Inline, ListQuery, ResumeQuery, StartQuery};
use super::operate::{Approval, Scope};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{TestRunner, contextualize_config};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

/// `cases` per run (`PROPTEST_CASES` overrides it), no regression files.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Every field name of the body and query types, and one none of them has.
const FIELDS: &[&str] = &[
    "spec", "origin", "input", "run", "tenant", "prefix", "after", "limit", "ttl", "expect", "wait", "flow", "status",
    "repin", "version", "bogus",
];

/// JSON of any shape, with the field names the types read.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        select(&["1s", "0s", "[flow]\nname = \"f\"", "acme", "true"][..]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(select(FIELDS).prop_map(String::from), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Reads `value` into `T` as a handler does (from its text) and as serde
/// does from a value: a refusal has a message, and names a field missing
/// from an object or one `T` does not know.
fn reads<T: DeserializeOwned>(value: &Value, required: &[&str], known: Option<&[&str]>) -> Result<(), TestCaseError> {
    if let Err(e) = serde_json::from_value::<T>(value.clone()) {
        prop_assert!(!e.to_string().is_empty());
    }
    let Err(e) = serde_json::from_str::<T>(&value.to_string()) else { return Ok(()) };
    let message = e.to_string();
    prop_assert!(message.contains(" at line "), "{}", message);
    let Value::Object(fields) = value else { return Ok(()) };
    if let Some(missing) = required.iter().find(|f| !fields.contains_key(**f))
        && message.starts_with("missing field")
    {
        prop_assert!(message.contains(&format!("`{missing}`")), "{}", message);
    }
    if let Some(known) = known
        && let Some(unknown) = fields.keys().find(|f| !known.contains(&f.as_str()))
        && message.starts_with("unknown field")
    {
        prop_assert!(message.contains(&format!("`{unknown}`")), "{}", message);
    }
    Ok(())
}

/// Reads `value` into every body and query type.
fn reads_all(value: &Value) -> Result<(), TestCaseError> {
    reads::<Inline>(value, &["spec", "origin"], None)?;
    reads::<Approval>(value, &["version"], Some(&["version"]))?;
    reads::<Params>(value, &[], Some(&["tenant", "prefix", "after", "limit", "ttl", "expect"]))?;
    reads::<Scope>(value, &[], Some(&["tenant"]))?;
    reads::<StartQuery>(value, &[], None)?;
    reads::<ListQuery>(value, &[], None)?;
    reads::<ResumeQuery>(value, &[], None)
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn any_json_is_read_into_each_body_or_refused_naming_the_field(value in json()) {
        reads_all(&value)?;
    }

    #[test]
    fn any_body_text_is_read_into_each_body_or_refused_with_a_message(text in any::<String>()) {
        for e in [
            serde_json::from_str::<Inline>(&text).err(),
            serde_json::from_str::<Approval>(&text).err(),
            serde_json::from_str::<Value>(&text).err(),
        ]
        .into_iter()
        .flatten()
        {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}

/// A host serving on no socket: the real routes, over a runtime with no
/// plugins and every store in memory, answering requests in this thread.
struct Host {
    tokio: tokio::runtime::Runtime,
    routes: axum::Router,
    _dir: tempfile::TempDir,
}

impl Host {
    fn start() -> Host {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let text = "[host]\nledger = \"memory\"\nflows = \"memory\"\nplugin-state = \"memory\"\ncode-cache = false\n\
                    [engine]\npooling = false\n[serve]\nauth = \"none\"\n";
        let settings = crate::config::Settings::parse(text, &dir.path().join("paddock.toml")).expect("settings");
        let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
        let routes = tokio.block_on(async {
            let runtime = crate::runtime::Runtime::new(settings).expect("a runtime");
            let flows = crate::flow::Flows::open(runtime.clone()).expect("flows in memory").with_hub();
            super::routes(
                runtime,
                flows,
                super::auth::Auth::open("default", crate::config::RequestLimits::default()),
                false,
            )
        });
        Host { tokio, routes, _dir: dir }
    }

    /// Sends `request`: the status and the body.
    fn answer(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        self.tokio.block_on(async {
            let response = self.routes.clone().oneshot(request).await.expect("routes answer every request");
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a whole body");
            (status, body.to_vec())
        })
    }
}

/// `text` as one path segment or query value.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Names, ids and keys: any text, and the ones that try to leave their folder.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        select(&["hello", "..", "../x", "a/b", "", "\0", "default", "ship"][..]).prop_map(String::from),
    ]
}

/// A body: any bytes, any JSON, or one shaped as the route wants.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let spec = select(&["[flow]\nname = \"f\"\n[steps.main]\nagent = \"hello\"\n", "[flow]\n", "{{", ""][..]);
    let inline = (spec, json(), segment(), select(&["default", "other", "Bad"][..])).prop_map(|(spec, input, run, tenant)| {
        serde_json::json!({"spec": spec, "origin": "f.toml", "input": input, "run": run, "tenant": tenant})
    });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        json().prop_map(|v| v.to_string().into_bytes()),
        inline.prop_map(|v| v.to_string().into_bytes()),
        select(&[r#"{"version": "0.1.0"}"#, r#"{"option": "ship", "by": 3}"#, r#"{"by": "ada"}"#][..])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// A query: some of the parameters the routes read, with any values.
fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        any::<String>(),
        select(&["1s", "0s", "1000000d", "x", "0", "18446744073709551616", "true", "acme", ""][..])
            .prop_map(String::from),
    ];
    prop::collection::vec((select(FIELDS), value), 0..3)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={}", escaped(v))).collect::<Vec<_>>().join("&"))
}

/// A request to a route that reads a body, a path or a query.
fn request() -> impl Strategy<Value = (Method, String, Vec<u8>)> {
    let routes = select(
        &[
            "POST /v1/agents/{}/run",
            "POST /v1/flows/run",
            "POST /v1/flows/{}/runs",
            "POST /v1/runs/{}/cancel",
            "POST /v1/runs/{}/resume",
            "POST /v1/approvals/{}",
            "POST /v1/dlq/{}/retry",
            "POST /v1/plugins/{}/approve",
            "PUT /v1/board/keys/{}",
            "GET /v1/board/keys/{}",
            "DELETE /v1/board/keys/{}",
            "GET /v1/board",
            "GET /v1/runs",
            "GET /v1/usage",
        ][..],
    );
    (routes, segment(), query(), body()).prop_map(|(route, segment, query, body)| {
        let (method, path) = route.split_once(' ').unwrap_or(("GET", route));
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        (method, format!("{}?{query}", path.replace("{}", &escaped(&segment))), body)
    })
}

#[test]
fn any_request_is_answered_without_a_crash_and_refused_with_a_message() {
    let host = Host::start();
    let mut runner = TestRunner::new(contextualize_config(config(5000)));
    let outcome = runner.run(&request(), |(method, uri, body)| {
        let request = Request::builder().method(method).uri(&uri).body(Body::from(body)).expect("a request");
        let (status, body) = host.answer(request);
        prop_assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{}: {}", uri, String::from_utf8_lossy(&body));
        if status.is_client_error() || status.is_server_error() {
            let message = match serde_json::from_slice::<Value>(&body) {
                Ok(v) => v["error"]["message"].as_str().unwrap_or_default().to_string(),
                // axum's own refusals of a path or query it cannot read are text.
                Err(_) => String::from_utf8_lossy(&body).into_owned(),
            };
            prop_assert!(!message.trim().is_empty(), "{} {}: {}", status, uri, String::from_utf8_lossy(&body));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

#[test]
fn a_path_no_route_has_is_refused_with_the_api_error_not_an_empty_404() {
    // Found by fuzzing: `POST /v1/approvals/?` (no id) was answered 404 with an empty body.
    let host = Host::start();
    for (method, path) in [(Method::POST, "/v1/approvals/"), (Method::PUT, "/v1/board/keys/"), (Method::GET, "/v2")] {
        let request = Request::builder().method(method.clone()).uri(format!("{path}?")).body(Body::empty()).unwrap();
        let (status, body) = host.answer(request);
        let body: Value = serde_json::from_slice(&body).expect("a JSON body");
        let message = format!("no route {method} {path}");
        assert_eq!(
            (status, body),
            (StatusCode::NOT_FOUND, serde_json::json!({"error": {"kind": "not-found", "message": message}}))
        );
    }
}
