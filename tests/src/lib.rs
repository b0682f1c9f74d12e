//! The test guests, compiled to components by this crate's build script.
//!
//! Each guest is an ordinary Rust crate under `tests/guests/`; its component
//! file is named by a constant here (`ECHO`, `SPIN`, ...). The build fails
//! when a guest is used by no integration test.

/// Component files of the test guests.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// `component` with a custom section appended holding `n`: the same agent in
/// another file with another hash, as a new build of it would be.
pub fn variant(component: &[u8], n: u32) -> Vec<u8> {
    let name = b"paddock-test-variant";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&n.to_le_bytes());
    let mut out = component.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // its size fits one LEB128 byte
    out.extend(section);
    out
}
