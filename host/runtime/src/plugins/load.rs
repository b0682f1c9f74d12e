//! Turning a file into a component that fits the world, with an error for
//! each way it can fail: missing, not WebAssembly, a core module, invalid, or
//! a component of another world.

use super::cache::{CodeCache, Compiled, ContentHash};
use super::manifest::ManifestError;
use crate::caps::AgentWorldPre;
use crate::engine;
use crate::sandbox::AgentState;
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// The world every agent must fit.
pub const WORLD: &str = "paddock:agent/agent-world@0.1.0";
/// The interface every agent must export.
pub const AGENT_EXPORT: &str = "paddock:agent/agent@0.1.0";
/// The `paddock:agent` interfaces the host provides: those of the world in `wit/`
/// (a test holds every one to a registered capability).
pub const PROVIDED: &[&str] = crate::caps::WORLD_IMPORTS;
/// The WASI 0.2 packages the host links (each access still denied unless granted).
pub const PROVIDED_WASI: &[&str] = &["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Why an agent could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No plugin of that name in the plugins folder.
    #[error("no plugin named {name:?} in {} (found: {})", dir.display(), if known.is_empty() { "none".to_string() } else { known.join(", ") })]
    NoPlugin {
        /// The name asked for.
        name: String,
        /// The plugins folder.
        dir: PathBuf,
        /// The plugins that are there.
        known: Vec<String>,
    },
    /// Two plugins have the same name.
    #[error("two plugins are named {name:?}: {} and {}", first.display(), second.display())]
    Duplicate {
        /// The name.
        name: String,
        /// One manifest.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// The component file does not exist.
    #[error("{}: no such file{}", path.display(), hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Missing {
        /// The file.
        path: PathBuf,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The file exists but could not be read.
    #[error("{}: cannot read: {reason}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// The bytes are not WebAssembly.
    #[error("{}: not a WebAssembly file ({reason})", path.display())]
    NotWasm {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        reason: String,
    },
    /// A core module where a component is needed.
    #[error("{}: a core WebAssembly module, not a component; build for wasm32-wasip2 or wrap it with `wasm-tools component new`", path.display())]
    CoreModule {
        /// The file.
        path: PathBuf,
    },
    /// A component that does not validate or compile.
    #[error("{}: invalid component: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The validator's complaint.
        reason: String,
    },
    /// A component of another world.
    #[error("{}: does not fit world {WORLD}: {reason}", path.display())]
    WrongWorld {
        /// The file.
        path: PathBuf,
        /// The missing export or the unexpected import.
        reason: String,
    },
    /// The plugin is known but no version of it serves: the only version
    /// waits for approval, or failed to load.
    #[error("plugin {name:?} has no version serving: {reason}")]
    NotServing {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The manifest is wrong.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// What kind of file something is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    /// A component (binary or WAT text).
    Component,
    /// A core module.
    CoreModule,
}

/// Reads `path` and tells a component from a core module, refusing anything else.
pub fn read_wasm(path: &Path) -> Result<(Vec<u8>, FileKind), LoadError> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing { path: path.to_path_buf(), hint: None },
        _ => LoadError::Unreadable { path: path.to_path_buf(), reason: e.to_string() },
    })?;
    // The preamble: magic, then a 16-bit version and a 16-bit layer
    // (core modules: version 1, layer 0; components: layer 1).
    if bytes.starts_with(b"\0asm") {
        return match bytes.get(4..8) {
            Some([_, _, 1, 0]) => Ok((bytes, FileKind::Component)),
            Some([1, 0, 0, 0]) => Ok((bytes, FileKind::CoreModule)),
            _ => Err(LoadError::NotWasm {
                path: path.to_path_buf(),
                reason: "unknown WebAssembly version or layer".into(),
            }),
        };
    }
    // The text format is accepted for components written by hand (.wat).
    if path.extension().is_some_and(|e| e == "wat") {
        let text = String::from_utf8_lossy(&bytes);
        let body = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with(";;")).unwrap_or("");
        if body.starts_with("(component") {
            return Ok((bytes, FileKind::Component));
        }
        if body.starts_with("(module") {
            return Ok((bytes, FileKind::CoreModule));
        }
    }
    // What the file looks like, never what it holds: a manifest may point at
    // any file, and this message reaches API callers.
    let head = &bytes[..bytes.len().min(512)];
    let reason = if bytes.is_empty() {
        "the file is empty".to_string()
    } else if !head.contains(&0) && std::str::from_utf8(head).is_ok() {
        "it is text; a component starts with the bytes \\0asm".to_string()
    } else {
        "it does not start with the bytes \\0asm".to_string()
    };
    Err(LoadError::NotWasm { path: path.to_path_buf(), reason })
}

