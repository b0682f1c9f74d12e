use super::*;
use std::collections::{HashMap, HashSet};

/// A machine described by what is on it.
#[derive(Default)]
struct FakeMachine {
    programs: HashSet<String>,
    outputs: HashMap<String, String>,
    files: HashSet<PathBuf>,
}

impl FakeMachine {
    fn with(mut self, program: &str) -> Self {
        self.programs.insert(program.to_string());
        self
    }
    fn says(mut self, command: &str, output: &str) -> Self {
        self.outputs.insert(command.to_string(), output.to_string());
        self
    }
    fn file(mut self, path: &str) -> Self {
        self.files.insert(PathBuf::from(path));
        self
    }
}

impl Probe for FakeMachine {
    fn find(&self, program: &str) -> Option<PathBuf> {
        self.programs.contains(program).then(|| PathBuf::from("/usr/bin").join(program))
    }
    fn output(&self, program: &str, args: &[&str]) -> Option<String> {
        self.find(program)?;
        self.outputs.get(&format!("{program} {}", args.join(" "))).cloned()
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.contains(path)
    }
}

const WASM_LD: &str = "clang -print-prog-name=wasm-ld";
const LIBC: &str = "clang --target=wasm32-wasi -print-file-name=libc.a";
const BUILTINS: &str = "clang --target=wasm32-wasi -rtlib=compiler-rt -print-libgcc-file-name";
const BUILTINS_A: &str = "/usr/lib/llvm-14/lib/clang/14.0.6/lib/wasi/libclang_rt.builtins-wasm32.a";

/// A Debian 12 machine with the whole C toolchain.
fn c_machine() -> FakeMachine {
    FakeMachine::default()
        .with("clang")
        .says(WASM_LD, "/usr/bin/wasm-ld")
        .file("/usr/bin/wasm-ld")
        .says(LIBC, "/usr/lib/wasm32-wasi/libc.a")
        .file("/usr/lib/wasm32-wasi/libc.a")
        .says(BUILTINS, BUILTINS_A)
        .file(BUILTINS_A)
        .says("clang -dumpversion", "14.0.6")
}

fn installs(checked: &Checked) -> Vec<&str> {
    checked.missing.iter().map(|m| m.install.as_str()).collect()
}

#[test]
fn tools_are_found_in_every_simple_command_of_a_build() {
    let command = "paddock build c-bindings wit build/bindings && \
                   CFLAGS=-O2 /usr/bin/clang-16 --target wasm32-wasip1 -o core.wasm a.c; paddock build component core.wasm -o a.wasm";
    assert_eq!(
        tools_in(command),
        vec![Tool::Clang { program: "/usr/bin/clang-16".into(), target: Some("wasm32-wasip1".into()), sysroot: None }]
    );
    assert_eq!(
        tools_in("cargo build --release --target=wasm32-wasip2 | tee log || cargo build"),
        vec![Tool::Cargo { target: Some("wasm32-wasip2".into()) }, Tool::Cargo { target: None }]
    );
    assert_eq!(tools_in("make && ./componentize-js-wrapper x && clangd"), vec![]);
}

#[test]
fn a_machine_with_every_tool_misses_nothing() {
    let machine = c_machine()
        .with("cargo")
        .with("rustc")
        .says("rustc --print target-libdir --target wasm32-wasip2", "/rust/lib/rustlib/wasm32-wasip2/lib")
        .file("/rust/lib/rustlib/wasm32-wasip2/lib")
        .with("componentize-py")
        .says("componentize-py --version", "componentize-py 0.25.1")
        .with("node")
        .with("componentize-js")
        .says("componentize-js --version", "0.23.0");
    let tools = tools_in(
        "cargo build --target wasm32-wasip2; componentize-py x; componentize-js y; clang --target=wasm32-wasi z",
    );
    assert_eq!(tools.len(), 4);
    assert_eq!(check(&tools, &machine), Checked::default());
}

