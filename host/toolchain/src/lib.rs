//! Building agents from source: the languages `paddock new` writes, the tools
//! a manifest's build command runs, whether they are installed (and exactly
//! what to install when not), and the steps of a C build done in-process
//! ([`c`]).
//!
//! A build command is a shell command, so the tools are recognised by the
//! programs it names (`cargo`, `componentize-py`, `componentize-js`, `clang`);
//! any other program is left to the shell. Checking first turns "command not
//! found" or a linker's cryptic refusal into one line naming the package.
//!
//! ```
//! use paddock_toolchain::{Tool, tools_in};
//! let tools = tools_in("mkdir -p build && componentize-py -d wit -w agent-world componentize app -o build/agent.wasm");
//! assert_eq!(tools, vec![Tool::ComponentizePy]);
//! ```

pub mod c;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py release the Python template is made and tested with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The componentize-js release the JavaScript template is made and tested with.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// A language `paddock new` writes agents in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with wit-bindgen, built by cargo for wasm32-wasip2.
    Rust,
    /// Python, built by componentize-py (which bundles CPython).
    Python,
    /// JavaScript, built by componentize-js (which bundles SpiderMonkey).
    #[value(alias = "javascript")]
    Js,
    /// C, built by clang for wasm32-wasi, with bindings and the component wrapper done by paddock.
    C,
}

impl Lang {
    /// Every language, in the order they are documented.
    pub const ALL: [Lang; 4] = [Lang::Rust, Lang::Python, Lang::Js, Lang::C];

    /// Its name on the command line (`--lang`).
    pub fn name(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        }
    }

    /// What to install for it on a Debian or Ubuntu machine, as commands.
    pub fn install(self) -> String {
        match self {
            Lang::Rust => "rustup target add wasm32-wasip2".to_string(),
            Lang::Python => format!("pip install componentize-py=={COMPONENTIZE_PY_VERSION}"),
            Lang::Js => format!("npm install -g @bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION}"),
            Lang::C => "apt-get install clang lld wasi-libc libclang-rt-dev-wasm32".to_string(),
        }
    }
}

/// A tool a build command runs, recognised by its program's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tool {
    /// `cargo`, building for `target` when the command names one.
    Cargo {
        /// The `--target` of the command.
        target: Option<String>,
    },
    /// `componentize-py`.
    ComponentizePy,
    /// `componentize-js`, a Node.js program.
    ComponentizeJs,
    /// A clang (`program` as written: `clang`, `clang-16`, a path).
    Clang {
        /// The program as the command names it.
        program: String,
        /// The `--target` of the command (none: the host, where nothing wasm-specific is checked).
        target: Option<String>,
        /// The `--sysroot` of the command.
        sysroot: Option<String>,
    },
}

/// A tool that is missing or cannot do the build, and how to get it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}; install it with: {install}")]
pub struct Missing {
    /// What is wrong, naming the tool.
    pub problem: String,
    /// The command (or page) that installs it.
    pub install: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Tools that are missing: the build cannot work until they are installed.
    pub missing: Vec<Missing>,
    /// Things worth a warning, e.g. another version than the templates are tested with.
    pub notes: Vec<String>,
}

/// The tools `command` runs that this module knows, in order, each once.
pub fn tools_in(command: &str) -> Vec<Tool> {
    let mut tools = Vec::new();
    // Simple commands are separated by these; good enough for build commands,
    // which seldom quote an operator.
    for simple in command.split(['\n', ';', '&', '|', '(', ')']) {
        let words: Vec<&str> = simple.split_whitespace().skip_while(|w| is_assignment(w)).collect();
        let Some(first) = words.first() else { continue };
        let program = first.rsplit('/').next().unwrap_or(first);
        let tool = match program {
            "cargo" => Tool::Cargo { target: option_value(&words, "--target") },
            "componentize-py" => Tool::ComponentizePy,
            "componentize-js" => Tool::ComponentizeJs,
            p if p == "clang" || p.strip_prefix("clang-").is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit())) => {
                Tool::Clang {
                    program: first.to_string(),
                    target: option_value(&words, "--target").or_else(|| option_value(&words, "-target")),
                    sysroot: option_value(&words, "--sysroot"),
                }
            }
            _ => continue,
        };
        if !tools.contains(&tool) {
            tools.push(tool);
        }
    }
    tools
}

/// `NAME=value` before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') && !word.starts_with('-')
    })
}

/// The value of `--flag=value` or `--flag value` among `words`.
fn option_value(words: &[&str], flag: &str) -> Option<String> {
    words.iter().enumerate().find_map(|(i, word)| {
        let rest = word.strip_prefix(flag)?;
        match rest.strip_prefix('=') {
            Some(value) => Some(value.to_string()),
            None if rest.is_empty() => words.get(i + 1).map(|v| v.to_string()),
            None => None,
        }
    })
}

/// What the machine can tell about programs and files.
pub trait Probe {
    /// The program's path, when it is a path that exists or `PATH` has it.
    fn find(&self, program: &str) -> Option<PathBuf>;
    /// Runs `program` with `args` and returns its stdout when it exits with 0.
    fn output(&self, program: &str, args: &[&str]) -> Option<String>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
}

/// The real machine, finding programs on a given `PATH`.
#[derive(Clone, Debug)]
pub struct SystemProbe {
    path: OsString,
}

impl SystemProbe {
    /// Finds programs on `path` (a `PATH` value), as the build command will.
    pub fn new(path: OsString) -> SystemProbe {
        SystemProbe { path }
    }
}