/// A component read from disk: its bytes and their hash.
pub struct ComponentFile {
    /// The file.
    pub path: PathBuf,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Their hash.
    pub hash: ContentHash,
}

impl ComponentFile {
    /// The error of a file wasmtime refuses to compile.
    fn invalid(&self, e: wasmtime::Error) -> LoadError {
        LoadError::Invalid { path: self.path.clone(), reason: format!("{e:#}") }
    }

    /// `component`, compiled from this file, checked against the world ([`prepare`]).
    fn checked(
        &self,
        engine: &Engine,
        linker: (&Linker<AgentState>, bool),
        component: &Component,
    ) -> Result<AgentWorldPre<AgentState>, LoadError> {
        prepare(engine, linker, component).map_err(|reason| LoadError::WrongWorld { path: self.path.clone(), reason })
    }
}

/// Reads the component at `path`, refusing anything that is not one.
pub fn read_component(path: &Path) -> Result<ComponentFile, LoadError> {
    let (bytes, kind) = read_wasm(path)?;
    if kind == FileKind::CoreModule {
        return Err(LoadError::CoreModule { path: path.to_path_buf() });
    }
    let hash = ContentHash::of(&bytes);
    Ok(ComponentFile { path: path.to_path_buf(), bytes, hash })
}

/// A component compiled and checked against the world.
pub struct Prepared {
    /// Ready to instantiate.
    pub pre: AgentWorldPre<AgentState>,
    /// Whether it was compiled now or mapped from the cache.
    pub compiled: Compiled,
}

/// Compiles `file` (or maps it from `cache`, storing it there when compiled
/// now) and checks it against the world. `linker` has `wasi:http` when
/// `http` says so (the manifest asks for hosts).
///
/// Code compiled now is compiled on a scratch engine of `engine`'s
/// configuration, dropped with what its compiler keeps before the code
/// serves (`engine::scratch`). Stored, the code serves from the file it
/// was stored in, as it would after a restart: its pages are then the
/// kernel's page cache (shared, and dropped under pressure) rather than the
/// process's own, and what the version keeps is allocated anew, not among
/// the compile's freed memory, which can then all be handed back
/// (`engine::memory`). Without a cache, or when it cannot be stored, the
/// code is copied into `engine`'s memory.
pub fn compile(
    engine: &Engine,
    (linker, http): (&Linker<AgentState>, bool),
    file: &ComponentFile,
    cache: Option<&CodeCache>,
) -> Result<Prepared, LoadError> {
    let (component, compiled) = match cache.and_then(|c| c.hit(engine, &file.hash)) {
        Some(component) => (component, Compiled::Cached),
        None => (compile_apart(engine, file, cache).map_err(|e| file.invalid(e))?, Compiled::Fresh),
    };
    Ok(Prepared { pre: file.checked(engine, (linker, http), &component)?, compiled })
}

/// `file` compiled now for `engine` on a scratch engine, stored in `cache`
/// and mapped from it, or else copied into `engine`'s memory.
fn compile_apart(engine: &Engine, file: &ComponentFile, cache: Option<&CodeCache>) -> wasmtime::Result<Component> {
    let artifact = Component::new(&engine::scratch(engine)?, &file.bytes)?.serialize()?;
    if let Some(mapped) = cache.and_then(|c| c.store_and_map(engine, &artifact, &file.hash)) {
        return Ok(mapped);
    }
    // SAFETY: `artifact` is `Component::serialize`'s, made just now by an
    // engine of `engine`'s configuration; wasmtime checks its header
    // against `engine` all the same.
    unsafe { Component::deserialize(engine, &artifact) }
}

/// [`compile`], leaving a component compiled now for the caller to store
/// in `cache` (returned with it when there is a cache).
pub fn compile_unstored(
    engine: &Engine,
    (linker, http): (&Linker<AgentState>, bool),
    file: &ComponentFile,
    cache: Option<&CodeCache>,
) -> Result<(Prepared, Option<Component>), LoadError> {
    let invalid = |e| file.invalid(e);
    let (component, compiled) = match cache {
        Some(cache) => cache.component(engine, &file.bytes, &file.hash).map_err(invalid)?,
        None => (Component::new(engine, &file.bytes).map_err(invalid)?, Compiled::Fresh),
    };
    let pre = file.checked(engine, (linker, http), &component)?;
    let unstored = (compiled == Compiled::Fresh && cache.is_some()).then_some(component);
    Ok((Prepared { pre, compiled }, unstored))
}

