//! Adversarial: allocates (and touches) memory until something stops it.
use paddock_sdk::{Agent, export_agent};

struct Bomb;

impl Agent for Bomb {
    fn run(_input: String) -> Result<String, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export_agent!(Bomb);