impl Probe for SystemProbe {
    fn find(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let path = PathBuf::from(program);
            return path.is_file().then_some(path);
        }
        std::env::split_paths(&self.path).map(|dir| dir.join(program)).find(|p| is_executable(p))
    }

    fn output(&self, program: &str, args: &[&str]) -> Option<String> {
        let program = self.find(program)?;
        let out = Command::new(program)
            .args(args)
            .env("PATH", &self.path)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks that each of `tools` is installed and can build for its target.
pub fn check(tools: &[Tool], probe: &dyn Probe) -> Checked {
    let mut checked = Checked::default();
    for tool in tools {
        match tool {
            Tool::Cargo { target } => check_cargo(target.as_deref(), probe, &mut checked),
            Tool::ComponentizePy => check_componentize_py(probe, &mut checked),
            Tool::ComponentizeJs => check_componentize_js(probe, &mut checked),
            Tool::Clang { program, target, sysroot } => {
                check_clang(program, target.as_deref(), sysroot.as_deref(), probe, &mut checked)
            }
        }
    }
    checked
}

fn missing(problem: impl Into<String>, install: impl Into<String>) -> Missing {
    Missing { problem: problem.into(), install: install.into() }
}

fn check_cargo(target: Option<&str>, probe: &dyn Probe, checked: &mut Checked) {
    if probe.find("cargo").is_none() {
        let install = format!("rustup (https://rustup.rs), then {}", Lang::Rust.install());
        checked.missing.push(missing("cargo (Rust) is not installed (not on PATH)", install));
        return;
    }
    let Some(target) = target else { return };
    // rustc names the folder the target's standard library would be in, installed or not.
    let libdir = probe.output("rustc", &["--print", "target-libdir", "--target", target]);
    if !libdir.is_some_and(|dir| probe.exists(Path::new(&dir))) {
        checked
            .missing
            .push(missing(format!("the Rust target {target} is not installed"), format!("rustup target add {target}")));
    }
}

fn check_componentize_py(probe: &dyn Probe, checked: &mut Checked) {
    check_pinned("componentize-py", COMPONENTIZE_PY_VERSION, Lang::Python.install(), probe, checked);
}

fn check_componentize_js(probe: &dyn Probe, checked: &mut Checked) {
    if probe.find("node").is_none() {
        checked.missing.push(missing(
            "Node.js (node), which componentize-js runs on, is not installed",
            "apt-get install nodejs npm (Node.js 18 or later)",
        ));
        return;
    }
    check_pinned("componentize-js", COMPONENTIZE_JS_VERSION, Lang::Js.install(), probe, checked);
}

/// Checks that `program` is on PATH and runs; another version than `pinned` is a note.
fn check_pinned(program: &str, pinned: &str, install: String, probe: &dyn Probe, checked: &mut Checked) {
    let Some(found) = probe.find(program) else {
        checked.missing.push(missing(format!("{program} is not installed (not on PATH)"), install));
        return;
    };
    // A pyenv shim is on PATH even where the active Python lacks the package.
    let Some(version) = probe.output(program, &["--version"]) else {
        checked.missing.push(missing(format!("{program} ({}) does not run", found.display()), install));
        return;
    };
    let version = version.trim_start_matches(program).trim();
    if version != pinned {
        checked.notes.push(format!(
            "{program} {version} is installed; agents made by `paddock new` are tested with {pinned} ({install})"
        ));
    }
}

fn check_clang(program: &str, target: Option<&str>, sysroot: Option<&str>, probe: &dyn Probe, checked: &mut Checked) {
    if probe.find(program).is_none() {
        checked.missing.push(missing(format!("{program} is not installed (not on PATH)"), "apt-get install clang lld"));
        return;
    }
    let Some(target) = target.filter(|t| t.starts_with("wasm32")) else { return };
    let linker = probe.output(program, &["-print-prog-name=wasm-ld"]).unwrap_or_default();
    let has_linker = match linker.contains('/') {
        true => probe.exists(Path::new(&linker)),
        false => probe.find(if linker.is_empty() { "wasm-ld" } else { &linker }).is_some(),
    };
    if !has_linker {
        checked
            .missing
            .push(missing(format!("{program} finds no wasm-ld (the WebAssembly linker)"), "apt-get install lld"));
    }
    let target_arg = format!("--target={target}");
    let sysroot_arg = sysroot.map(|s| format!("--sysroot={s}"));
    let mut args = vec![target_arg.as_str()];
    args.extend(sysroot_arg.as_deref());
    // Both print the name unchanged, or a path that does not exist, when clang cannot find the file.
    let libc = probe.output(program, &[&args[..], &["-print-file-name=libc.a"]].concat()).unwrap_or_default();
    if !(libc.starts_with('/') && probe.exists(Path::new(&libc))) {
        checked.missing.push(missing(
            format!("{program} finds no C library for {target} (wasi-libc)"),
            "apt-get install wasi-libc (or pass --sysroot=<wasi-sdk>/share/wasi-sysroot)",
        ));
    }
    let builtins = probe
        .output(program, &[&args[..], &["-rtlib=compiler-rt", "-print-libgcc-file-name"]].concat())
        .unwrap_or_default();
    if !probe.exists(Path::new(&builtins)) {
        let major = probe.output(program, &["-dumpversion"]).and_then(|v| v.split('.').next().map(str::to_string));
        let package = match major {
            Some(major) => format!("libclang-rt-{major}-dev-wasm32"),
            None => "libclang-rt-dev-wasm32".to_string(),
        };
        checked.missing.push(missing(
            format!("{program} has no compiler-rt builtins for wasm32 ({builtins})"),
            format!("apt-get install {package}"),
        ));
    }
}

#[cfg(test)]
mod tests;
