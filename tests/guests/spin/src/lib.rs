//! Adversarial: an infinite loop.
use paddock_sdk::{Agent, export_agent};

struct Spin;

impl Agent for Spin {
    fn run(_input: String) -> Result<String, String> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_agent!(Spin);
