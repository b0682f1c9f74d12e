//! Reads `wit/` and writes the names of the interfaces `agent-world` imports
//! from `paddock:agent`, and the functions of each, so the host's list of what
//! it provides (and the tests that every interface has a capability and every
//! call is journaled) follow the contract, not a copy of it.

use std::path::Path;
use wit_parser::{FunctionKind, Resolve, WorldItem, WorldKey};

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(&wit).unwrap_or_else(|e| panic!("{}: {e:#}", wit.display()));
    let world = resolve.select_world(&[package], Some("agent-world")).expect("wit/ has agent-world");
    let mut names = Vec::new();
    let mut functions = Vec::new();
    for (key, item) in &resolve.worlds[world].imports {
        let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item) else { continue };
        let interface = &resolve.interfaces[*id];
        let owner = interface.package.map(|p| &resolve.packages[p].name);
        if owner.is_some_and(|n| n.namespace == "paddock" && n.name == "agent") {
            let name = interface.name.as_deref().expect("a named interface");
            names.push(format!("{name:?}"));
            for function in interface.functions.values() {
                // A resource's method is named "[method]resource.method"; its
                // journal label needs only the method.
                let method = matches!(function.kind, FunctionKind::Method(_) | FunctionKind::AsyncMethod(_));
                functions.push(format!("({name:?}, {:?}, {method})", function.item_name()));
            }
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).to_path_buf();
    std::fs::write(out.join("world_imports.rs"), format!("&[{}]\n", names.join(", "))).expect("OUT_DIR is writable");
    std::fs::write(out.join("world_functions.rs"), format!("&[{}]\n", functions.join(", ")))
        .expect("OUT_DIR is writable");
}