#[test]
fn a_missing_python_toolchain_names_the_pip_package_and_version() {
    let checked = check(&[Tool::ComponentizePy], &FakeMachine::default());
    assert_eq!(
        checked.missing[0].to_string(),
        "componentize-py is not installed (not on PATH); install it with: pip install componentize-py==0.25.1"
    );
    // A shim that is on PATH but fails (pyenv without the package) is as good as missing.
    let checked = check(&[Tool::ComponentizePy], &FakeMachine::default().with("componentize-py"));
    assert_eq!(checked.missing[0].problem, "componentize-py (/usr/bin/componentize-py) does not run");
    // Another version builds, with a warning.
    let other =
        FakeMachine::default().with("componentize-py").says("componentize-py --version", "componentize-py 0.24.0");
    let checked = check(&[Tool::ComponentizePy], &other);
    assert!(checked.missing.is_empty());
    assert_eq!(
        checked.notes,
        [
            "componentize-py 0.24.0 is installed; agents made by `paddock new` are tested with 0.25.1 (pip install componentize-py==0.25.1)"
        ]
    );
}

#[test]
fn a_missing_javascript_toolchain_names_node_first_then_the_npm_package() {
    let checked = check(&[Tool::ComponentizeJs], &FakeMachine::default());
    assert_eq!(installs(&checked), ["apt-get install nodejs npm (Node.js 18 or later)"]);
    let checked = check(&[Tool::ComponentizeJs], &FakeMachine::default().with("node"));
    assert_eq!(installs(&checked), ["npm install -g @bytecodealliance/componentize-js@0.23.0"]);
}

#[test]
fn a_missing_rust_target_names_the_rustup_command() {
    let machine = FakeMachine::default()
        .with("cargo")
        .with("rustc")
        .says("rustc --print target-libdir --target wasm32-wasip2", "/rust/lib/rustlib/wasm32-wasip2/lib");
    let checked = check(&[Tool::Cargo { target: Some("wasm32-wasip2".into()) }], &machine);
    assert_eq!(
        checked.missing[0].to_string(),
        "the Rust target wasm32-wasip2 is not installed; install it with: rustup target add wasm32-wasip2"
    );
    assert!(check(&[Tool::Cargo { target: None }], &machine).missing.is_empty());
    let checked = check(&[Tool::Cargo { target: None }], &FakeMachine::default());
    assert_eq!(installs(&checked), ["rustup (https://rustup.rs), then rustup target add wasm32-wasip2"]);
}

#[test]
fn each_missing_piece_of_the_c_toolchain_names_its_debian_package() {
    let clang = |target: &str| Tool::Clang { program: "clang".into(), target: Some(target.into()), sysroot: None };
    assert_eq!(installs(&check(&[clang("wasm32-wasi")], &FakeMachine::default())), ["apt-get install clang lld"]);

    // clang alone, as `apt-get install clang` leaves it: it prints bare names for what it cannot find.
    let bare = FakeMachine::default()
        .with("clang")
        .says(WASM_LD, "wasm-ld")
        .says(LIBC, "libc.a")
        .says(BUILTINS, BUILTINS_A)
        .says("clang -dumpversion", "14.0.6");
    let checked = check(&[clang("wasm32-wasi")], &bare);
    assert_eq!(
        installs(&checked),
        [
            "apt-get install lld",
            "apt-get install wasi-libc (or pass --sysroot=<wasi-sdk>/share/wasi-sysroot)",
            "apt-get install libclang-rt-14-dev-wasm32",
        ]
    );
    assert_eq!(checked.missing[2].problem, format!("clang has no compiler-rt builtins for wasm32 ({BUILTINS_A})"));

    assert_eq!(check(&[clang("wasm32-wasi")], &c_machine()), Checked::default());
    // A clang building for the machine itself needs nothing wasm-specific.
    let native = Tool::Clang { program: "clang".into(), target: None, sysroot: None };
    assert_eq!(check(&[native], &FakeMachine::default().with("clang")), Checked::default());
}

#[test]
fn a_sysroot_in_the_command_is_passed_to_the_probe() {
    let machine = c_machine()
        .says("clang --target=wasm32-wasi --sysroot=/opt/wasi-sdk/share/wasi-sysroot -print-file-name=libc.a", "/opt/libc.a")
        .file("/opt/libc.a")
        .says(
            "clang --target=wasm32-wasi --sysroot=/opt/wasi-sdk/share/wasi-sysroot -rtlib=compiler-rt -print-libgcc-file-name",
            BUILTINS_A,
        );
    let tools = tools_in("clang --target=wasm32-wasi --sysroot=/opt/wasi-sdk/share/wasi-sysroot a.c");
    assert_eq!(check(&tools, &machine), Checked::default());
}
