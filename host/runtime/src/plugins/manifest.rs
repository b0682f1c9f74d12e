//! `agent.toml`: an agent's name, version, component, build command, and the
//! limits and capabilities it requests.

use super::cache::ContentHash;
use paddock_core::{ByteSize, Capabilities, Requested, Span};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The manifest's file name, in each plugin's folder.
pub const FILE_NAME: &str = "agent.toml";

/// A manifest that could not be read or is wrong; names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ManifestError {
    /// The manifest file.
    pub file: PathBuf,
    /// What is wrong.
    pub message: String,
}

/// How to build the component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Build {
    /// A shell command.
    pub command: String,
    /// Where it runs.
    pub workdir: PathBuf,
}

/// A validated manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The file it was read from.
    pub file: PathBuf,
    /// Agent name: 1 to 64 of `a-z 0-9 - _`.
    pub name: String,
    /// Semantic version.
    pub version: semver::Version,
    /// What it does.
    pub description: String,
    /// The component file, resolved against the manifest's folder.
    pub component: PathBuf,
    /// How to build it.
    pub build: Option<Build>,
    /// Limits it asks for.
    pub limits: Requested,
    /// Capabilities it asks for.
    pub capabilities: Capabilities,
    /// How it shows as an MCP tool (`[tool]`).
    pub tool: Option<Tool>,
    /// What its version id covers of it (see [`Manifest::version_id`]).
    pub digest: ContentHash,
}

/// How an agent shows as an MCP tool: what `tools/list` says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    /// What it does, for the model choosing a tool (the manifest's
    /// `description` when the table has none).
    pub description: Option<String>,
    /// The JSON Schema of its input, an object (`{"type": "object"}` when not given).
    pub input_schema: Option<JsonObject>,
    /// The JSON Schema of its output, when it answers with an object.
    pub output_schema: Option<JsonObject>,
}

/// A JSON object.
pub type JsonObject = serde_json::Map<String, serde_json::Value>;

