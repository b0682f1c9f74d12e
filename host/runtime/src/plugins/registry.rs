//! The plugins folder: one sub-folder per agent, each with an `agent.toml`.
//!
//! Anyone who can write a folder here can name a file for the host to read,
//! so a manifest's `component` must resolve (symlinks followed) inside the
//! plugin's own folder or one of `host.component-dirs`; otherwise the
//! manifest is refused, naming the path, never showing what the file holds.

use super::load::LoadError;
use super::manifest::{FILE_NAME, Manifest, ManifestError, fold};
use paddock_config::Settings;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// The plugins found under one folder.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
    /// Folders besides each plugin's own where its component may be.
    component_dirs: Vec<PathBuf>,
}

impl Registry {
    /// The registry of `dir`, whose plugins' components may be in their own
    /// folders or in `dir/target` (a Cargo workspace's build output).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Registry { component_dirs: vec![dir.join("target")], dir }
    }

    /// The registry of the settings' plugins folder and `host.component-dirs`.
    pub fn of(settings: &Settings) -> Self {
        let registry = Registry::new(&settings.plugins_dir);
        match &settings.plugins.component_dirs {
            Some(dirs) => Registry { component_dirs: dirs.clone(), ..registry },
            None => registry,
        }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every manifest under the folder (sorted by path), valid or not; an
    /// error when the folder itself, or an entry of it, cannot be read, so
    /// that a passing fault is never taken for plugins that are gone.
    pub fn scan(&self) -> Result<Vec<Result<Manifest, ManifestError>>, ManifestError> {
        let unreadable = |e: std::io::Error| ManifestError {
            file: self.dir.clone(),
            message: format!("cannot read the plugins folder: {e}"),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(unreadable)? {
            let file = entry.map_err(unreadable)?.path().join(FILE_NAME);
            match std::fs::metadata(&file) {
                Ok(meta) if meta.is_file() => files.push(file),
                Ok(_) => {}
                // No manifest, or an entry that is a file, not a folder.
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                Err(e) => return Err(unreadable(e)),
            }
        }
        files.sort();
        Ok(files.iter().map(|f| self.load(f)).collect())
    }

    /// The manifest at `file`, its component confined (see the module docs).
    fn load(&self, file: &Path) -> Result<Manifest, ManifestError> {
        let manifest = Manifest::load(file)?;
        let own = file.parent().unwrap_or(Path::new("."));
        let component = fold(&manifest.component);
        let inside = |root: &Path| {
            component.starts_with(fold(root))
                && match (manifest.component.canonicalize(), root.canonicalize()) {
                    (Ok(component), Ok(root)) => component.starts_with(root),
                    // Not built yet: the path as written is inside.
                    (Err(_), _) => true,
                    (Ok(_), Err(_)) => false,
                }
        };
        if inside(own) || self.component_dirs.iter().any(|d| inside(d)) {
            return Ok(manifest);
        }
        let allowed: Vec<String> = std::iter::once(own)
            .chain(self.component_dirs.iter().map(PathBuf::as_path))
            .map(|d| d.display().to_string())
            .collect();
        Err(ManifestError {
            file: file.to_path_buf(),
            message: format!(
                "component: {} is outside the plugin's folder and host.component-dirs (allowed: {})",
                manifest.component.display(),
                allowed.join(", ")
            ),
        })
    }

    /// The manifest of the plugin named `name`.
    ///
    /// The folder of the same name is tried first, so one broken manifest
    /// elsewhere does not stop others from loading; its own errors are reported.
    pub fn find(&self, name: &str) -> Result<Manifest, LoadError> {
        let direct = self.dir.join(name).join(FILE_NAME);
        if direct.is_file() {
            let manifest = self.load(&direct)?;
            if manifest.name == name {
                return Ok(manifest);
            }
        }
        let mut found: Option<Manifest> = None;
        let mut known = Vec::new();
        let scanned = match self.scan() {
            Ok(scanned) => scanned,
            // No folder at all: no plugin of that name, nor any other.
            Err(_) if !self.dir.exists() => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for manifest in scanned.into_iter().flatten() {
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
