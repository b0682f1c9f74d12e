//! The test guests, compiled to components by this crate's build script.
//!
//! Each guest is an ordinary Rust crate under `tests/guests/`; its component
//! file is named by a constant here (`ECHO`, `SPIN`, ...). The build fails
//! when a guest is used by no integration test.

/// Component files of the test guests.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}
