//! The plugins folder as a hostile tenant would use it: a new folder
//! claiming a name that serves, a manifest pointing at a file outside the
//! plugins, a flow naming a path, and a folder that cannot be read for a
//! moment. None replaces an agent, reads a file it should not, or shows what
//! a file holds.

use crate::util::{key, serve, settings_in};
use paddock::plugins::cache::ContentHash;
use paddock::runtime::{Reload, Runtime};
use paddock_test_guests::{guests, variant};
use std::path::Path;

/// Writes `plugins/<folder>/agent.toml` naming `name`, with `component`
/// (relative to the folder), and the component bytes at `wasm` if given.
fn write(plugins: &Path, folder: &str, name: &str, component: &str, wasm: Option<&[u8]>) {
    let dir = plugins.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    if let Some(bytes) = wasm {
        std::fs::write(dir.join(component), bytes).unwrap();
    }
    let manifest = format!("name = {name:?}\nversion = \"1.0.0\"\ncomponent = {component:?}\n");
    std::fs::write(dir.join("agent.toml"), manifest).unwrap();
}

fn host(dir: &Path) -> Runtime {
    let toml = format!("[host]\nplugins = {:?}\n", dir.join("plugins").display().to_string());
    Runtime::new(settings_in(dir, &toml)).expect("engine starts")
}

/// The hash of the version `name` serves.
fn serving_hash(rt: &Runtime, name: &str) -> String {
    let plugins = rt.plugins();
    let row = plugins.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} not listed: {plugins:?}"));
    row.serving.as_ref().unwrap_or_else(|| panic!("{name} not serving: {row:?}")).hash.clone()
}

