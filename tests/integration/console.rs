//! The console at `/`, in a real headless Chromium: signing in with a key,
//! a flow run appearing and advancing on the Runs page, its question answered
//! from the Approvals page, a tenant's run key seeing only its tenant; and,
//! over plain HTTP, the session cookie's rules (CSRF, revocation).

use crate::util::*;
use crate::webdriver::Browser;
use paddock_test_guests::guests;
use serde_json::{Value, json};

/// A flow asking a question, then running `step`.
const SHIP: &str = "[flow]\nname = \"ship\"\n[steps.main]\nkind = \"sequence\"\nsteps = [\"ask\", \"after\"]\n\
                    [steps.ask]\nkind = \"approval\"\nquestion = \"Ship it?\"\noptions = [\"ship\", \"hold\"]\ntimeout = \"5m\"\n\
                    [steps.after]\nagent = \"step\"\ninput = { name = \"after\" }\n";

/// A host folder with the `step` plugin and the `ship` flow.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    plugin(&dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    std::fs::create_dir_all(dir.path().join("flows")).unwrap();
    std::fs::write(dir.path().join("flows/ship.toml"), SHIP).unwrap();
    std::fs::write(dir.path().join("paddock.toml"), "").unwrap();
    dir
}

/// Starts the `ship` flow with `key`; its run id.
async fn start_ship(host: &Served, key: &str) -> String {
    let client = crate::webdriver::client();
    let started = client
        .post(format!("http://{}/v1/flows/ship/runs", host.address))
        .bearer_auth(key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202, "{:?}", started.text().await);
    let body: Value = started.json().await.unwrap();
    body["run"].as_str().unwrap().to_string()
}

