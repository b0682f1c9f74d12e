//! Panics: a bug in the guest, not a limit.
use paddock_sdk::{Agent, export_agent};

struct Panicker;

impl Agent for Panicker {
    fn run(input: String) -> Result<String, String> {
        panic!("boom: {input}");
    }
}

export_agent!(Panicker);
