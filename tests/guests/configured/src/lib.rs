//! Reads its operator's settings: `style` by key, `max-items` parsed as a
//! number, and all of them.
use paddock_sdk::{Agent, export_agent, settings};

struct Configured;

impl Agent for Configured {
    fn run(_input: String) -> Result<String, String> {
        let max_items = settings::parse::<u32>("max-items").transpose()?;
        let out = serde_json::json!({
            "style": settings::get("style"),
            "max_items": max_items,
            "all": settings::all(),
        });
        Ok(out.to_string())
    }
}

export_agent!(Configured);