async fn sign_in(browser: &Browser, host: &Served, key: &str) {
    browser.goto(&format!("http://{}/", host.address)).await;
    browser.type_into("#signin-key", key).await;
    browser.click("#signin-submit").await;
    browser.wait_for("#who", |t| t.starts_with("tenant ")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_started_through_the_api_advances_on_the_runs_page_and_finishes_when_answered_on_the_approvals_page() {
    let dir = folder();
    let operator = key(dir.path(), "default", "operate");
    let host = serve(dir.path(), &["--flows", "flows"]);
    let Some(browser) = Browser::start().await else { return };
    browser.goto(&format!("http://{}/", host.address)).await;
    browser.element("#signin-key").await;
    browser.screenshot("sign-in").await;
    browser.type_into("#signin-key", "pdk_0000000000000000_wrong").await;
    browser.click("#signin-submit").await;
    browser.wait_for("#signin-error", |t| t == "the bearer token is not a Paddock API key (pdk_...)").await;
    sign_in(&browser, &host, &operator).await;
    assert_eq!(browser.text(&browser.element("#who").await).await, "tenant default · operate");

    let run = start_ship(&host, &operator).await;
    browser.goto(&format!("http://{}/#/runs", host.address)).await;
    let row = format!("tr[data-run=\"{run}\"] [data-status]");
    browser.wait_for(&row, |t| t == "running").await;
    browser.screenshot("runs").await;
    browser.click(&format!("tr[data-run=\"{run}\"] a")).await;
    browser.wait_for("#run-status", |t| t == "running").await;
    // The approval step's decision: the question it asked.
    browser.wait_for("tr[data-step^=\"main/ask\"] [data-status]", |t| t == "decided").await;
    browser.screenshot("run").await;

    browser.goto(&format!("http://{}/#/approvals", host.address)).await;
    browser.wait_for(".question strong", |t| t == "Ship it?").await;
    browser.screenshot("approvals").await;
    browser.click("button[data-option=\"ship\"]").await;
    browser.wait_for("main p.note", |t| t == "No questions waiting.").await;

    // The run page follows the run live to its end.
    browser.goto(&format!("http://{}/#/runs/{run}", host.address)).await;
    browser.wait_for("#run-status", |t| t == "succeeded").await;
    browser.wait_for("tr[data-step=\"main/after\"] [data-status]", |t| t == "done").await;
    browser.screenshot("run-finished").await;
    // The steps as a tree: each under its parent, by its own name, one level deeper.
    let tree = browser
        .execute("return [...document.querySelectorAll('tr[data-step], tr[data-group]')].map(r => \
                  `${r.dataset.step || r.dataset.group + '/'} ${r.cells[0].firstChild.textContent} ${r.cells[0].style.paddingLeft}`)")
        .await;
    assert_eq!(
        tree,
        json!(["main main 0.6em", "main/ask! ask! 1.8em", "main/ask ask 1.8em", "main/after after 1.8em"])
    );
    // A fan-out's items are groups under the fan-out, each holding its steps.
    let fan_out = browser
        .execute(
            "return stepTree([{path: 'fan'}, {path: 'fan[0]/item'}, {path: 'fan[1]/item'}, {path: 'fan[0]/item/x'}]) \
                  .map(n => `${n.path} ${n.depth} ${n.step ? 'step' : n.steps}`)",
        )
        .await;
    let expected =
        ["fan 0 step", "fan[0] 1 2", "fan[0]/item 2 step", "fan[0]/item/x 3 step", "fan[1] 1 1", "fan[1]/item 2 step"];
    assert_eq!(fan_out, json!(expected));

    // A step's journal, then a replay of the run's agent steps, from the page.
    browser.click("button[data-journal=\"main/after\"]").await;
    let details =
        browser.wait_for("#step-details p", |t| t.contains(" host calls · 0 LLM calls · 0 tokens · $0.00")).await;
    assert!(
        browser
            .text(&details)
            .await
            .starts_with(&format!("{} host calls", journal_length(&host, &operator, &run).await))
    );
    browser.element("#step-details tr[data-call^=\"blackboard.\"]").await;
    browser.click("button[data-action=\"replay\"]").await;
    // (A page's text as rendered: the two spaces after "same" read as one.)
    browser
        .wait_for("#replay-report li[data-replayed=\"main/after\"]", |t| t.starts_with("same main/after (step 1.0.0+"))
        .await;
    browser.screenshot("run-replayed").await;

    // The overview counts the tenant's invocations: the step's, and the replay's.
    browser.goto(&format!("http://{}/#/overview", host.address)).await;
    browser.wait_for("tr[data-activity=\"default\"] [data-invocations]", |t| t == "2").await;
    browser.screenshot("overview").await;
}

/// How many host calls the journal of `run`'s step `main/after` holds, by the API.
async fn journal_length(host: &Served, key: &str, run: &str) -> usize {
    let journal = get_json(host, key, &format!("/v1/runs/{run}/journal?step=main%2Fafter")).await;
    journal["entries"].as_array().unwrap_or_else(|| panic!("{journal}")).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_key_of_one_tenant_sees_only_its_tenants_runs_and_plugins_it_may_run() {
    let dir = folder();
    let (acme, globex) = (key(dir.path(), "acme", "run"), key(dir.path(), "globex", "run"));
    let host = serve(dir.path(), &["--flows", "flows"]);
    let (ours, theirs) = (start_ship(&host, &acme).await, start_ship(&host, &globex).await);
    // A replay runs agents: not for a run key; another tenant's journal is not found.
    let replay =
        crate::webdriver::client().post(format!("http://{}/v1/runs/{ours}/replay", host.address)).bearer_auth(&acme);
    let refused: Value = replay.send().await.unwrap().json().await.unwrap();
    assert_eq!(refused["error"]["message"], "a run key may not replay runs; that needs the operate role");
    let journal = get_json(&host, &acme, &format!("/v1/runs/{theirs}/journal?step=main%2Fafter")).await;
    assert_eq!(journal["error"]["message"], format!("no run with id {theirs:?}"));
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &acme).await;
    browser.goto(&format!("http://{}/#/runs", host.address)).await;
    browser.element(&format!("tr[data-run=\"{ours}\"]")).await;
    let listed = browser.execute("return [...document.querySelectorAll('tr[data-run]')].map(r => r.dataset.run)").await;
    assert_eq!(listed, json!([ours]), "globex's run {theirs} must not show");
    browser.goto(&format!("http://{}/#/runs/{theirs}", host.address)).await;
    browser.wait_for("main p.error", |t| t.contains("no run")).await;
    // A run key reads no spend: the page says so rather than showing another's.
    browser.goto(&format!("http://{}/#/overview", host.address)).await;
    browser.wait_for("#spend-refused", |t| t == "a run key may not read usage; that needs the operate role").await;
    // Its own tenant's invocations only, though globex's agent ran too.
    for token in [&acme, &globex] {
        let ran = crate::webdriver::client().post(format!("http://{}/v1/agents/step/run", host.address));
        let ran = ran.bearer_auth(token).json(&json!({"name": "x"})).send().await.unwrap();
        assert_eq!(ran.status(), 200, "{:?}", ran.text().await);
    }
    browser.goto(&format!("http://{}/#/runs", host.address)).await;
    browser.goto(&format!("http://{}/#/overview", host.address)).await;
    browser.wait_for("tr[data-activity] [data-invocations]", |t| t == "1").await;
    let shown =
        browser.execute("return [...document.querySelectorAll('tr[data-activity]')].map(r => r.dataset.activity)");
    assert_eq!(shown.await, json!(["acme"]));
}

/// The session cookie and CSRF token `POST /console/session` answers for `key`.
async fn session(client: &reqwest::Client, host: &Served, key: &str) -> (String, String) {
    let made = client
        .post(format!("http://{}/console/session", host.address))
        .json(&json!({ "key": key }))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let cookie = made.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("; HttpOnly; SameSite=Strict; Path=/"), "{cookie}");
    let body: Value = made.json().await.unwrap();
    (cookie.split(';').next().unwrap().to_string(), body["csrf"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_a_session_without_its_csrf_token_is_refused_and_a_revoked_key_ends_the_session() {
    let dir = folder();
    let operator = key(dir.path(), "default", "operate");
    let host = serve(dir.path(), &["--flows", "flows"]);
    let run = start_ship(&host, &operator).await;
    let client = crate::webdriver::client();
    let (cookie, csrf) = session(&client, &host, &operator).await;
    let cancel = |token: Option<&str>| {
        let request =
            client.post(format!("http://{}/v1/runs/{run}/cancel", host.address)).header("cookie", &cookie).body("{}");
        match token {
            Some(t) => request.header("x-paddock-csrf", t),
            None => request,
        }
    };
    for token in [None, Some("0".repeat(64).as_str())] {
        let refused = cancel(token).send().await.unwrap();
        assert_eq!(refused.status(), 403);
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["kind"], "csrf");
        assert_eq!(
            body["error"]["message"],
            "a change made through the console carries the session's x-paddock-csrf header"
        );
    }
    let listed = client.get(format!("http://{}/v1/runs/{run}", host.address)).header("cookie", &cookie).send().await;
    assert_eq!(listed.unwrap().json::<Value>().await.unwrap()["status"], "running", "nothing was cancelled");
    let cancelled = cancel(Some(&csrf)).send().await.unwrap();
    assert_eq!(cancelled.status(), 200, "{:?}", cancelled.text().await);

    // A bad key opens nothing; a revoked one ends its sessions.
    let bad = client.post(format!("http://{}/console/session", host.address)).json(&json!({"key": "pdk_x"})).send();
    assert_eq!(bad.await.unwrap().status(), 401);
    let id = operator.split('_').nth(1).unwrap();
    let revoked = TestCommand::new(dir.path(), &["keys", "revoke", id]).run();
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let who = client.get(format!("http://{}/console/whoami", host.address)).header("cookie", &cookie).send().await;
        let who = who.unwrap();
        if who.status() == 401 {
            let body: Value = who.json().await.unwrap();
            assert!(body["error"]["message"].as_str().unwrap().contains("revoked"), "{body}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the session outlived its key");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The page itself needs no key, and forbids framing and foreign scripts.
    let page = client.get(format!("http://{}/", host.address)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(page.text().await.unwrap().contains("<script src=\"/console/app.js\" defer>"));
}

/// `GET path` on `host` with `key`, as JSON.
async fn get_json(host: &Served, key: &str, path: &str) -> Value {
    let answer = crate::webdriver::client().get(format!("http://{}{path}", host.address)).bearer_auth(key).send();
    answer.await.unwrap().json().await.unwrap()
}

/// A flow whose one step fails on its first attempt and is kept as a dead letter.
const FLAKY: &str = "[flow]\nname = \"flaky\"\n[steps.main]\nagent = \"step\"\n\
                     input = { name = \"flaky\", fail_before_attempt = 2 }\non-error = \"dead_letter\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_retries_a_dead_letter_and_approves_a_held_plugin_version_from_their_pages() {
    let dir = folder();
    std::fs::write(dir.path().join("flows/flaky.toml"), FLAKY).unwrap();
    let admin = key(dir.path(), "default", "admin");
    let host = serve(dir.path(), &["--flows", "flows"]);
    let client = crate::webdriver::client();
    let failed = client
        .post(format!("http://{}/v1/flows/flaky/runs?wait=true", host.address))
        .bearer_auth(&admin)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let failed: Value = failed.json().await.unwrap();
    let dead = get_json(&host, &admin, "/v1/dlq").await;
    let dead_id = dead[0]["id"].as_str().unwrap_or_else(|| panic!("no dead letter after {failed}")).to_string();
    // A version asking for more than the serving one is held.
    let manifest = dir.path().join("plugins/step/agent.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, format!("{text}[capabilities]\nroutes = [\"fast\"]\n")).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if !get_json(&host, &admin, "/v1/plugins").await[0]["held"].is_null() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the wider version was not held");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &admin).await;
    browser.goto(&format!("http://{}/#/dlq", host.address)).await;
    browser.element(&format!("tr[data-dead=\"{dead_id}\"]")).await;
    browser.screenshot("dead-letters").await;
    browser.click(&format!("button[data-retry=\"{dead_id}\"]")).await;
    browser.wait_for("main p.note", |t| t == "No dead letters.").await;

    browser.goto(&format!("http://{}/#/plugins", host.address)).await;
    let held = browser.wait_for("tr[data-plugin=\"step\"] td.status-held", |t| t.contains("(route \"fast\")")).await;
    let asked = browser.text(&held).await;
    browser.screenshot("plugins").await;
    browser.click("button[data-approve=\"step\"]").await;
    browser.wait_for("tr[data-plugin=\"step\"] td:nth-child(6)", |t| t.is_empty()).await;
    let plugins = get_json(&host, &admin, "/v1/plugins").await;
    let serving = plugins[0]["serving"]["version"].as_str().unwrap();
    assert!(asked.starts_with(serving), "the held version {asked:?} serves now: {serving}");
    assert!(plugins[0]["held"].is_null(), "{plugins}");
}

/// `PUT` `value` at `key` of the key's tenant's board.
async fn put(host: &Served, key: &str, board_key: &str, value: &str) {
    let url = format!("http://{}/v1/board/keys/{}", host.address, board_key.replace('/', "%2F"));
    let put = crate::webdriver::client().put(url).bearer_auth(key).body(value.to_string()).send().await.unwrap();
    assert_eq!(put.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blackboard_page_lists_a_prefix_follows_it_live_and_shows_a_keys_history() {
    let dir = folder();
    let operator = key(dir.path(), "default", "operate");
    let host = serve(dir.path(), &[]);
    put(&host, &operator, "notes/a", "first").await;
    put(&host, &operator, "notes/a", "second").await;
    put(&host, &operator, "other/x", "elsewhere").await;
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &operator).await;
    browser.goto(&format!("http://{}/#/board?prefix=notes%2F", host.address)).await;
    browser.element("tr[data-key=\"notes/a\"]").await;
    let listed = browser.execute("return [...document.querySelectorAll('tr[data-key]')].map(r => r.dataset.key)").await;
    assert_eq!(listed, json!(["notes/a"]));

    // Written while the page is open: it shows at once, as a change and a key.
    put(&host, &operator, "notes/b", "live").await;
    browser.wait_for("#board-live li", |t| t.contains("notes/b = live by paddock-api")).await;
    browser.element("tr[data-key=\"notes/b\"]").await;
    browser.screenshot("blackboard").await;

    browser.click("tr[data-key=\"notes/a\"] a").await;
    browser.wait_for("#board-value", |t| t == "second").await;
    let history = browser
        .execute("return [...document.querySelectorAll('tr[data-revision] td:nth-child(2)')].map(td => td.textContent)")
        .await;
    assert_eq!(history, json!(["second", "first"]));
    browser.goto(&format!("http://{}/#/usage", host.address)).await;
    browser.wait_for("main h1", |t| t == "Usage and budgets").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_usage_page_charts_a_tenants_days_and_the_calls_its_budget_refused() {
    let dir = folder();
    let budget = "[tenants.default]\nroutes = [\"*\"]\n[tenants.default.budget]\ntokens-per-day = 1\n";
    std::fs::write(dir.path().join("paddock.toml"), budget).unwrap();
    let operator = key(dir.path(), "default", "operate");
    let host = serve(dir.path(), &[]);
    let chat = json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]});
    let client = crate::webdriver::client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let sent = client.post(format!("http://{}/v1/chat/completions", host.address)).bearer_auth(&operator);
        statuses.push(sent.json(&chat).send().await.unwrap().status().as_u16());
    }
    // Each call's estimate is past the budget of one token: refused, and counted.
    assert_eq!(statuses, [429, 429, 429]);
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &operator).await;
    browser.goto(&format!("http://{}/#/usage", host.address)).await;
    browser.wait_for("svg[data-chart=\"refusals\"] rect title", |t| t.ends_with(": 3 refused by a budget")).await;
    let today = browser
        .execute(
            "const day = new Date().toISOString().slice(0, 10); \
                  return [document.querySelector(`tr[data-usage=\"default//${day}\"] td:last-child`).textContent, \
                  document.querySelector('svg[data-chart=\"refusals\"] rect title').textContent.startsWith(day)]",
        )
        .await;
    assert_eq!(today, json!(["3", true]));
    browser.screenshot("usage").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_page_shows_fifty_runs_a_page_and_links_the_older_ones() {
    let dir = folder();
    let operator = key(dir.path(), "default", "operate");
    let host = serve(dir.path(), &["--flows", "flows"]);
    let mut started = Vec::new();
    for _ in 0..51 {
        started.push(start_ship(&host, &operator).await);
    }
    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &operator).await;
    browser.wait_for("a.card[href=\"#/runs?status=running\"] .big", |t| t == "51").await;
    browser.goto(&format!("http://{}/#/runs", host.address)).await;
    browser.element("#runs-next").await;
    let first = browser.execute("return [...document.querySelectorAll('tr[data-run]')].map(r => r.dataset.run)").await;
    assert_eq!(first.as_array().unwrap().len(), 50);
    browser.click("#runs-next").await;
    browser.wait_for("tr[data-run]", |_| true).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let older = loop {
        let rows =
            browser.execute("return [...document.querySelectorAll('tr[data-run]')].map(r => r.dataset.run)").await;
        if rows.as_array().unwrap().len() == 1 {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "no second page: {rows}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    // Newest first: the second page holds the first run started.
    assert_eq!(older, json!([started[0]]));
    assert!(!browser.execute("return !!document.getElementById('runs-next')").await.as_bool().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_providers_page_shows_each_targets_last_hour_to_an_admin() {
    let dir = folder();
    let (admin, operator) = (key(dir.path(), "default", "admin"), key(dir.path(), "default", "operate"));
    let host = serve(dir.path(), &[]);
    let client = crate::webdriver::client();
    for _ in 0..3 {
        let asked = client
            .post(format!("http://{}/v1/chat/completions", host.address))
            .bearer_auth(&admin)
            .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(asked.status(), 200);
    }
    let hour = get_json(&host, &admin, "/v1/providers/hour").await;
    let fast = hour["targets"].as_array().unwrap().iter().find(|t| t["route"] == "fast").unwrap().clone();
    assert_eq!((fast["breaker"].as_str(), fast["minutes"][0]["attempts"].as_u64()), (Some("closed"), Some(3)));

    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &host, &admin).await;
    browser.goto(&format!("http://{}/#/providers", host.address)).await;
    browser.wait_for("tr[data-target=\"fast/simulated/sim-fast\"] td[data-attempts]", |t| t == "3").await;
    browser.screenshot("providers").await;
    // An operate key is told what it lacks.
    let other = Browser::start().await.expect("the browser started once");
    sign_in(&other, &host, &operator).await;
    other.goto(&format!("http://{}/#/providers", host.address)).await;
    other
        .wait_for("main p.note", |t| t == "an operate key may not read the providers' state; that needs the admin role")
        .await;
}

/// Two hosts on one PostgreSQL database: a run host A executes is followed,
/// answered and seen finishing through host B's console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executing_on_one_host_is_followed_and_answered_through_another_hosts_console() {
    let Some(url) = paddock_postgres::testing::database_url("console_hosts") else { return };
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a_key = crate::many_hosts::host_folder(a_dir.path(), &url);
    let b_key = crate::many_hosts::host_folder(b_dir.path(), &url);
    plugin(&a_dir.path().join("plugins"), "step", guests::FLOW_STEP, "");
    std::fs::create_dir_all(a_dir.path().join("flows")).unwrap();
    std::fs::write(a_dir.path().join("flows/ship.toml"), SHIP).unwrap();
    let a = serve(a_dir.path(), &["--flows", "flows"]);
    let b = serve(b_dir.path(), &[]);
    let run = start_ship(&a, &a_key).await;

    let Some(browser) = Browser::start().await else { return };
    sign_in(&browser, &b, &b_key).await;
    browser.goto(&format!("http://{}/#/runs/{run}", b.address)).await;
    browser.wait_for("tr[data-step^=\"main/ask\"] [data-status]", |t| t == "decided").await;
    browser.goto(&format!("http://{}/#/approvals", b.address)).await;
    browser.click("button[data-option=\"ship\"]").await;
    browser.goto(&format!("http://{}/#/runs/{run}", b.address)).await;
    browser.wait_for("#run-status", |t| t == "succeeded").await;
    browser.wait_for("tr[data-step=\"main/after\"] [data-status]", |t| t == "done").await;
    let summary = get_json(&a, &a_key, &format!("/v1/runs/{run}")).await;
    assert_eq!(summary["status"], "succeeded", "host A finished it: {summary}");
}
