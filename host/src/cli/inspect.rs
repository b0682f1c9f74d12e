//! `paddock inspect`: what a component imports and exports, and whether it fits.

use super::{EXIT_CRASH, EXIT_LOAD, fail};
use crate::config::{ByteSize, Settings};
use crate::plugins::load::WORLD;
use crate::runtime::Runtime;
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
    let runtime = match Runtime::new(settings) {
        Ok(r) => r,
        Err(e) => return fail(EXIT_CRASH, format!("cannot start the host: {e:#}")),
    };
    let report = match runtime.inspect(&args.file) {
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
