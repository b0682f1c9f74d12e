//! Claims `input.key` for `input.ttl_ms`: `put-expiring`, or
//! `compare-and-swap-expiring` when `input.expect` is given. Then reads the
//! key back and returns it with the changes after `input.after`, every field
//! of the records as the guest sees them. A refused claim is returned as
//! `{"error": ...}` output, so the test can read it.
use paddock_sdk::{Agent, blackboard, export_agent};
use serde_json::{Value, json};

struct Lease;

impl Agent for Lease {
    fn run(input: String) -> Result<String, String> {
        let v: Value = paddock_sdk::parse_input(&input)?;
        let key = v["key"].as_str().ok_or("input.key is required")?;
        let ttl = v["ttl_ms"].as_u64().ok_or("input.ttl_ms is required")?;
        let claimed = match v["expect"].as_u64() {
            Some(expected) => blackboard::compare_and_swap_expiring(key, expected, b"held", ttl),
            None => blackboard::put_expiring(key, b"held", ttl),
        };
        let revision = match claimed {
            Ok(revision) => revision,
            Err(e) => return Ok(json!({ "error": blackboard::describe(&e) }).to_string()),
        };
        let describe = |e: blackboard::Error| blackboard::describe(&e);
        let entry = blackboard::get(key).map_err(describe)?.map(|e| {
            json!({
                "revision": e.revision, "writer": e.writer, "run": e.run,
                "written_at": e.written_at, "expires_at": e.expires_at,
            })
        });
        let after = v["after"].as_u64().unwrap_or(0);
        let changes: Vec<Value> = blackboard::watch("", after, 0)
            .map_err(describe)?
            .into_iter()
            .map(|c| json!({ "revision": c.revision, "key": c.key, "deleted": c.value.is_none(), "writer": c.writer, "run": c.run }))
            .collect();
        Ok(json!({ "revision": revision, "entry": entry, "changes": changes }).to_string())
    }
}

export_agent!(Lease);
