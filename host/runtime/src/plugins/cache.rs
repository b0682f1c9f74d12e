//! Compiled code on disk, so that a component is compiled once per engine
//! configuration and every later load maps the machine code in.
//!
//! Cranelift takes ~45 ms for a small Rust agent and 6–7 s for a Python or
//! JavaScript one (the interpreter is inside the component); mapping the
//! precompiled artifact takes well under a millisecond to ~20 ms.
//!
//! Layout: `<dir>/<engine>/<content>.cwasm`, where `<engine>` hashes
//! everything that makes compiled code incompatible (wasmtime's version, the
//! target, every codegen and tunables setting: `Engine::precompile_compatibility_hash`)
//! and `<content>` is the BLAKE3 hash of the component's bytes. A change of
//! wasmtime, of `[engine]` settings or of the component lands in another file,
//! so an entry is never stale; nothing is ever overwritten in place.
//!
//! Trust: loading an artifact runs its machine code unchecked, so the cache
//! folder must be writable only by the operator (it lives in `host.data`,
//! which no agent is lent unless the operator lends it on purpose). Files are
//! written to a temporary name and renamed, so a crash never leaves a partial
//! artifact under a real name, and a file that is mapped is never changed.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A BLAKE3 hash: of a component's bytes (what the code cache is keyed by),
/// or of what a manifest says ([`super::Manifest::version_id`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// All 64 hex digits.
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The first 12 hex digits, as shown in version ids.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }
}

/// How a component was turned into code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Compiled {
    /// Compiled now (and stored, when there is a cache).
    Fresh,
    /// Mapped from the cache.
    Cached,
    /// Winch's code (compiled now or mapped), serving while Cranelift's is
    /// compiled in the background (`engine.compiler = "tiered"`).
    Baseline,
}

impl Compiled {
    /// How a person is told: "compiled", "from the code cache", "baseline code, optimizing".
    pub fn describe(self) -> &'static str {
        match self {
            Compiled::Fresh => "compiled",
            Compiled::Cached => "from the code cache",
            Compiled::Baseline => "baseline code, optimizing",
        }
    }
}

/// The compiled-code cache of one engine.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    hits: AtomicU64,
    compiles: AtomicU64,
}

impl CodeCache {
    /// The cache under `root` for `engine`'s configuration. The folder is
    /// created when the first artifact is stored.
    pub fn new(root: &Path, engine: &Engine) -> CodeCache {
        let mut hasher = Blake3Hasher(blake3::Hasher::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hasher.0.finalize().to_hex();
        CodeCache { dir: root.join(&engine_hash.as_str()[..16]), hits: AtomicU64::new(0), compiles: AtomicU64::new(0) }
    }

    /// The folder holding this engine's artifacts.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Components mapped from the cache since the host started.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Components compiled since the host started.
    pub fn compiles(&self) -> u64 {
        self.compiles.load(Ordering::Relaxed)
    }

    /// Whether the compiled form of the component of `hash` is stored.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.path(hash).is_file()
    }

