//! `paddock new`: write an agent's folder in one of the languages, ready for
//! `paddock build` and `paddock run` with no edits.
//!
//! Everything it writes is embedded in the binary: the sources of the example
//! agents (`plugins/hello-py`, `plugins/hello-js`, `plugins/hello-c`, so each
//! example is exactly what `paddock new` writes, and a test holds them to it),
//! the Rust template (`host/templates/rust`), the manifest and README
//! templates (`host/templates`), the WIT contract (`wit/`) and the SDKs
//! (`sdk/src`, `sdk/python`, `sdk/js`). Every agent carries its copy of the
//! contract and of its language's SDK, so it builds outside this repository:
//! a Python or JavaScript agent has the SDK's one module beside app.py or
//! app.js, where componentize-py and componentize-js find what it imports.
//!
//! A Rust agent is written with `paddock-sdk`, which is not published: the
//! SDK's sources are copied into the agent's `sdk/`, next to `wit/`, which the
//! SDK binds as `../wit` both there and in this repository. Its build command
//! builds in one target folder shared by every Rust agent on the machine
//! (`$PADDOCK_CACHE_DIR/target`, else `$XDG_CACHE_HOME/paddock/target`, else
//! `~/.cache/paddock/target`), so wit-bindgen, syn and serde compile once per
//! machine rather than once per agent, then copies the component into the
//! agent's `build/`. The folder is chosen by the shell when the agent builds,
//! not written into it by `paddock new`: the agent's files name no path of
//! this machine, and it builds unchanged on another one.

use super::{EXIT_USAGE, fail};
use crate::core::names::validate_agent;
use crate::plugins::manifest::FILE_NAME;
use crate::toolchain::{self, Lang, SystemProbe};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The agent's name: 1 to 64 of a-z 0-9 - _, starting with a letter
    name: String,
    /// Its language
    #[arg(long, value_enum)]
    lang: Lang,
    /// The folder to create [default: NAME in the plugins folder]
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// A file of a template: where it goes in the agent's folder, and its text.
struct File {
    path: &'static str,
    text: &'static str,
}

macro_rules! embed {
    ($path:literal, $source:literal) => {
        File { path: $path, text: include_str!($source) }
    };
}

// `WIT_FILES`, `SDK_FILES`, `PYTHON_SDK_FILES` and `JS_SDK_FILES`: every
// file of `wit/`, `sdk/src/`, `sdk/python/` and `sdk/js/`, as the build
// script found them.
include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The SDK's manifest, with no workspace keys (a unit test holds its
/// dependencies to the workspace's).
const SDK_MANIFEST: File = embed!("sdk/Cargo.toml", "../../templates/rust/sdk/Cargo.toml.in");

const MANIFEST: &str = include_str!("../../templates/agent.toml");
const README: &str = include_str!("../../templates/README.md");

/// What differs between languages.
struct Template {
    /// The language's name in prose.
    language: &'static str,
    /// Its sources, with `{{name}}` where the agent's name goes.
    sources: &'static [File],
    /// The SDK the agent carries: its files, as paths in the agent's folder.
    sdk: &'static [(&'static str, &'static str)],
    /// The file to edit, named in the README.
    main: &'static str,
    /// The `[build]` lines of the manifest, which leave the component in
    /// `build/agent.wasm`; `{{crate}}` is the name with `_` for `-`.
    build: &'static str,
    /// What the README adds for this language.
    notes: &'static str,
    /// The memory it asks for: interpreters need room for their heap.
    memory: &'static str,
    /// Its `.gitignore`.
    ignore: &'static str,
    /// Its test case, `tests/ada.json`: a run of its `{"name":"ada"}` as
    /// recorded, for `paddock test` to replay.
    case: &'static str,
}

