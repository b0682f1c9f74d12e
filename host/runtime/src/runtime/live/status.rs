//! Every plugin a host has loaded or tried to, as `paddock plugins list`
//! and `GET /v1/plugins` show them.

use crate::runtime::Runtime;
use crate::runtime::agent::Agent;
use std::path::PathBuf;
use std::time::SystemTime;

/// One plugin as `paddock plugins list` shows it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PluginStatus {
    /// The name (or the path it was loaded by; or a broken manifest's file).
    pub name: String,
    /// Its manifest file, if any.
    pub manifest: Option<PathBuf>,
    /// The serving version.
    pub serving: Option<VersionStatus>,
    /// A version waiting for approval.
    pub held: Option<HeldStatus>,
    /// The last failed attempt to load a version (cleared when one succeeds).
    pub last_error: Option<ErrorStatus>,
}

/// A loaded version.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct VersionStatus {
    /// Its id.
    pub version: String,
    /// The BLAKE3 hash of its component.
    pub hash: String,
    /// Its component file.
    pub component: PathBuf,
    /// When it was loaded (RFC 3339).
    pub loaded_at: String,
    /// Invocations started on it.
    pub invocations: u64,
    /// Compiled now, mapped from the cache, or baseline code while the optimized code compiles.
    pub compiled: crate::plugins::cache::Compiled,
}

/// A held version.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct HeldStatus {
    /// The version.
    pub version: VersionStatus,
    /// What it asks for beyond the serving one.
    pub asks: Vec<String>,
}

/// A failure.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ErrorStatus {
    /// When (RFC 3339).
    pub at: String,
    /// What went wrong.
    pub message: String,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

fn version_status(a: &Agent) -> VersionStatus {
    VersionStatus {
        version: a.version.to_string(),
        hash: a.hash.hex(),
        component: a.component.clone(),
        loaded_at: rfc3339(a.loaded_at),
        invocations: a.invocations(),
        compiled: a.compiled(),
    }
}

impl Runtime {
    /// Every plugin this host has loaded or tried to, sorted by name.
    pub fn plugins(&self) -> Vec<PluginStatus> {
        let mut out: Vec<PluginStatus> = self
            .inner
            .live
            .slots
            .read()
            .iter()
            .map(|(key, slot)| {
                let state = slot.state.lock();
                PluginStatus {
                    name: key.clone(),
                    manifest: state.manifest.clone(),
                    serving: slot.serving.load_full().as_deref().map(version_status),
                    held: state
                        .held
                        .as_ref()
                        .map(|h| HeldStatus { version: version_status(&h.agent), asks: h.widening.describe() }),
                    last_error: state
                        .last_error
                        .as_ref()
                        .map(|f| ErrorStatus { at: rfc3339(f.at), message: f.message.clone() }),
                }
            })
            .collect();
        out.extend(self.inner.live.strays.lock().iter().map(|(file, f)| PluginStatus {
            name: file.display().to_string(),
            manifest: Some(file.clone()),
            serving: None,
            held: None,
            last_error: Some(ErrorStatus { at: rfc3339(f.at), message: f.message.clone() }),
        }));
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }
}