    fn path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}.cwasm", hash.hex()))
    }

    /// The compiled form of `bytes` (whose hash is `hash`): mapped from the
    /// cache when present, else compiled. A component compiled now is not
    /// stored yet: the caller [`keep`](Self::keep)s it, when writing it costs
    /// nobody a wait. An entry that cannot be read costs a compile and a
    /// warning, never the load.
    pub fn component(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &ContentHash,
    ) -> wasmtime::Result<(Component, Compiled)> {
        if let Some(component) = self.hit(engine, hash) {
            return Ok((component, Compiled::Cached));
        }
        let component = Component::new(engine, bytes)?;
        self.compiles.fetch_add(1, Ordering::Relaxed);
        Ok((component, Compiled::Fresh))
    }

    /// The stored compiled form of the component of `hash`, mapped and
    /// counted as a hit; `None` as [`mapped`](Self::mapped).
    pub fn hit(&self, engine: &Engine, hash: &ContentHash) -> Option<Component> {
        let component = self.mapped(engine, hash)?;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(component)
    }

    /// Stores `artifact`, code compiled now (counted as a compile) from the
    /// bytes whose hash is `hash` and serialized, and maps it for `engine`;
    /// `None`, with a warning, when it cannot be stored or mapped.
    pub fn store_and_map(&self, engine: &Engine, artifact: &[u8], hash: &ContentHash) -> Option<Component> {
        self.compiles.fetch_add(1, Ordering::Relaxed);
        self.store(artifact, hash).then(|| self.mapped(engine, hash)).flatten()
    }

    /// The stored compiled form of the component of `hash`, mapped; `None`
    /// when none is stored, or with a warning when it cannot be used.
    pub fn mapped(&self, engine: &Engine, hash: &ContentHash) -> Option<Component> {
        let path = self.path(hash);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `write` below from
        // `Component::serialize` for an engine of the same compatibility
        // hash (its folder), renamed into place whole and never modified
        // afterwards; the folder is the operator's (see the module docs).
        // wasmtime still checks the artifact's header against the engine.
        unsafe { Component::deserialize_file(engine, &path) }
            .inspect_err(|e| tracing::warn!(file = %path.display(), "compiled-code cache entry unusable: {e:#}"))
            .ok()
    }

    /// Stores `component`, compiled from the bytes whose hash is `hash`;
    /// whether it is stored (a cache that cannot be written costs a warning).
    pub fn keep(&self, component: &Component, hash: &ContentHash) -> bool {
        match component.serialize() {
            Ok(artifact) => self.store(&artifact, hash),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "cannot serialize compiled code: {e:#}");
                false
            }
        }
    }

    /// Stores `artifact`, serialized code from the bytes whose hash is
    /// `hash`; whether it is stored (a cache that cannot be written costs a
    /// warning).
    fn store(&self, artifact: &[u8], hash: &ContentHash) -> bool {
        self.write(artifact, &self.path(hash))
            .inspect_err(|e| tracing::warn!(dir = %self.dir.display(), "cannot store compiled code: {e}"))
            .is_ok()
    }

    /// Writes `artifact` to `path`, whole or not at all.
    fn write(&self, artifact: &[u8], path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let temp = self.dir.join(format!(".{}.{}.tmp", std::process::id(), fastrand::u64(..)));
        std::fs::write(&temp, artifact)?;
        std::fs::rename(&temp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&temp);
        })
    }
}

/// Feeds `Hash` output into BLAKE3, so the engine's hash is the same in every
/// process and Rust version (std's `DefaultHasher` promises neither).
struct Blake3Hasher(blake3::Hasher);

impl Hasher for Blake3Hasher {
    fn finish(&self) -> u64 {
        let bytes = self.0.finalize();
        u64::from_le_bytes(bytes.as_bytes()[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAT: &str = r#"(component (core module (func (export "f"))))"#;

    #[test]
    fn second_load_maps_the_stored_artifact_instead_of_compiling() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let bytes = WAT.as_bytes();
        let hash = ContentHash::of(bytes);
        let cache = CodeCache::new(dir.path(), &engine);
        let (fresh, compiled) = cache.component(&engine, bytes, &hash).unwrap();
        assert_eq!(compiled, Compiled::Fresh);
        cache.keep(&fresh, &hash);
        let again = CodeCache::new(dir.path(), &engine);
        assert_eq!(again.component(&engine, bytes, &hash).unwrap().1, Compiled::Cached);
        assert_eq!((again.hits(), again.compiles()), (1, 0));
        let files: Vec<_> = std::fs::read_dir(cache.dir()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(files, vec![std::ffi::OsString::from(format!("{}.cwasm", hash.hex()))]);
    }

    #[test]
    fn another_engine_configuration_uses_another_folder() {
        let dir = tempfile::tempdir().unwrap();
        let plain = Engine::default();
        let mut config = wasmtime::Config::new();
        config.consume_fuel(true);
        let fueled = Engine::new(&config).unwrap();
        assert_ne!(CodeCache::new(dir.path(), &plain).dir(), CodeCache::new(dir.path(), &fueled).dir());
    }

    #[test]
    fn a_corrupt_entry_is_compiled_again_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        let bytes = WAT.as_bytes();
        let hash = ContentHash::of(bytes);
        let cache = CodeCache::new(dir.path(), &engine);
        std::fs::create_dir_all(cache.dir()).unwrap();
        std::fs::write(cache.path(&hash), b"not an artifact").unwrap();
        let (fresh, compiled) = cache.component(&engine, bytes, &hash).unwrap();
        assert_eq!(compiled, Compiled::Fresh);
        cache.keep(&fresh, &hash);
        assert_eq!(cache.component(&engine, bytes, &hash).unwrap().1, Compiled::Cached);
    }
}