fn template(lang: Lang) -> Template {
    match lang {
        Lang::Rust => Template {
            language: "Rust",
            sources: &[
                embed!("Cargo.toml", "../../templates/rust/Cargo.toml.in"),
                embed!("src/lib.rs", "../../templates/rust/src/lib.rs"),
            ],
            sdk: SDK_FILES,
            main: "src/lib.rs",
            build: "# cargo builds in the target folder every Rust agent of `paddock new` shares on this\n\
                    # machine (see README.md), so crates compile once; the component is copied into build/.\n\
                    command = \"\"\"\n\
                    target=\"${PADDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock}/target\" && \\\n\
                    cargo build --release --target wasm32-wasip2 --target-dir \"$target\" && \\\n\
                    mkdir -p build && cp \"$target/wasm32-wasip2/release/{{crate}}.wasm\" build/agent.wasm\"\"\"",
            notes: include_str!("../../templates/rust/README.md"),
            memory: "16MiB",
            ignore: "target/\nbuild/\n.paddock/\n",
            case: include_str!("../../templates/rust/tests/ada.json"),
        },
        Lang::Python => Template {
            language: "Python",
            sources: &[embed!("app.py", "../../../plugins/hello-py/app.py")],
            sdk: PYTHON_SDK_FILES,
            main: "app.py",
            build: "# componentize-py bundles CPython and app.py into one component (~18 MB). To send\n\
                    # HTTP requests, build `-w http-agent-world` instead (see README.md).\n\
                    command = \"componentize-py -d wit -w agent-world componentize app -o build/agent.wasm\"",
            notes: include_str!("../../templates/python/README.md"),
            memory: "32MiB",
            ignore: "build/\n__pycache__/\n.paddock/\n",
            case: include_str!("../../../plugins/hello-py/tests/ada.json"),
        },
        Lang::Js => Template {
            language: "JavaScript",
            sources: &[embed!("app.js", "../../../plugins/hello-js/app.js")],
            sdk: JS_SDK_FILES,
            main: "app.js",
            build: "# componentize-js bundles SpiderMonkey and app.js into one component (~12 MB);\n\
                    # `-d http` leaves out `fetch` (wasi:http), which the host links only for an agent\n\
                    # that asks for hosts; `fetch-event` is for servers (see README.md).\n\
                    command = \"mkdir -p build && componentize-js app.js --wit wit --world-name agent-world -d http fetch-event -o build/agent.wasm\"",
            notes: include_str!("../../templates/js/README.md"),
            memory: "32MiB",
            ignore: "build/\n.paddock/\n",
            case: include_str!("../../../plugins/hello-js/tests/ada.json"),
        },
        Lang::C => Template {
            language: "C",
            sources: &[
                embed!("src/agent.c", "../../../plugins/hello-c/src/agent.c"),
                embed!("src/json.c", "../../../plugins/hello-c/src/json.c"),
                embed!("src/json.h", "../../../plugins/hello-c/src/json.h"),
            ],
            sdk: &[],
            main: "src/agent.c",
            build: "# clang compiles; paddock writes the bindings first and wraps the module into a\n\
                    # component after, in-process (no wit-bindgen or wasm-tools to install).\n\
                    command = \"\"\"\n\
                    paddock build c-bindings wit build/bindings && \\\n\
                    clang --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Ibuild/bindings -o build/core.wasm \\\n  \
                    src/*.c build/bindings/agent_world.c build/bindings/agent_world_component_type.o && \\\n\
                    paddock build component build/core.wasm -o build/agent.wasm\"\"\"",
            notes: "",
            memory: "16MiB",
            ignore: "build/\n.paddock/\n",
            case: include_str!("../../../plugins/hello-c/tests/ada.json"),
        },
    }
}

