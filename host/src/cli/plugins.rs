//! `paddock plugins`: what is in the plugins folder.

use super::EXIT_LOAD;
use crate::config::Settings;
use crate::plugins::Registry;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List the plugins: name, version, component, and any manifest error
    #[command(after_help = "Example:\n  paddock plugins list --json\n\nExit code 4 when a manifest is broken.")]
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn plugins(settings: Settings, command: PluginsCommand) -> u8 {
    let PluginsCommand::List { json } = command;
    let registry = Registry::new(&settings.plugins_dir);
    let mut code = 0;
    let mut rows = Vec::new();
    for manifest in registry.scan() {
        let row = match manifest {
            Ok(m) => serde_json::json!({
                "name": m.name,
                "version": m.version.to_string(),
                "description": m.description,
                "component": m.component,
                "built": m.component.is_file(),
                "capabilities": m.capabilities,
                "error": null,
            }),
            Err(e) => {
                code = EXIT_LOAD;
                serde_json::json!({ "manifest": e.file, "error": e.to_string() })
            }
        };
        rows.push(row);
    }
    if json {
        println!("{}", serde_json::Value::Array(rows));
        return code;
    }
    if rows.is_empty() {
        println!("no plugins under {}", settings.plugins_dir.display());
    }
    for row in rows {
        match row["error"].as_str() {
            Some(error) => println!("!  {error}"),
            None => println!(
                "{:<20} {:<10} {:<9} {}",
                row["name"].as_str().unwrap_or(""),
                row["version"].as_str().unwrap_or(""),
                if row["built"].as_bool() == Some(true) { "built" } else { "not built" },
                row["description"].as_str().unwrap_or("")
            ),
        }
    }
    code
}
