//! Versions a flow run is pinned to: kept when a run pins them, loaded back
//! from where they are kept when the plugins folder serves another version
//! (or none), so a run resumes on the version it started with on any host.

use super::{Decision, read_with_hint};
use crate::plugins::Manifest;
use crate::plugins::versions::ToKeep;
use crate::runtime::{Agent, Runtime};
use std::sync::Arc;

/// Kept versions loaded here at once, beyond the serving ones.
const LOADED_PINNED: usize = 64;

impl Runtime {
    /// Keeps `agent`'s version where the plugin state is kept, so a run
    /// pinned to it can resume on it anywhere (see [`crate::plugins::versions`]).
    /// A bare component (no manifest) is not kept.
    pub fn keep_version(&self, agent: &Agent) -> Result<(), String> {
        let Some(manifest) = &agent.manifest else { return Ok(()) };
        let to_keep = ToKeep { name: &agent.name, version: &agent.version, manifest, hash: &agent.hash };
        self.inner.versions.keep(&to_keep)
    }

    /// Where versions runs pin are kept.
    pub fn versions(&self) -> &crate::plugins::Versions {
        &self.inner.versions
    }

    /// Agent `name` at `version`: the serving one when it is that version,
    /// else the kept one, loaded here — if the operator's approvals allow
    /// what it asks for now.
    pub fn load_pinned(&self, name: &str, version: &str) -> Result<Arc<Agent>, String> {
        let serving = self.load(name);
        if let Ok(agent) = &serving
            && *agent.version == *version
        {
            return Ok(agent.clone());
        }
        let id = (name.to_string(), version.to_string());
        if let Some(agent) = self.inner.pinned.lock().get(&id) {
            return Ok(agent.clone());
        }
        let here = match &serving {
            Ok(agent) => format!("agent {name:?} here is version {}", agent.version),
            Err(e) => format!("agent {name:?} is not served here ({e})"),
        };
        let Some(file) = self.inner.versions.find(name, version)? else {
            let kept = match self.inner.versions.keeps() {
                true => "and no host kept it",
                false => "and host.plugin-state = \"memory\" keeps no version",
            };
            return Err(format!("{here}; the run is pinned to version {version}, {kept}"));
        };
        let manifest = Manifest::load(&file).map_err(|e| e.to_string())?;
        let component = read_with_hint(&manifest.component, name, true).map_err(|e| e.to_string())?;
        // Kept before version ids covered the manifest: named by its component alone.
        let before = format!("{}+{}", manifest.version, component.hash.short());
        let agent = self.build_agent(name, Some(manifest), component).map_err(|e| e.to_string())?;
        if *agent.version != *version && before != version {
            return Err(format!("{}: kept as version {version}, but it loads as {}", file.display(), agent.version));
        }
        if let Decision::Hold(widening) = self.decide(&agent, None) {
            return Err(format!(
                "{here}; version {version} the run is pinned to asks for {}, beyond what was accepted since; \
                 approve it with `paddock plugins approve {name} {version}`",
                widening.describe().join(", ")
            ));
        }
        let mut pinned = self.inner.pinned.lock();
        if pinned.len() >= LOADED_PINNED {
            pinned.clear();
        }
        pinned.insert(id, agent.clone());
        Ok(agent)
    }
}