/// The files of agent `name` in `lang`: paths in its folder and their text.
fn render(name: &str, lang: Lang) -> Vec<(String, String)> {
    let t = template(lang);
    let crate_name = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{build}}", t.build)
            .replace("{{language}}", t.language)
            .replace("{{memory}}", t.memory)
            .replace("{{source}}", t.main)
            .replace("{{install}}", &lang.install())
            .replace("{{crate}}", &crate_name)
            .replace("{{name}}", name)
    };
    let mut files = vec![
        (FILE_NAME.to_string(), fill(MANIFEST)),
        ("README.md".to_string(), fill(README) + t.notes),
        (".gitignore".to_string(), t.ignore.to_string()),
        ("tests/ada.json".to_string(), t.case.to_string()),
    ];
    files.extend(t.sources.iter().map(|f| (f.path.to_string(), fill(f.text))));
    // The Rust SDK is a crate of its own, with its manifest.
    let sdk_manifest = matches!(lang, Lang::Rust).then_some((SDK_MANIFEST.path, SDK_MANIFEST.text));
    files.extend(WIT_FILES.iter().chain(sdk_manifest.iter()).chain(t.sdk).map(|(p, t)| (p.to_string(), t.to_string())));
    files
}

pub fn new(plugins_dir: &Path, args: NewArgs) -> u8 {
    if let Err(message) = validate_agent(&args.name) {
        return fail(EXIT_USAGE, message);
    }
    let dir = args.dir.clone().unwrap_or_else(|| plugins_dir.join(&args.name));
    if std::fs::read_dir(&dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return fail(
            EXIT_USAGE,
            format!("{} already exists and is not empty: choose another name or --dir", dir.display()),
        );
    }
    let files = render(&args.name, args.lang);
    for (path, text) in &files {
        let path = dir.join(path);
        let written = path.parent().map_or(Ok(()), std::fs::create_dir_all).and_then(|()| std::fs::write(&path, text));
        if let Err(e) = written {
            return fail(EXIT_USAGE, format!("cannot write {}: {e}", path.display()));
        }
    }
    println!("created {}: a {} agent ({} files)", dir.display(), template(args.lang).language, files.len());
    let (build, run) = match args.dir {
        None => (args.name.clone(), args.name.clone()),
        Some(_) => (dir.display().to_string(), dir.join(FILE_NAME).display().to_string()),
    };
    println!(
        "next:\n  paddock dev {build} --input '{{\"name\":\"ada\"}}'   # builds and runs it, again on every save\n  \
         paddock test {build}   # replays tests/ada.json, calling nothing\n  \
         paddock run {run} --input '{{\"name\":\"ada\"}}'   # once (--build to build first)"
    );
    let manifest = files.iter().find(|(path, _)| path == FILE_NAME).and_then(|(_, text)| build_command(text));
    let checked = toolchain::check(
        &toolchain::tools_in(&manifest.unwrap_or_default()),
        &SystemProbe::new(super::build::build_path()),
    );
    for missing in &checked.missing {
        eprintln!("warning: before building: {missing}");
    }
    0
}

