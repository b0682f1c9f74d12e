//! Reads `wit/` and writes the names of the interfaces `agent-world` imports
//! from `paddock:agent`, so the host's list of what it provides (and the test
//! that every one has a capability) follows the contract, not a copy of it.

use std::path::Path;
use wit_parser::{Resolve, WorldItem, WorldKey};

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut resolve = Resolve::new();
    let (package, _) = resolve.push_dir(&wit).unwrap_or_else(|e| panic!("{}: {e:#}", wit.display()));
    let world = resolve.select_world(&[package], Some("agent-world")).expect("wit/ has agent-world");
    let mut names = Vec::new();
    for (key, item) in &resolve.worlds[world].imports {
        let (WorldKey::Interface(id), WorldItem::Interface { .. }) = (key, item) else { continue };
        let interface = &resolve.interfaces[*id];
        let owner = interface.package.map(|p| &resolve.packages[p].name);
        if owner.is_some_and(|n| n.namespace == "paddock" && n.name == "agent") {
            names.push(format!("{:?}", interface.name.as_deref().expect("a named interface")));
        }
    }
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("world_imports.rs");
    std::fs::write(out, format!("&[{}]\n", names.join(", "))).expect("OUT_DIR is writable");
}
