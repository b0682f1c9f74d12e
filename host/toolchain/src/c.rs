//! The two steps of a C agent's build that the host does itself, so that
//! clang is the only tool a C author installs (no wit-bindgen-cli, no
//! wasm-tools: `cargo install`ing both takes ~6 minutes):
//!
//! 1. [`write_bindings`]: wit-bindgen's C generator writes `<world>.h`,
//!    `<world>.c` and `<world>_component_type.o` from the agent's `wit/`.
//! 2. clang compiles the agent with them into a WASI preview 1 core module
//!    (`--target=wasm32-wasi -mexec-model=reactor`); the object file carries
//!    the world's type into the module as a custom section.
//! 3. [`componentize`]: wit-component reads that section and wraps the module
//!    into a component, adapting its preview 1 imports to preview 2 with the
//!    reactor adapter of the wasmtime release the host runs.
//!
//! The manifest runs them as `paddock build c-bindings` and `paddock build
//! component` around its clang command. The crates are the releases built on
//! the same wasm-tools crates (0.254) as wasmtime 48, so none is compiled twice.

use std::path::{Path, PathBuf};
use wit_bindgen_core::wit_parser::Resolve;

/// The world every agent targets.
pub const WORLD: &str = "agent-world";

/// A step of a C build that failed, naming the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// The WIT folder could not be read or does not hold the world.
    #[error("cannot use the WIT in {dir}: {message}")]
    Wit {
        /// The folder.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The generator refused the world.
    #[error("cannot generate C bindings for world {world:?}: {message}")]
    Bindings {
        /// The world.
        world: String,
        /// What went wrong.
        message: String,
    },
    /// The core module could not be made into a component.
    #[error("{path} cannot be made into a component: {error}")]
    Componentize {
        /// The core module.
        path: PathBuf,
        /// What went wrong.
        error: ComponentizeError,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Why a core module could not be made into a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentizeError {
    /// The module carries no world type: the bindings' object file was not linked.
    #[error("it carries no WIT world: link the {}_component_type.o that `paddock build c-bindings` writes", WORLD.replace('-', "_"))]
    NoWorld,
    /// wit-component could not read or encode the module; the text is its
    /// whole chain of causes.
    #[error("{0:#}")]
    Encode(anyhow::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StepError + '_ {
    move |source| StepError::Io { path: path.to_path_buf(), source }
}

/// Writes the C bindings of `world` in the WIT package of `wit` into `out`
/// (created if needed) and returns the files it holds. A file whose content
/// is unchanged is left alone, so tools that compare times rebuild nothing.
pub fn write_bindings(wit: &Path, world: &str, out: &Path) -> Result<Vec<PathBuf>, StepError> {
    let wit_error = |e: anyhow::Error| StepError::Wit { dir: wit.to_path_buf(), message: format!("{e:#}") };
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(wit).map_err(wit_error)?;
    let world_id = resolve.select_world(&[package], Some(world)).map_err(wit_error)?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)
        .map_err(|e| StepError::Bindings { world: world.to_string(), message: format!("{e:#}") })?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = Vec::new();
    for (name, bytes) in files.iter() {
        let path = out.join(name);
        if std::fs::read(&path).ok().as_deref() != Some(bytes) {
            write_atomically(&path, bytes)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Wraps `core`, a WASI preview 1 reactor module built with the bindings of
/// [`write_bindings`], into a component.
pub fn componentize(core: &[u8]) -> Result<Vec<u8>, ComponentizeError> {
    use wasi_preview1_component_adapter_provider::{
        WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    // Without the world's type the encoder would make a component that
    // exports nothing, which the host would refuse later and less clearly.
    let (stripped, _) = wit_component::metadata::decode(core).map_err(ComponentizeError::Encode)?;
    if stripped.is_none() {
        return Err(ComponentizeError::NoWorld);
    }
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(core)
        .and_then(|encoder| {
            encoder.adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER)
        })
        .and_then(|mut encoder| encoder.encode())
        .map_err(ComponentizeError::Encode)
}

/// [`componentize`] from file to file; returns the component's size in bytes.
pub fn componentize_file(core: &Path, out: &Path) -> Result<u64, StepError> {
    let bytes = std::fs::read(core).map_err(io(core))?;
    let component =
        componentize(&bytes).map_err(|error| StepError::Componentize { path: core.to_path_buf(), error })?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    write_atomically(out, &component)?;
    Ok(component.len() as u64)
}

/// Writes through a temporary file and a rename, so that a host loading the
/// component never sees half of it.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StepError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes).map_err(io(&temporary))?;
    std::fs::rename(&temporary, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wit_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit")
    }

    #[test]
    fn bindings_of_the_agent_world_declare_the_export_and_carry_its_type() {
        let out = tempfile::tempdir().unwrap();
        let files = write_bindings(&wit_dir(), WORLD, out.path()).unwrap();
        let names: Vec<_> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["agent_world.c", "agent_world.h", "agent_world_component_type.o"]);
        let header = std::fs::read_to_string(out.path().join("agent_world.h")).unwrap();
        assert!(header.contains("bool exports_paddock_agent_agent_run(agent_world_string_t *input"), "{header}");
        // The object is a wasm object file holding the world's type for wit-component.
        let object = std::fs::read(out.path().join("agent_world_component_type.o")).unwrap();
        assert_eq!(&object[..4], b"\0asm");
    }

    #[test]
    fn unchanged_bindings_are_not_rewritten() {
        let out = tempfile::tempdir().unwrap();
        write_bindings(&wit_dir(), WORLD, out.path()).unwrap();
        let header = out.path().join("agent_world.h");
        let before = std::fs::metadata(&header).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        write_bindings(&wit_dir(), WORLD, out.path()).unwrap();
        assert_eq!(std::fs::metadata(&header).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn an_unknown_world_names_the_folder() {
        let out = tempfile::tempdir().unwrap();
        let e = write_bindings(&wit_dir(), "no-such-world", out.path()).unwrap_err();
        assert!(matches!(e, StepError::Wit { .. }), "{e}");
        assert!(e.to_string().contains("no-such-world"), "{e}");
    }

    #[test]
    fn a_module_without_the_world_type_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("core.wasm");
        std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
        let e = componentize_file(&core, &dir.path().join("agent.wasm")).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} cannot be made into a component: it carries no WIT world: link the agent_world_component_type.o that `paddock build c-bindings` writes",
                core.display()
            )
        );
        assert!(!dir.path().join("agent.wasm").exists());
    }
}
