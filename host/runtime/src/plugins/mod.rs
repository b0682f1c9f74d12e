//! Agents on disk: manifests, the plugins folder, and loading a component into
//! a pre-instantiated form checked against the world.

pub mod book;
pub mod cache;
#[cfg(test)]
mod fuzz;
pub mod load;
pub mod manifest;
pub mod registry;
pub mod versions;
pub mod widening;

pub use load::{Inspection, LoadError};
pub use manifest::{Manifest, ManifestError};
pub use registry::Registry;
pub use versions::Versions;
pub use widening::Widening;
