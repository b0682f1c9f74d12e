//! Hot reload: new versions go live while clients invoke, broken ones never
//! replace a working one, wider ones wait for approval, removed plugins stop
//! taking new invocations, and a warm code cache compiles nothing.

use crate::util::{TestCommand, error_text, key, serve, settings_in};
use paddock::plugins::Manifest;
use paddock::plugins::cache::{Compiled, ContentHash};
use paddock::runtime::{Reload, RunOptions, Runtime, Watch};
use paddock_test_guests::{guests, variant};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::broadcast::Receiver;

/// Writes plugin `name` into `dir` with its component in its own folder.
fn write_plugin(dir: &Path, name: &str, version: &str, wasm: &[u8], capabilities: &str) {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("agent.wasm"), wasm).unwrap();
    std::fs::write(
        folder.join("agent.toml"),
        format!("name = {name:?}\nversion = {version:?}\ncomponent = \"agent.wasm\"\n[capabilities]\n{capabilities}"),
    )
    .unwrap();
}

/// The version id of plugin `name` in `plugins` with component `wasm`, from its manifest as written.
fn id_of(plugins: &Path, name: &str, wasm: &[u8]) -> String {
    Manifest::load(&plugins.join(name).join("agent.toml")).unwrap().version_id(&ContentHash::of(wasm))
}

fn host(dir: &Path, toml: &str) -> Runtime {
    let plugins = format!("[host]\nplugins = {:?}\n", dir.join("plugins").display().to_string());
    let toml = match toml.contains("[host]\n") {
        true => toml.replacen("[host]\n", &plugins, 1),
        false => format!("{plugins}{toml}"),
    };
    Runtime::new(settings_in(dir, &toml)).expect("engine starts")
}