/// The last error listed for the plugin row `name` (a name or a manifest file).
fn listed_error(rt: &Runtime, name: &str) -> String {
    let plugins = rt.plugins();
    let row = plugins.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} not listed: {plugins:?}"));
    row.last_error.as_ref().unwrap_or_else(|| panic!("no error for {name}: {row:?}")).message.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_folder_claiming_a_served_name_never_replaces_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    let (genuine, forged) = (variant(&base, 301), variant(&base, 302));
    write(&plugins, "normal", "normal", "agent.wasm", Some(&genuine));
    let rt = host(dir.path());
    rt.sync().await;
    // Sorted first, asking for nothing more than the genuine version.
    write(&plugins, "aaa-hijack", "normal", "agent.wasm", Some(&forged));
    assert_eq!(rt.sync().await, Vec::<(String, Reload)>::new(), "nothing swapped");
    assert_eq!(serving_hash(&rt, "normal"), ContentHash::of(&genuine).hex());
    let hijack = plugins.join("aaa-hijack/agent.toml");
    assert_eq!(
        listed_error(&rt, &hijack.display().to_string()),
        format!(
            "another plugin is also named \"normal\": {} is ignored; the name is {}'s",
            hijack.display(),
            plugins.join("normal/agent.toml").display()
        )
    );
    // A host starting with both serves the folder of that name.
    let restarted = host(dir.path());
    restarted.sync().await;
    assert_eq!(serving_hash(&restarted, "normal"), ContentHash::of(&genuine).hex());
    assert_eq!(serving_hash(&restarted, "normal"), serving_hash(&rt, "normal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_outside_the_plugin_folder_is_refused_naming_the_path_never_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0:the tenant's secret").unwrap();
    // Up and out, and through a symlink that stays inside as written.
    write(&plugins, "climb", "climb", "../../secret.txt", None);
    write(&plugins, "linked", "linked", "agent.wasm", None);
    std::os::unix::fs::symlink(&secret, plugins.join("linked/agent.wasm")).unwrap();
    let rt = host(dir.path());
    rt.sync().await;
    let allowed = |folder: &str| format!("{}, {}", plugins.join(folder).display(), plugins.join("target").display());
    let climb = plugins.join("climb/agent.toml");
    assert_eq!(
        listed_error(&rt, &climb.display().to_string()),
        format!(
            "{}: component: {} is outside the plugin's folder and host.component-dirs (allowed: {})",
            climb.display(),
            secret.display(),
            allowed("climb")
        )
    );
    let linked = plugins.join("linked/agent.toml");
    assert_eq!(
        listed_error(&rt, &linked.display().to_string()),
        format!(
            "{}: component: {} is outside the plugin's folder and host.component-dirs (allowed: {})",
            linked.display(),
            plugins.join("linked/agent.wasm").display(),
            allowed("linked")
        )
    );
    for name in ["climb", "linked"] {
        let err = rt.load(name).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("is outside the plugin's folder"), "{err}");
    }
    // A file inside that is not WebAssembly is named, and what it holds is not shown.
    std::fs::write(plugins.join("linked/inside.wasm"), "root:x:0:0:the tenant's secret").unwrap();
    write(&plugins, "inside", "inside", "inside.wasm", None);
    std::fs::rename(plugins.join("linked/inside.wasm"), plugins.join("inside/inside.wasm")).unwrap();
    let err = rt.load("inside").map(|_| ()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: not a WebAssembly file (it is text; a component starts with the bytes \\0asm)",
            plugins.join("inside/inside.wasm").display()
        )
    );
    let binary = [0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3];
    std::fs::write(plugins.join("inside/inside.wasm"), binary).unwrap();
    let fresh = host(dir.path());
    let err = fresh.load("inside").map(|_| ()).unwrap_err().to_string();
    assert!(err.ends_with("not a WebAssembly file (it does not start with the bytes \\0asm)"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugins_folder_that_cannot_be_read_keeps_every_agent_serving() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let base = std::fs::read(guests::ECHO).unwrap();
    write(&plugins, "one", "one", "agent.wasm", Some(&variant(&base, 311)));
    write(&plugins, "two", "two", "agent.wasm", Some(&variant(&base, 312)));
    let rt = host(dir.path());
    assert_eq!(rt.sync().await.len(), 2);
    // The folder is gone for a moment (an unmounted volume, a rename in progress).
    let aside = dir.path().join("aside");
    std::fs::rename(&plugins, &aside).unwrap();
    assert_eq!(rt.sync().await, Vec::<(String, Reload)>::new());
    for name in ["one", "two"] {
        let agent = rt.load(name).unwrap();
        let outcome = rt.run(&agent, "{}", &Default::default()).await.unwrap();
        assert!(outcome.result.is_ok(), "{name} still runs: {:?}", outcome.result);
    }
    let message = listed_error(&rt, &plugins.display().to_string());
    assert!(message.starts_with(&format!("{}: cannot read the plugins folder: ", plugins.display())), "{message}");
    assert!(message.ends_with("; every loaded agent keeps serving"), "{message}");
    std::fs::rename(&aside, &plugins).unwrap();
    assert_eq!(rt.sync().await, Vec::<(String, Reload)>::new(), "back as it was: nothing to change");
    assert!(rt.plugins().iter().all(|p| p.last_error.is_none()), "{:?}", rt.plugins());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_shows_no_bytes_of_a_file_a_manifest_points_at_and_runs_no_flow_naming_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "root:x:0:0:the tenant's secret").unwrap();
    write(&dir.path().join("plugins"), "climb", "climb", "../../secret.txt", None);
    std::fs::write(dir.path().join("paddock.toml"), "[host]\nplugin-state = \"memory\"\nledger = \"memory\"\n")
        .unwrap();
    let admin = key(dir.path(), "acme", "admin");
    paddock::gateway::install_crypto();
    let served = serve(dir.path(), &[]);
    let client = reqwest::Client::new();
    let base = format!("http://{}", served.address);
    let listed =
        client.get(format!("{base}/v1/plugins")).bearer_auth(&admin).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains("is outside the plugin's folder"), "{listed}");
    let run = client.post(format!("{base}/v1/agents/climb/run")).bearer_auth(&admin).body("{}").send().await.unwrap();
    assert_eq!(run.status().as_u16(), 503);
    let body = run.text().await.unwrap();
    assert!(body.contains("is outside the plugin's folder"), "{body}");
    // A flow posted by a caller may name plugins only.
    let spec = format!("[flow]\nname = \"x\"\n[steps.main]\nagent = {:?}\n", secret.display().to_string());
    let inline = serde_json::json!({ "spec": spec, "origin": "posted.toml" }).to_string();
    let flow = client.post(format!("{base}/v1/flows/run")).bearer_auth(&admin).body(inline).send().await.unwrap();
    assert_eq!(flow.status().as_u16(), 422);
    let body: serde_json::Value = flow.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        format!(
            "posted.toml: steps.main.agent: `{}` is not an agent name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter",
            secret.display()
        )
    );
    for text in [listed, body.to_string()] {
        assert!(!text.contains("root:") && !text.contains("72 6f 6f 74"), "{text}");
    }
}