/// The most bytes of a tool's description or of each of its schemas (as JSON).
pub const MAX_TOOL_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ManifestFile {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    component: PathBuf,
    build: Option<BuildSection>,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    capabilities: Capabilities,
    tool: Option<ToolSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ToolSection {
    description: Option<String>,
    input_schema: Option<serde_json::Value>,
    output_schema: Option<serde_json::Value>,
}

impl ToolSection {
    /// Checks it: schemas are objects of type object, nothing over [`MAX_TOOL_BYTES`].
    fn check(self) -> Result<Tool, String> {
        if self.description.as_ref().is_some_and(|d| d.len() > MAX_TOOL_BYTES) {
            return Err(format!("tool.description: longer than {MAX_TOOL_BYTES} bytes"));
        }
        let schema = |key: &str, value: Option<serde_json::Value>| -> Result<Option<JsonObject>, String> {
            let Some(value) = value else { return Ok(None) };
            if value.to_string().len() > MAX_TOOL_BYTES {
                return Err(format!("tool.{key}: longer than {MAX_TOOL_BYTES} bytes as JSON"));
            }
            match value {
                serde_json::Value::Object(map) if map.get("type").and_then(|t| t.as_str()) == Some("object") => {
                    Ok(Some(map))
                }
                _ => Err(format!(
                    "tool.{key}: must be a JSON Schema of an object, a table with type = \"object\" (MCP's rule)"
                )),
            }
        };
        Ok(Tool {
            description: self.description,
            input_schema: schema("input-schema", self.input_schema)?,
            output_schema: schema("output-schema", self.output_schema)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BuildSection {
    command: String,
    workdir: Option<PathBuf>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsSection {
    fuel: Option<u64>,
    memory: Option<ByteSize>,
    timeout: Option<Span>,
}

/// Joins `relative` to `dir`, folding `.` and `..` so messages show plain paths.
fn resolve(dir: &Path, relative: &Path) -> PathBuf {
    let out = fold(&dir.join(relative));
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// `path` with `.` dropped and `..` folded into the folder before it:
/// `./plugins/x/../y` is `plugins/y`.
pub(crate) fn fold(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

impl Manifest {
    /// Checks the blackboard prefixes it asks for against the host's
    /// `limits.max-key-bytes` (a longer prefix could match no key).
    pub fn check_key_prefixes(&self, key_bytes: u64) -> Result<(), ManifestError> {
        let Some(board) = &self.capabilities.blackboard else { return Ok(()) };
        for (kind, prefixes) in [("read", &board.read), ("write", &board.write)] {
            for (i, p) in prefixes.iter().enumerate() {
                paddock_core::names::validate_key_prefix(p, key_bytes).map_err(|why| ManifestError {
                    file: self.file.clone(),
                    message: format!("capabilities.blackboard.{kind}[{i}]: {why}"),
                })?;
            }
        }
        Ok(())
    }

    /// Reads and validates the manifest at `file`.
    pub fn load(file: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| ManifestError { file: file.to_path_buf(), message: format!("cannot read: {e}") })?;
        Manifest::parse(&text, file)
    }

    /// Validates manifest `text` read from `file`.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest, ManifestError> {
        let fail = |message: String| ManifestError { file: file.to_path_buf(), message };
        let raw: ManifestFile = toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_string()))?;
        paddock_core::names::validate_agent(&raw.name).map_err(|why| fail(format!("name: {why}")))?;
        let version = semver::Version::parse(&raw.version)
            .map_err(|e| fail(format!("version: `{}` is not a semantic version like \"0.1.0\" ({e})", raw.version)))?;
        if raw.component.as_os_str().is_empty() {
            return Err(fail("component: must name the component's .wasm file".into()));
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        let build = match raw.build {
            Some(b) if b.command.trim().is_empty() => return Err(fail("build.command: must not be empty".into())),
            Some(b) => Some(Build { command: b.command, workdir: resolve(dir, &b.workdir.unwrap_or_default()) }),
            None => None,
        };
        for (key, value) in [("fuel", raw.limits.fuel), ("memory", raw.limits.memory.map(|m| m.0))] {
            if value == Some(0) {
                return Err(fail(format!("limits.{key}: must be greater than zero")));
            }
        }
        if raw.limits.timeout.is_some_and(|t| t.0.is_zero()) {
            return Err(fail("limits.timeout: must be greater than zero".into()));
        }
        for (i, agent) in raw.capabilities.agents.iter().enumerate() {
            paddock_core::names::validate_agent(agent)
                .map_err(|why| fail(format!("capabilities.agents[{i}]: {why}")))?;
        }
        for (i, route) in raw.capabilities.routes.iter().enumerate() {
            if route.is_empty() || route.len() > 64 {
                return Err(fail(format!("capabilities.routes[{i}]: a route name is 1 to 64 characters")));
            }
        }
        for (i, dir) in raw.capabilities.dirs.iter().enumerate() {
            if !dir.starts_with('/') {
                return Err(fail(format!(
                    "capabilities.dirs[{i}]: `{dir}` must be an absolute guest path like \"/data\""
                )));
            }
        }
        for (i, pattern) in raw.capabilities.http.iter().enumerate() {
            paddock_core::hosts::validate_pattern(pattern)
                .map_err(|why| fail(format!("capabilities.http[{i}]: {why}")))?;
        }
        for (i, pattern) in raw.capabilities.tools.iter().enumerate() {
            paddock_core::tools::validate_pattern(pattern)
                .map_err(|why| fail(format!("capabilities.tools[{i}]: {why}")))?;
        }
        let tool = raw.tool.map(ToolSection::check).transpose().map_err(fail)?;
        let table: toml::Table = toml::from_str(text).map_err(|e| fail(e.to_string().trim_end().to_string()))?;
        Ok(Manifest {
            file: file.to_path_buf(),
            name: raw.name,
            version,
            description: raw.description,
            component: resolve(dir, &raw.component),
            build,
            limits: Requested {
                fuel: raw.limits.fuel,
                memory: raw.limits.memory.map(|m| m.0),
                timeout: raw.limits.timeout.map(|t| t.0),
            },
            capabilities: raw.capabilities,
            tool,
            digest: digest(table),
        })
    }

    /// The id of the version made of this manifest and the component whose
    /// bytes hash to `component`: its `version` and the first 12 hex digits
    /// of a BLAKE3 hash of both (`0.1.0+3fa2c9d1e0b4`). A new component or a
    /// manifest saying something new (a capability, a limit) is a new id.
    pub fn version_id(&self, component: &ContentHash) -> String {
        let mut both = blake3::Hasher::new();
        both.update(&component.0);
        both.update(&self.digest.0);
        format!("{}+{}", self.version, ContentHash(*both.finalize().as_bytes()).short())
    }
}

/// The hash a version id takes of a manifest: its table without `component`
/// and `[build]`, written canonically (keys sorted, every value typed).
///
/// Not the file's text, because a pinned version is kept
/// (`plugins::versions`) as this manifest with `component` pointing beside
/// it and `[build]` dropped, rewritten by `toml`, and must load again under
/// the id it was kept by. Those two keys are all it leaves out: the
/// component's bytes are hashed on their own, and `[build]` says how to make
/// them, not what runs. Every other key is what the version asks for and
/// shows (name, version, description, limits, capabilities, tool), so a
/// change to any is a new id; a comment or the file's layout is not.
fn digest(mut table: toml::Table) -> ContentHash {
    table.remove("component");
    table.remove("build");
    let mut out = String::new();
    canonical(&toml::Value::Table(table), &mut out);
    ContentHash::of(out.as_bytes())
}

/// Writes `value` as JSON with sorted keys; a float always with a point or
/// an exponent (never equal to an integer's text), a date-time tagged `t`.
fn canonical(value: &toml::Value, out: &mut String) {
    use std::fmt::Write;
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    match value {
        toml::Value::String(s) => out.push_str(&quoted(s)),
        toml::Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        toml::Value::Float(f) => {
            let _ = write!(out, "{f:?}");
        }
        toml::Value::Boolean(b) => {
            let _ = write!(out, "{b}");
        }
        toml::Value::Datetime(d) => {
            let _ = write!(out, "t{}", quoted(&d.to_string()));
        }
        toml::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        toml::Value::Table(table) => {
            let mut keys: Vec<&String> = table.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&quoted(key));
                out.push(':');
                canonical(&table[key], out);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const GOOD: &str = r#"
name = "hello"
version = "0.1.0"
description = "greets"
component = "target/hello.wasm"
[build]
command = "cargo build"
[limits]
memory = "32MiB"
timeout = "5s"
[capabilities]
agents = ["helper"]
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("plugins/hello/agent.toml"))
    }

    #[test]
    fn a_good_manifest_resolves_paths_against_its_folder() {
        let m = parse(GOOD).unwrap();
        assert_eq!(m.component, Path::new("plugins/hello/target/hello.wasm"));
        assert_eq!(m.build.unwrap().workdir, Path::new("plugins/hello"));
        assert_eq!(m.limits.memory, Some(32 << 20));
        assert_eq!(m.limits.timeout, Some(Duration::from_secs(5)));
        assert_eq!(m.capabilities.agents, ["helper"]);
    }

    #[test]
    fn component_paths_fold_parent_folders() {
        let m = parse(&GOOD.replace("target/hello.wasm", "../target/./hello.wasm")).unwrap();
        assert_eq!(m.component, Path::new("plugins/target/hello.wasm"));
    }

    #[test]
    fn unknown_key_names_the_file_the_key_and_the_line() {
        let err = parse(&GOOD.replace("[limits]", "[limits]\nfuels = 1")).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("plugins/hello/agent.toml: "), "{text}");
        assert!(text.contains("unknown field `fuels`"), "{text}");
        assert!(text.contains("line 9"), "{text}");
    }

    #[test]
    fn bad_name_and_version_are_named() {
        let err = parse(&GOOD.replace("\"hello\"", "\"Hello World\"")).unwrap_err();
        assert_eq!(
            err.message,
            "name: `Hello World` is not an agent name: use 1 to 64 of a-z, 0-9, '-' and '_', starting with a letter"
        );
        let err = parse(&GOOD.replace("0.1.0", "one")).unwrap_err();
        assert!(err.message.starts_with("version: `one` is not a semantic version"), "{}", err.message);
    }

    #[test]
    fn a_tool_table_gives_the_mcp_description_and_schemas() {
        let text = format!(
            "{GOOD}[tool]\ndescription = \"looks up a city\"\n[tool.input-schema]\ntype = \"object\"\nrequired = [\"city\"]\nproperties = {{ city = {{ type = \"string\" }} }}\n"
        );
        let tool = parse(&text).unwrap().tool.unwrap();
        assert_eq!(tool.description.as_deref(), Some("looks up a city"));
        let schema = serde_json::Value::Object(tool.input_schema.unwrap());
        assert_eq!(
            schema,
            serde_json::json!({"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}})
        );
        assert_eq!(tool.output_schema, None);
        assert_eq!(parse(GOOD).unwrap().tool, None);
    }

    #[test]
    fn a_tool_schema_that_is_not_an_object_schema_is_refused_by_key() {
        let err = parse(&format!("{GOOD}[tool]\noutput-schema = {{ type = \"string\" }}\n")).unwrap_err();
        assert_eq!(
            err.message,
            "tool.output-schema: must be a JSON Schema of an object, a table with type = \"object\" (MCP's rule)"
        );
        let err = parse(&format!("{GOOD}[tool]\ninput = 1\n")).unwrap_err();
        assert!(err.message.contains("unknown field `input`"), "{}", err.message);
    }

    #[test]
    fn zero_limits_and_missing_component_are_refused() {
        assert_eq!(
            parse(&GOOD.replace("\"5s\"", "\"0s\"")).unwrap_err().message,
            "limits.timeout: must be greater than zero"
        );
        let err = parse("name = \"a\"\nversion = \"1.0.0\"\n").unwrap_err();
        assert!(err.message.contains("missing field `component`"), "{}", err.message);
    }

    #[test]
    fn a_version_id_covers_what_the_manifest_says_but_not_its_layout_path_or_build() {
        let component = ContentHash::of(b"the component");
        let id = |text: &str| parse(text).unwrap().version_id(&component);
        let first = id(GOOD);
        assert!(first.starts_with("0.1.0+") && first.len() == "0.1.0+".len() + 12, "{first}");
        assert_eq!(id(GOOD), first, "the same files, the same id");
        // Comments, order and layout; the component's path and [build], as a kept version rewrites them.
        let kept = "# kept\n[capabilities]\nagents = [ \"helper\" ]\n[limits]\ntimeout = \"5s\"\nmemory = \"32MiB\"\n";
        let kept = format!(
            "version = \"0.1.0\"\nname = \"hello\"\ncomponent = \"component.wasm\"\ndescription = \"greets\"\n{kept}"
        );
        assert_eq!(id(&kept), first);
        for changed in [
            GOOD.replace("agents = [\"helper\"]", "agents = [\"helper\"]\nroutes = [\"fast\"]"),
            GOOD.replace("\"5s\"", "\"6s\""),
            GOOD.replace("greets", "greets you"),
        ] {
            assert_ne!(id(&changed), first, "{changed}");
        }
        assert_ne!(parse(GOOD).unwrap().version_id(&ContentHash::of(b"another")), first, "a new component");
    }
}
