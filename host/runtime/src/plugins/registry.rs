//! The plugins folder: one sub-folder per agent, each with an `agent.toml`.

use super::load::LoadError;
use super::manifest::{FILE_NAME, Manifest, ManifestError};
use std::path::{Path, PathBuf};

/// The plugins found under one folder.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// The registry of `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Registry { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every manifest under the folder (sorted by path), valid or not.
    pub fn scan(&self) -> Vec<Result<Manifest, ManifestError>> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path().join(FILE_NAME)).filter(|f| f.is_file()).collect();
        files.sort();
        files.iter().map(|f| Manifest::load(f)).collect()
    }

    /// The manifest of the plugin named `name`.
    ///
    /// The folder of the same name is tried first, so one broken manifest
    /// elsewhere does not stop others from loading; its own errors are reported.
    pub fn find(&self, name: &str) -> Result<Manifest, LoadError> {
        let direct = self.dir.join(name).join(FILE_NAME);
        if direct.is_file() {
            let manifest = Manifest::load(&direct)?;
            if manifest.name == name {
                return Ok(manifest);
            }
        }
        let mut found: Option<Manifest> = None;
        let mut known = Vec::new();
        for manifest in self.scan().into_iter().flatten() {
            known.push(manifest.name.clone());
            if manifest.name != name {
                continue;
            }
            if let Some(first) = &found {
                return Err(LoadError::Duplicate {
                    name: name.into(),
                    first: first.file.clone(),
                    second: manifest.file,
                });
            }
            found = Some(manifest);
        }
        found.ok_or_else(|| LoadError::NoPlugin { name: name.into(), dir: self.dir.clone(), known })
    }
}