/// The next event about `name` that `pick` accepts, within 20 s.
async fn next(events: &mut Receiver<(String, Reload)>, name: &str, pick: impl Fn(&Reload) -> bool) -> Reload {
    let wait = async {
        loop {
            match events.recv().await {
                Ok((n, r)) if n == name && pick(&r) => return r,
                Ok(_) => {}
                Err(e) => panic!("reload events ended: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), wait).await.expect("the reload happened within 20 s")
}

async fn watching(rt: &Runtime) -> (Watch, Receiver<(String, Reload)>) {
    let watch = rt.watch(Duration::from_millis(20)).await.expect("the plugins folder is watched");
    let events = watch.events();
    (watch, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_replacements_under_eight_clients_fail_no_invocation_and_versions_only_move_forward() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &variant(&base, 0), "");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    let first = rt.load("echo").unwrap().version.to_string();

    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for client in 0..8 {
        let (rt, stop) = (rt.clone(), stop.clone());
        clients.push(tokio::spawn(async move {
            let mut seen: Vec<String> = Vec::new();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let outcome = match rt.load("echo") {
                    Ok(agent) => rt.run(&agent, &format!("{{\"client\":{client}}}"), &RunOptions::default()).await,
                    Err(e) => {
                        failures.push(format!("load: {e}"));
                        continue;
                    }
                };
                match outcome {
                    Ok(o) if o.result.is_ok() => seen.push(o.version.to_string()),
                    Ok(o) => failures.push(error_text(&o)),
                    Err(e) => failures.push(e.to_string()),
                }
            }
            (seen, failures)
        }));
    }

    // Each replacement writes the component in place (readers may see it
    // half-written) and bumps the manifest's version.
    let mut order = vec![first];
    for n in 1..=20u32 {
        let wasm = variant(&base, n);
        std::fs::write(plugins.join("echo/agent.wasm"), &wasm).unwrap();
        std::fs::write(
            plugins.join("echo/agent.toml"),
            format!("name = \"echo\"\nversion = \"1.0.{n}\"\ncomponent = \"agent.wasm\"\n"),
        )
        .unwrap();
        let expected = id_of(&plugins, "echo", &wasm);
        loop {
            let reload = next(&mut events, "echo", |r| matches!(r, Reload::Swapped { .. })).await;
            let Reload::Swapped { to, .. } = reload else { unreachable!() };
            order.push(to.to_string());
            if *to == *expected {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    stop.store(true, Ordering::Relaxed);

    let rank: HashMap<&str, usize> = order.iter().enumerate().map(|(i, v)| (v.as_str(), i)).collect();
    let mut total = 0;
    let mut served = std::collections::HashSet::new();
    for client in clients {
        let (seen, failures) = client.await.unwrap();
        assert_eq!(failures, Vec::<String>::new(), "no invocation fails during reloads");
        let ranks: Vec<usize> =
            seen.iter().map(|v| *rank.get(v.as_str()).unwrap_or_else(|| panic!("{v} was never swapped in"))).collect();
        assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "a client saw versions move backwards: {seen:?}");
        total += seen.len();
        served.extend(seen);
    }
    assert!(total > 100, "the clients kept invoking ({total} invocations)");
    assert!(served.len() >= 10, "most versions served invocations ({} of {})", served.len(), order.len());
    assert_eq!(rt.load("echo").unwrap().version.as_ref(), order.last().unwrap().as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_or_a_component_of_another_world_never_replaces_the_serving_version() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let good = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &good, "");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    let serving = rt.load("echo").unwrap().version.clone();

    // The second is an empty component: the preamble alone.
    let empty_component = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
    for (bytes, error) in [
        (
            b"garbage, not wasm".to_vec(),
            "not a WebAssembly file (it is text; a component starts with the bytes \\0asm)",
        ),
        (
            empty_component,
            "does not fit world paddock:agent/agent-world@0.1.0: missing export `paddock:agent/agent@0.1.0` (it exports nothing)",
        ),
    ] {
        // Written whole and renamed into place, so the watcher never sees the
        // file empty halfway through a write (another failure, another test).
        std::fs::write(plugins.join("echo/agent.wasm.new"), &bytes).unwrap();
        std::fs::rename(plugins.join("echo/agent.wasm.new"), plugins.join("echo/agent.wasm")).unwrap();
        let Reload::Failed(message) = next(&mut events, "echo", |r| matches!(r, Reload::Failed(_))).await else {
            unreachable!()
        };
        assert!(message.ends_with(error), "{message}");
        assert_eq!(rt.load("echo").unwrap().version, serving, "the old version keeps serving");
        let outcome = crate::util::run(&rt, "echo", "{}").await;
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
        let status = rt.plugins().into_iter().find(|p| p.name == "echo").unwrap();
        assert!(status.last_error.unwrap().message.ends_with(error));
        assert_eq!(status.serving.unwrap().version, *serving);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_asking_for_a_new_route_is_held_until_approved() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &base, "routes = [\"fast\"]\n");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    let wasm = variant(&base, 2);
    write_plugin(&plugins, "echo", "2.0.0", &wasm, "routes = [\"fast\", \"smart\"]\n");
    let v2 = id_of(&plugins, "echo", &wasm);
    let held = next(&mut events, "echo", |r| matches!(&r, Reload::Held { version, .. } if **version == *v2)).await;
    assert_eq!(held, Reload::Held { version: v2.as_str().into(), asks: vec!["route \"smart\"".into()] });
    // The component may have changed before the manifest did: what serves is
    // whichever version did not ask for more.
    let serving = rt.load("echo").unwrap();
    assert_eq!(*serving.requested.routes, ["fast".to_string()], "a version without the new route serves");
    let v1 = serving.version.clone();
    let status = rt.plugins().into_iter().find(|p| p.name == "echo").unwrap();
    assert_eq!(status.held.unwrap().version.version, v2);

    let swapped = Reload::Swapped { from: Some(v1), to: v2.as_str().into() };
    let approved = rt.approve("echo", &v2);
    // The watcher's own sync may release the approved version first.
    if approved.is_empty() {
        assert_eq!(next(&mut events, "echo", |r| matches!(r, Reload::Swapped { .. })).await, swapped);
    } else {
        assert_eq!(approved, vec![("echo".to_string(), swapped)]);
    }
    assert_eq!(*rt.load("echo").unwrap().version, *v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_asking_for_a_new_tool_or_host_is_held_and_one_asking_for_fewer_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &base, "tools = [\"kit/*\"]\n");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    let narrower = variant(&base, 1);
    write_plugin(&plugins, "echo", "2.0.0", &narrower, "tools = [\"kit/echo\"]\n");
    let v2 = id_of(&plugins, "echo", &narrower);
    let swapped = next(&mut events, "echo", |r| matches!(r, Reload::Swapped { .. })).await;
    assert!(matches!(&swapped, Reload::Swapped { to, .. } if **to == *v2), "{swapped:?}");
    let wider = variant(&base, 2);
    let asking = "tools = [\"kit/echo\", \"web/*\"]\nhttp = [\"api.example.com\"]\n";
    write_plugin(&plugins, "echo", "3.0.0", &wider, asking);
    let v3 = id_of(&plugins, "echo", &wider);
    let held = next(&mut events, "echo", |r| matches!(&r, Reload::Held { version, .. } if **version == *v3)).await;
    let asks = vec!["tool \"web/*\"".into(), "host \"api.example.com\"".into()];
    assert_eq!(held, Reload::Held { version: v3.as_str().into(), asks });
    assert_eq!(*rt.load("echo").unwrap().requested.tools, ["kit/echo".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_capability_every_tenant_already_grants_goes_live_without_approval() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &base, "routes = [\"fast\"]\n");
    let rt = host(
        dir.path(),
        "[tenants.a]\nagents = [\"echo\"]\nroutes = [\"fast\", \"smart\"]\n[tenants.b]\nagents = [\"other\"]\n",
    );
    let (_watch, mut events) = watching(&rt).await;
    write_plugin(&plugins, "echo", "2.0.0", &variant(&base, 1), "routes = [\"fast\", \"smart\"]\n");
    let reload = next(&mut events, "echo", |r| match r {
        Reload::Swapped { to, .. } => to.starts_with("2.0.0+"),
        other => matches!(other, Reload::Held { .. }),
    })
    .await;
    assert!(matches!(&reload, Reload::Swapped { .. }), "{reload:?}");
    assert_eq!(*rt.load("echo").unwrap().requested.routes, ["fast".to_string(), "smart".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_is_no_way_around_a_hold() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    let durable = "[host]\nplugin-state = \"durable\"\n";
    write_plugin(&plugins, "echo", "1.0.0", &base, "");
    {
        let rt = host(dir.path(), durable);
        assert!(rt.load("echo").is_ok());
    }
    // While no host runs, the plugin is replaced by one asking to call another agent.
    let wasm = variant(&base, 1);
    write_plugin(&plugins, "echo", "1.1.0", &wasm, "agents = [\"billing\"]\n");
    let v2 = id_of(&plugins, "echo", &wasm);
    let rt = host(dir.path(), durable);
    let err = rt.load("echo").err().expect("the wider version does not serve").to_string();
    assert_eq!(
        err,
        format!(
            "plugin \"echo\" has no version serving: version {v2} is held: it asks for calling agent \"billing\", which the version before it did not; approve it with `paddock plugins approve echo {v2}`"
        )
    );
    // The CLI writes the approval; a host started afterwards serves it.
    let ran = TestCommand::new(dir.path(), &["--plugins", "plugins", "plugins", "approve", "echo", &v2]).run();
    assert_eq!((ran.code, ran.stdout.as_str()), (0, format!("approved echo {v2}\n").as_str()), "{}", ran.stderr);
    let rt = host(dir.path(), durable);
    assert_eq!(*rt.load("echo").unwrap().version, *v2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_plugin_stops_new_invocations_and_lets_running_ones_finish() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    write_plugin(&plugins, "slow", "1.0.0", &std::fs::read(guests::WATCHER).unwrap(), "");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    let agent = rt.load("slow").unwrap();
    let running = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.run(&agent, r#"{"wait_ms":1500}"#, &RunOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    std::fs::remove_dir_all(plugins.join("slow")).unwrap();
    assert_eq!(next(&mut events, "slow", |_| true).await, Reload::Removed);
    let err = rt.load("slow").err().expect("no new invocation").to_string();
    assert!(err.starts_with("no plugin named \"slow\" in "), "{err}");
    let finished = running.await.unwrap().unwrap();
    assert_eq!(finished.result.unwrap(), "0 changes", "the running invocation finished on the removed version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_a_warm_code_cache_compiles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    for n in 0..3 {
        write_plugin(&plugins, &format!("p{n}"), "1.0.0", &variant(&base, 100 + n), "");
    }
    let cached = format!("[host]\ncode-cache = {:?}\n", dir.path().join("code").display().to_string());
    let cold = host(dir.path(), &cached);
    assert_eq!(cold.sync().await.len(), 3);
    // A tiered host serves Winch's code first and compiles the optimized code behind it.
    assert!(cold.wait_optimized(Duration::from_secs(120)), "the optimized code was compiled within 120 s");
    let cache = cold.code_cache().unwrap();
    assert_eq!((cache.compiles(), cache.hits()), (3, 0));
    let warm = host(dir.path(), &cached);
    warm.sync().await;
    let cache = warm.code_cache().unwrap();
    assert_eq!((cache.compiles(), cache.hits()), (0, 3));
    assert!(warm.plugins().iter().all(|p| p.serving.as_ref().unwrap().compiled == Compiled::Cached));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_only_change_is_a_new_version_that_compiles_nothing_and_keeps_its_id_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let wasm = variant(&std::fs::read(guests::ECHO).unwrap(), 300);
    write_plugin(&plugins, "echo", "1.0.0", &wasm, "");
    let cached = format!("[host]\ncode-cache = {:?}\n", dir.path().join("code").display().to_string());
    let rt = host(dir.path(), &cached);
    let (_watch, mut events) = watching(&rt).await;
    let v1 = rt.load("echo").unwrap().version.clone();
    assert_eq!(*v1, id_of(&plugins, "echo", &wasm));
    assert!(rt.wait_optimized(Duration::from_secs(120)), "the optimized code was compiled within 120 s");
    let compiles = rt.code_cache().unwrap().compiles();

    // The same component and manifest version, a new capability: held under an id of its own.
    write_plugin(&plugins, "echo", "1.0.0", &wasm, "approvals = true\n");
    let v2 = id_of(&plugins, "echo", &wasm);
    assert!(v2.starts_with("1.0.0+") && v2 != *v1, "{v1} then {v2}");
    let held = next(&mut events, "echo", |r| matches!(r, Reload::Held { .. })).await;
    assert_eq!(held, Reload::Held { version: v2.as_str().into(), asks: vec!["approvals".into()] });
    let swapped = Reload::Swapped { from: Some(v1), to: v2.as_str().into() };
    let approved = rt.approve("echo", &v2);
    // The watcher's own sync may release the approved version first.
    if approved.is_empty() {
        assert_eq!(next(&mut events, "echo", |r| matches!(r, Reload::Swapped { .. })).await, swapped);
    } else {
        assert_eq!(approved, vec![("echo".to_string(), swapped)]);
    }
    assert_eq!(rt.code_cache().unwrap().compiles(), compiles, "the component's code was not compiled again");
    drop((_watch, rt));

    // A restart loads the same files under the same id, its code from the cache.
    let restarted = host(dir.path(), &cached);
    assert_eq!(*restarted.load("echo").unwrap().version, *v2);
    assert_eq!(restarted.code_cache().unwrap().compiles(), 0);
}

/// Sixteen threads loading `name` at once: each one's version (its address
/// and id), or error.
fn load_at_once(rt: &Runtime, name: &str) -> Vec<Result<(usize, Arc<str>), String>> {
    let start = std::sync::Barrier::new(16);
    std::thread::scope(|s| {
        let loads: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    rt.load(name).map(|a| (Arc::as_ptr(&a) as usize, a.version.clone())).map_err(|e| e.to_string())
                })
            })
            .collect();
        loads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn sixteen_first_loads_at_once_compile_once_and_all_get_that_version() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&dir.path().join("plugins"), "p", "1.0.0", &variant(&base, 200), "");
    let rt = host(dir.path(), &format!("[host]\ncode-cache = {:?}\n", dir.path().join("code").display().to_string()));
    let loads = load_at_once(&rt, "p");
    assert!(loads.iter().all(|l| l.is_ok() && l == &loads[0]), "one version for all: {loads:?}");
    // Served from Winch's code at once; Cranelift's, compiled behind it, once.
    assert!(rt.wait_optimized(Duration::from_secs(120)), "the optimized code was compiled within 120 s");
    let cache = rt.code_cache().unwrap();
    assert_eq!((cache.compiles(), cache.hits()), (1, 0));
}

#[test]
fn loads_waiting_on_a_first_load_that_fails_get_its_error_and_a_later_load_tries_again() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    write_plugin(&plugins, "p", "1.0.0", b"not wasm at all", "");
    let rt = host(dir.path(), "");
    let component = plugins.join("p/agent.wasm").display().to_string();
    let refused = format!("{component}: not a WebAssembly file (it is text; a component starts with the bytes \\0asm)");
    for load in load_at_once(&rt, "p") {
        let err = load.unwrap_err();
        assert!(err == refused || err == format!("plugin \"p\" has no version serving: {refused}"), "{err}");
    }
    std::fs::write(plugins.join("p/agent.wasm"), std::fs::read(guests::ECHO).unwrap()).unwrap();
    assert_eq!(&*rt.load("p").unwrap().name, "p");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_on_every_worker_while_the_watcher_builds_a_new_plugin_wait_for_that_version() {
    let dir = tempfile::tempdir().unwrap();
    // Compiled, not mapped from a cache: the build takes long enough to wait on.
    let rt = host(dir.path(), "[host]\ncode-cache = false\n");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&dir.path().join("plugins"), "p", "1.0.0", &variant(&base, 201), "");
    let syncing = tokio::spawn({
        let rt = rt.clone();
        async move { rt.sync().await }
    });
    // As soon as the sync has made the slot, while it compiles, more loads
    // than there are workers: waiting must not starve the sync's own task.
    while !rt.plugins().iter().any(|p| p.name == "p") {
        tokio::task::yield_now().await;
    }
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move { rt.load("p").map(|a| a.version.clone()).map_err(|e| e.to_string()) })
        })
        .collect();
    let synced = syncing.await.unwrap();
    let Reload::Swapped { to, .. } = &synced[0].1 else { panic!("{synced:?}") };
    for load in loads {
        assert_eq!(load.await.unwrap().as_ref(), Ok(to));
    }
}

async fn invoke(client: &reqwest::Client, address: &str, agent: &str, token: &str) -> (u16, serde_json::Value) {
    let url = format!("http://{address}/v1/agents/{agent}/run");
    let response = client.post(url).bearer_auth(token).body("{}").send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paddock_serve_reloads_holds_a_wider_version_and_serves_it_once_the_cli_approves_it() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &base, "");
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nledger = \"memory\"\n").unwrap();
    let token = key(dir.path(), "default", "run");
    let served = serve(dir.path(), &["--debounce", "20ms"]);
    paddock::gateway::install_crypto();
    let client = reqwest::Client::new();
    let v1 = id_of(&plugins, "echo", &base);
    let (status, body) = invoke(&client, &served.address, "echo", &token).await;
    assert_eq!((status, body["version"].as_str()), (200, Some(v1.as_str())));
    let (status, body) = invoke(&client, &served.address, "nobody", &token).await;
    assert_eq!((status, body["error"]["kind"].as_str()), (404, Some("not-found")));

    let wasm = variant(&base, 7);
    // The manifest goes first, so that no state between the two writes (a new
    // component under the old manifest) can go live and reset the counts.
    let manifest =
        "name = \"echo\"\nversion = \"2.0.0\"\ncomponent = \"agent.wasm\"\n[capabilities]\napprovals = true\n";
    std::fs::write(plugins.join("echo/agent.toml"), manifest).unwrap();
    std::fs::write(plugins.join("echo/agent.wasm"), &wasm).unwrap();
    let v2 = id_of(&plugins, "echo", &wasm);
    let list = || TestCommand::new(dir.path(), &["plugins", "list", "--json"]).run();
    let mut rows = serde_json::Value::Null;
    for _ in 0..200 {
        rows = serde_json::from_str(list().stdout.trim()).unwrap();
        if rows[0]["held"]["version"]["version"] == *v2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows[0]["held"]["asks"], serde_json::json!(["approvals"]), "{rows}");
    assert_eq!((&rows[0]["serving"]["version"], &rows[0]["serving"]["invocations"]), (&v1.clone().into(), &1.into()));
    let (_, body) = invoke(&client, &served.address, "echo", &token).await;
    assert_ne!(body["version"].as_str(), Some(v2.as_str()), "the held version does not serve");

    let ran = TestCommand::new(dir.path(), &["plugins", "approve", "echo", &v2]).run();
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let mut version = String::new();
    for _ in 0..200 {
        version = invoke(&client, &served.address, "echo", &token).await.1["version"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if version == v2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(version, v2, "the approved version serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn putting_the_serving_files_back_drops_the_held_version() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &base, "");
    let rt = host(dir.path(), "");
    let (_watch, mut events) = watching(&rt).await;
    write_plugin(&plugins, "echo", "1.0.0", &base, "approvals = true\n");
    next(&mut events, "echo", |r| matches!(r, Reload::Held { .. })).await;
    write_plugin(&plugins, "echo", "1.0.0", &base, "");
    for _ in 0..400 {
        if rt.plugins()[0].held.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = &rt.plugins()[0];
    assert!(status.held.is_none(), "{status:?}");
    assert_eq!(status.serving.as_ref().unwrap().version, id_of(&plugins, "echo", &base));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_watched_files_is_not_a_change_so_an_untouched_folder_is_synced_once() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let wasm = std::fs::read(guests::ECHO).unwrap();
    write_plugin(&plugins, "echo", "1.0.0", &wasm, "");
    let rt = host(dir.path(), "");
    let (watch, mut events) = watching(&rt).await;
    // Each sync reads every manifest and folder it watches, and so may anyone.
    for _ in 0..5 {
        std::fs::read(plugins.join("echo/agent.toml")).unwrap();
        std::fs::read_dir(&plugins).unwrap().for_each(drop);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // Fifteen debounce periods more, in which a sync setting off the next would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watch.syncs(), 1, "only the first sync: nothing changed");

    let manifest = "name = \"echo\"\nversion = \"1.0.1\"\ncomponent = \"agent.wasm\"\n";
    std::fs::write(plugins.join("echo/agent.toml"), manifest).unwrap();
    next(&mut events, "echo", |r| matches!(r, Reload::Swapped { .. })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(watch.syncs(), 2, "one sync for the one change, and none set off by its own reads");
}
