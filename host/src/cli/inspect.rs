//! `paddock inspect`: what a component imports and exports, and whether it fits.

use super::{EXIT_CRASH, EXIT_LOAD, fail};
use crate::config::{ByteSize, Settings};
use crate::plugins::load::WORLD;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The .wasm (or .wat) file
    file: PathBuf,
    /// Print JSON
    #[arg(long)]
    json: bool,
}

pub fn inspect(settings: Settings, args: InspectArgs) -> u8 {
    // An engine and a linker are all it takes: no board, ledger or flow store
    // is opened, so it works beside a host that holds them.
    let linked = crate::engine::build(&settings.engine, &settings.ceiling)
        .and_then(|engine| crate::sandbox::linker(&engine).map(|linker| (engine, linker)));
    let (engine, linker) = match linked {
        Ok(l) => l,
        Err(e) => return fail(EXIT_CRASH, format!("cannot start the engine: {e:#}")),
    };
    let report = match crate::plugins::load::inspect(&engine, &linker, &args.file) {
        Ok(report) => report,
        Err(e) => return fail(EXIT_LOAD, e),
    };
    let code = if report.misfit.is_some() { EXIT_LOAD } else { 0 };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("a report serialises"));
        return code;
    }
    let kind = serde_json::to_value(report.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    println!("{}: {kind}, {}", report.path.display(), ByteSize(report.bytes));
    println!("imports:");
    for import in &report.imports {
        let mark = if import.provided { "" } else { "   <- not provided by this host" };
        println!("  {}{mark}", import.name);
    }
    println!("exports:");
    for export in &report.exports {
        println!("  {export}");
    }
    match &report.misfit {
        None => println!("fits {WORLD}: yes"),
        Some(why) => println!("fits {WORLD}: no: {why}"),
    }
    code
}