/// The build command of a manifest's text.
fn build_command(manifest: &str) -> Option<String> {
    let table: toml::Table = manifest.parse().ok()?;
    table.get("build")?.get("command")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_wit_file_of_the_contract_is_embedded() {
        let on_disk = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit"), "wit");
        let embedded: Vec<&str> = WIT_FILES.iter().map(|f| f.0).collect();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn every_manifest_parses_and_names_its_component() {
        let dir = tempfile::tempdir().unwrap();
        for lang in Lang::ALL {
            let files = render("my-agent", lang);
            let (_, text) = files.iter().find(|(p, _)| p == FILE_NAME).unwrap();
            assert!(!text.contains("{{"), "{text}");
            let file = dir.path().join(format!("{}.toml", lang.name()));
            std::fs::write(&file, text).unwrap();
            let manifest = crate::plugins::Manifest::load(&file).unwrap_or_else(|e| panic!("{lang:?}: {e}"));
            assert_eq!(manifest.name, "my-agent");
            assert_eq!(manifest.capabilities.routes, ["fast"]);
            assert_eq!(build_command(text), Some(manifest.build.unwrap().command));
            assert_eq!(manifest.component, dir.path().join("build/agent.wasm"));
        }
    }

    /// Every file under `dir`, as `prefix/<path relative to dir>`, sorted.
    fn files_under(dir: &Path, prefix: &str) -> Vec<String> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() == "__pycache__" {
                continue; // what importing the Python SDK leaves, never embedded
            }
            let path = format!("{prefix}/{}", entry.file_name().to_string_lossy());
            match entry.file_type().unwrap().is_dir() {
                true => files.extend(files_under(&entry.path(), &path)),
                false => files.push(path),
            }
        }
        files.sort();
        files
    }

    #[test]
    fn every_file_of_the_sdk_is_embedded() {
        let on_disk = files_under(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk"), "sdk");
        // The Python and JavaScript SDKs go beside app.py and app.js: named here by where they come from.
        let beside = |folder: &str, files: &[(&str, &str)]| -> Vec<String> {
            files.iter().map(|(path, _)| format!("sdk/{folder}/{path}")).collect()
        };
        let mut embedded: Vec<String> = [SDK_MANIFEST.path].into_iter().map(str::to_string).collect();
        embedded.extend(beside("js", JS_SDK_FILES));
        embedded.extend(beside("python", PYTHON_SDK_FILES));
        embedded.extend(SDK_FILES.iter().map(|f| f.0.to_string()));
        embedded.sort();
        assert_eq!(embedded, on_disk);
    }

    #[test]
    fn python_and_js_agents_carry_their_sdk_beside_their_source_as_the_examples_do() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for (lang, example, sdk) in [(Lang::Python, "hello-py", "python"), (Lang::Js, "hello-js", "js")] {
            let files = render("my-agent", lang);
            let source = template(lang).main;
            let main = files.iter().find(|(p, _)| p == source).map(|(_, text)| text.as_str()).unwrap();
            for (path, text) in template(lang).sdk {
                let written = files.iter().find(|(p, _)| p == path);
                assert_eq!(written.map(|(_, t)| t.as_str()), Some(*text), "{lang:?}: {path} is written as embedded");
                assert_eq!(std::fs::read_to_string(root.join("sdk").join(sdk).join(path)).unwrap(), *text);
                let copy = std::fs::read_to_string(root.join("plugins").join(example).join(path)).unwrap();
                assert!(copy == *text, "plugins/{example}/{path} differs from sdk/{sdk}/{path}: copy it over");
                let module = path.trim_end_matches(".py");
                assert!(main.contains(&format!("from {module} import")) || main.contains(&format!("from './{path}'")));
            }
            assert!(!template(lang).sdk.is_empty(), "{lang:?} has an SDK");
            // Written over the SDK, not the raw bindings.
            assert!(!main.contains("wit_world.imports") && !main.contains("paddock:agent/"), "{main}");
        }
    }

    #[test]
    fn the_vendored_sdk_manifest_is_the_sdks_with_the_workspace_keys_written_out() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let read = |path: &str| -> toml::Table { std::fs::read_to_string(root.join(path)).unwrap().parse().unwrap() };
        let (workspace, sdk) = (read("Cargo.toml"), read("sdk/Cargo.toml"));
        // `key.workspace = true` takes the workspace's `[workspace.<section>] key`.
        let written_out = |section: &str| {
            let mut table = sdk[section].as_table().unwrap().clone();
            for (key, value) in table.iter_mut() {
                if value.get("workspace").and_then(toml::Value::as_bool) == Some(true) {
                    let only_inherits = value.as_table().is_some_and(|t| t.len() == 1);
                    assert!(
                        only_inherits,
                        "sdk/Cargo.toml: {section}.{key} adds keys to the workspace's, which this test does not resolve"
                    );
                    *value = workspace["workspace"][section][key].clone();
                }
            }
            toml::Value::Table(table)
        };
        let vendored: toml::Table = SDK_MANIFEST.text.parse().unwrap();
        let mut package = written_out("package");
        package.as_table_mut().unwrap().insert("publish".into(), false.into());
        assert_eq!(vendored["package"], package);
        assert_eq!(vendored["dependencies"], written_out("dependencies"));
        assert_eq!(vendored.len(), 2, "{vendored:?}");
    }

    #[test]
    fn a_rust_agent_is_written_with_the_sdk_it_carries_next_to_its_contract() {
        let files = render("my-agent", Lang::Rust);
        let file = |path: &str| {
            let found = files.iter().find(|(p, _)| p == path);
            found.map(|(_, text)| text.as_str()).unwrap_or_else(|| panic!("no {path} among {files:?}"))
        };
        let manifest: toml::Table = file("Cargo.toml").parse().unwrap();
        let dependencies = manifest["dependencies"].as_table().unwrap();
        assert_eq!(dependencies["paddock-sdk"]["path"].as_str(), Some("sdk"));
        assert!(!dependencies.contains_key("wit-bindgen"), "{dependencies:?}");
        let source = file("src/lib.rs");
        assert!(source.contains("impl Agent for Greeter") && source.contains("export_agent!(Greeter);"), "{source}");
        assert!(!source.contains("wit_bindgen") && !source.contains("llm::Request"), "{source}");
        // The SDK binds `../wit`: this repository's contract, and in the agent its own copy.
        assert!(file("sdk/src/lib.rs").contains("path: \"../wit\","));
        assert_eq!(file("wit/world.wit"), include_str!("../../../wit/world.wit"));
    }

    #[test]
    fn a_rust_agent_builds_in_the_shared_target_folder_and_copies_its_component_home() {
        let files = render("my-agent", Lang::Rust);
        let command = build_command(&files[0].1).unwrap();
        assert_eq!(
            command,
            "target=\"${PADDOCK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/paddock}/target\" && \
             cargo build --release --target wasm32-wasip2 --target-dir \"$target\" && \
             mkdir -p build && cp \"$target/wasm32-wasip2/release/my_agent.wasm\" build/agent.wasm"
        );
        assert_eq!(toolchain::tools_in(&command), [toolchain::Tool::Cargo { target: Some("wasm32-wasip2".into()) }]);
        let (choose, _) = command.split_once(" && ").unwrap();
        let folder = |vars: &[(&str, &str)]| {
            let out = std::process::Command::new("/bin/sh")
                .args(["-c", &format!("{choose} && printf %s \"$target\"")])
                .env_clear()
                .envs(vars.iter().copied())
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(folder(&[("HOME", "/home/ada")]), "/home/ada/.cache/paddock/target");
        assert_eq!(folder(&[("HOME", "/home/ada"), ("XDG_CACHE_HOME", "")]), "/home/ada/.cache/paddock/target");
        assert_eq!(folder(&[("HOME", "/home/ada"), ("XDG_CACHE_HOME", "/xdg")]), "/xdg/paddock/target");
        assert_eq!(folder(&[("XDG_CACHE_HOME", "/xdg"), ("PADDOCK_CACHE_DIR", "/shared")]), "/shared/target");
    }

    #[test]
    fn the_c_build_command_is_one_shell_line_of_three_steps() {
        let files = render("c-agent", Lang::C);
        let command = build_command(&files[0].1).unwrap();
        assert_eq!(
            command,
            "paddock build c-bindings wit build/bindings && clang --target=wasm32-wasi -mexec-model=reactor -O2 \
             -Wall -Wextra -Ibuild/bindings -o build/core.wasm src/*.c build/bindings/agent_world.c \
             build/bindings/agent_world_component_type.o && paddock build component build/core.wasm -o build/agent.wasm"
        );
        assert_eq!(
            toolchain::tools_in(&command),
            [toolchain::Tool::Clang { program: "clang".into(), target: Some("wasm32-wasi".into()), sysroot: None }]
        );
    }
}
