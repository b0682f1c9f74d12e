//! An agent's sources: the files of its folder that its build reads. What
//! `paddock dev` watches, and what `paddock run` compares with the
//! component's age to warn that it runs a stale build.
//!
//! Every file under the agent's folder is a source except its manifest (a
//! manifest change needs a reload, not a build), its component, its test
//! cases, hidden files and folders, and the folders builds and tools write:
//! `build`, `target`, `dist`, `node_modules`, `__pycache__`, `venv`.

use crate::cli::cases;
use crate::plugins::Manifest;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Folders that hold what builds and tools write, never sources.
const WRITTEN: &[&str] = &["build", "target", "dist", "node_modules", "__pycache__", "venv"];

/// The most folders looked through or watched in one agent's folder: an
/// agent's sources are a handful of folders, and a tree past this is
/// something else (a checkout, a virtualenv by another name).
pub const MAX_FOLDERS: usize = 256;

/// Whether a file or folder of this name is never a source.
pub fn is_ignored(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with('.') || name.ends_with('~') || WRITTEN.contains(&name.as_ref()) || name == cases::FOLDER
}

/// `root` and each folder under it that may hold sources, at most [`MAX_FOLDERS`].
pub fn folders(root: &Path) -> Vec<PathBuf> {
    let mut found = vec![root.to_path_buf()];
    let mut next = 0;
    while next < found.len() && found.len() < MAX_FOLDERS {
        let Ok(entries) = std::fs::read_dir(&found[next]) else {
            next += 1;
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if is_dir && !is_ignored(&entry.file_name()) && found.len() < MAX_FOLDERS {
                found.push(entry.path());
            }
        }
        next += 1;
    }
    found
}

/// Whether `path`, a file under `root`, is a source of the agent whose
/// manifest is `manifest`.
pub fn is_source(root: &Path, manifest: &Manifest, path: &Path) -> bool {
    let Ok(inside) = path.strip_prefix(root) else { return false };
    path != manifest.file && path != manifest.component && inside.iter().all(|part| !is_ignored(part))
}

/// The newest source of `manifest`'s agent, with when it changed.
fn newest(manifest: &Manifest) -> Option<(PathBuf, SystemTime)> {
    let root = manifest.file.parent()?;
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for folder in folders(root) {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || !is_source(root, manifest, &path) {
                continue;
            }
            let Ok(changed) = meta.modified() else { continue };
            if newest.as_ref().is_none_or(|(_, at)| changed > *at) {
                newest = Some((path, changed));
            }
        }
    }
    newest
}

/// The source changed after the component was built, for an agent that
/// has a build command and a component.
pub fn changed_since_built(manifest: &Manifest) -> Option<PathBuf> {
    manifest.build.as_ref()?;
    let built = std::fs::metadata(&manifest.component).and_then(|m| m.modified()).ok()?;
    let (source, changed) = newest(manifest)?;
    (changed > built).then_some(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn touch(path: &Path, at: SystemTime) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
        std::fs::File::options().write(true).open(path).unwrap().set_modified(at).unwrap();
    }

    #[test]
    fn a_source_newer_than_the_component_is_named_and_written_folders_are_not_sources() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let manifest_text =
            "name = \"a\"\nversion = \"1.0.0\"\ncomponent = \"build/agent.wasm\"\n[build]\ncommand = \"true\"\n";
        std::fs::write(root.join("agent.toml"), manifest_text).unwrap();
        let manifest = Manifest::load(&root.join("agent.toml")).unwrap();
        let then = SystemTime::now() - Duration::from_secs(3600);
        let later = then + Duration::from_secs(60);
        touch(&root.join("src/lib.rs"), then);
        touch(&root.join("build/agent.wasm"), later);
        assert_eq!(changed_since_built(&manifest), None);
        for written in ["build/other.o", "tests/case.json", "node_modules/x/y.js", ".git/index", "src/lib.rs~"] {
            touch(&root.join(written), later + Duration::from_secs(60));
        }
        assert_eq!(changed_since_built(&manifest), None);
        touch(&root.join("src/deep/more.rs"), later + Duration::from_secs(60));
        assert_eq!(changed_since_built(&manifest), Some(root.join("src/deep/more.rs")));
        let folders = folders(root);
        assert_eq!(folders, [root.to_path_buf(), root.join("src"), root.join("src/deep")]);
    }

    #[test]
    fn an_agent_without_a_build_command_is_never_stale() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.toml"), "name = \"a\"\nversion = \"1.0.0\"\ncomponent = \"a.wasm\"\n")
            .unwrap();
        touch(&dir.path().join("a.wasm"), SystemTime::now() - Duration::from_secs(60));
        touch(&dir.path().join("notes.txt"), SystemTime::now());
        assert_eq!(changed_since_built(&Manifest::load(&dir.path().join("agent.toml")).unwrap()), None);
    }
}