/// Checks `component`'s exports and imports against the world and pre-instantiates it.
pub fn prepare(
    engine: &Engine,
    (linker, http): (&Linker<AgentState>, bool),
    component: &Component,
) -> Result<AgentWorldPre<AgentState>, String> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let mut problems = Vec::new();
    if !exports.contains(&AGENT_EXPORT) {
        let found = if exports.is_empty() {
            "it exports nothing".to_string()
        } else {
            format!("it exports {}", exports.join(", "))
        };
        problems.push(format!("missing export `{AGENT_EXPORT}` ({found})"));
    }
    let unexpected: Vec<String> = ty
        .imports(engine)
        .filter(|(name, _)| !(is_provided(name) || (http && is_http(name))))
        .map(|(n, _)| format!("`{n}`"))
        .collect();
    if !unexpected.is_empty() {
        let asks = if unexpected.iter().any(|n| is_http(n.trim_matches('`'))) {
            "; wasi:http is linked for an agent whose manifest asks for hosts in capabilities.http"
        } else {
            ""
        };
        problems.push(format!(
            "unexpected import {} (this host provides paddock:agent/{{{}}}@0.1 and WASI 0.2 only{asks})",
            unexpected.join(", "),
            PROVIDED.join(",")
        ));
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let pre = linker.instantiate_pre(component).map_err(|e| format!("{e:#}"))?;
    AgentWorldPre::new(pre).map_err(|e| format!("{e:#}"))
}

/// Whether the host links an import of this name.
pub fn is_provided(import: &str) -> bool {
    let (path, version) = import.split_once('@').unwrap_or((import, ""));
    let Some((package, interface)) = path.split_once('/') else { return false };
    match package {
        "paddock:agent" => version.starts_with("0.1.") && PROVIDED.contains(&interface),
        p if p.starts_with("wasi:") => version.starts_with("0.2.") && PROVIDED_WASI.contains(&&p[5..]),
        _ => false,
    }
}

/// Whether `import` is of `wasi:http` 0.2, linked for agents that ask for hosts.
pub fn is_http(import: &str) -> bool {
    import.starts_with("wasi:http/") && import.split_once('@').is_some_and(|(_, v)| v.starts_with("0.2."))
}

/// What `paddock inspect` reports about a file.
#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Component or core module.
    pub kind: FileKind,
    /// Each import and whether this host provides it.
    pub imports: Vec<Import>,
    /// Each export.
    pub exports: Vec<String>,
    /// `None` when it fits the world, else why not.
    pub misfit: Option<String>,
}

/// One import of an inspected component.
#[derive(Debug, serde::Serialize)]
pub struct Import {
    /// Its name.
    pub name: String,
    /// Whether this host provides it.
    pub provided: bool,
}

/// Inspects `path`: its imports and exports, and whether it fits the world.
pub fn inspect(engine: &Engine, linker: &Linker<AgentState>, path: &Path) -> Result<Inspection, LoadError> {
    let (bytes, kind) = read_wasm(path)?;
    let size = bytes.len() as u64;
    if kind == FileKind::CoreModule {
        let module = wasmtime::Module::new(engine, &bytes)
            .map_err(|e| LoadError::Invalid { path: path.to_path_buf(), reason: format!("{e:#}") })?;
        return Ok(Inspection {
            path: path.to_path_buf(),
            bytes: size,
            kind,
            imports: module
                .imports()
                .map(|i| Import { name: format!("{}::{}", i.module(), i.name()), provided: false })
                .collect(),
            exports: module.exports().map(|e| e.name().to_string()).collect(),
            misfit: Some("a core module, not a component".into()),
        });
    }
    let component = Component::new(engine, &bytes)
        .map_err(|e| LoadError::Invalid { path: path.to_path_buf(), reason: format!("{e:#}") })?;
    let ty = component.component_type();
    Ok(Inspection {
        path: path.to_path_buf(),
        bytes: size,
        kind,
        imports: ty
            .imports(engine)
            .map(|(name, _)| Import { name: name.to_string(), provided: is_provided(name) })
            .collect(),
        exports: ty.exports(engine).map(|(name, _)| name.to_string()).collect(),
        misfit: prepare(engine, (linker, false), &component).err(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_imports_are_ours_and_wasi_02() {
        assert!(is_provided("paddock:agent/log@0.1.0"));
        assert!(is_provided("wasi:cli/environment@0.2.6"));
        assert!(!is_provided("wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_provided("paddock:agent/secrets@0.1.0"));
        assert!(!is_provided("foo:bar/baz"));
        assert!(!is_provided("wasi:cli/environment@0.3.0"));
    }
}
