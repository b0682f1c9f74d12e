//! The agents a host serves, by name, and how a new version replaces the
//! serving one.
//!
//! Each name has a slot whose serving version is an `ArcSwapOption`: taking
//! it is a lock-free load, and replacing it never waits for invocations,
//! which hold the version they started on until they end. A new version is
//! read, compiled (or mapped from the code cache), checked against the world
//! and pre-instantiated before it is swapped in, so a broken file never
//! replaces a working version; and one that asks for capabilities its
//! predecessor did not have is held until approved (see `plugins::widening`).
//! `status.rs` lists them.

mod folder;
mod pinned;
mod status;

pub use status::{ErrorStatus, HeldStatus, PluginStatus, VersionStatus};

use super::Runtime;
use super::agent::{Agent, AgentParts, Code};
use crate::engine::memory;
use crate::plugins::book::Accepted;
use crate::plugins::cache::Compiled;
use crate::plugins::load::{self, ComponentFile, LoadError, Prepared};
use crate::plugins::{Manifest, Widening};
use arc_swap::ArcSwapOption;
use paddock_core::Capabilities;
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;
use wasmtime::component::Component;

/// Every slot, by the name or path it was loaded by.
#[derive(Default)]
pub(super) struct Live {
    slots: RwLock<HashMap<String, Arc<Slot>>>,
    /// Manifests that could not be read, so no name is known for them.
    strays: Mutex<BTreeMap<PathBuf, Failure>>,
}

impl Live {
    fn get(&self, key: &str) -> Option<Arc<Slot>> {
        self.slots.read().get(key).cloned()
    }

    /// Removes `slot` from under `key`, unless another slot has taken its place.
    fn forget(&self, key: &str, slot: &Arc<Slot>) {
        let mut slots = self.slots.write();
        if slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(key);
        }
    }

    /// The slot of `key`, inserting `slot` when there is none yet.
    fn get_or_insert(&self, key: &str, slot: impl FnOnce() -> Slot) -> (Arc<Slot>, bool) {
        let mut slots = self.slots.write();
        if let Some(existing) = slots.get(key) {
            return (existing.clone(), false);
        }
        let slot = Arc::new(slot());
        slots.insert(key.to_string(), slot.clone());
        (slot, true)
    }
}

/// One agent name: the version serving it, and what happened to the last attempt to replace it.
pub(super) struct Slot {
    serving: ArcSwapOption<Agent>,
    state: Mutex<SlotState>,
    /// Reloads of one name happen one at a time, so versions only move forward.
    reloading: tokio::sync::Mutex<()>,
    /// Loaded by name from the plugins folder (so reloaded and removed with it).
    named: bool,
    /// Whether a version is being built for this slot. A load that finds
    /// nothing serving waits for it instead of reporting "being loaded", so
    /// sixteen first loads of one agent compile it once and all get it.
    building: Mutex<bool>,
    built: Condvar,
}

/// The longest a load waits for another's build of the same agent.
const BUILD_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Marks its slot as building until dropped (on every path, panics included).
struct Building<'s>(&'s Slot);

impl Drop for Building<'_> {
    fn drop(&mut self) {
        *self.0.building.lock() = false;
        self.0.built.notify_all();
    }
}

#[derive(Default)]
struct SlotState {
    manifest: Option<PathBuf>,
    /// Where the manifest says the component is (built or not yet).
    component: Option<PathBuf>,
    stamp: Option<Stamp>,
    held: Option<Held>,
    last_error: Option<Failure>,
}

impl Slot {
    /// A slot with nothing serving, created building: whoever inserts it
    /// holds a [`Building`] of it at once, so no load sees it idle and empty.
    fn new(named: bool, manifest: Option<PathBuf>) -> Slot {
        Slot {
            serving: ArcSwapOption::empty(),
            state: Mutex::new(SlotState { manifest, ..SlotState::default() }),
            reloading: tokio::sync::Mutex::new(()),
            named,
            building: Mutex::new(true),
            built: Condvar::new(),
        }
    }

    /// The serving version; when there is none yet, waits for a build in
    /// progress (a compile: milliseconds, seconds for interpreted languages;
    /// at most [`BUILD_WAIT`]) before saying why there is none.
    ///
    /// On a multi-threaded tokio runtime the wait hands this worker's tasks
    /// to another thread (`block_in_place`): the build may be the watcher's,
    /// an async task, and loads waiting on every worker must not starve it.
    fn settled(&self, key: &str) -> Result<Arc<Agent>, LoadError> {
        if let Some(agent) = self.serving.load_full() {
            return Ok(agent);
        }
        let wait = || {
            let deadline = std::time::Instant::now() + BUILD_WAIT;
            let mut building = self.building.lock();
            while *building {
                if self.built.wait_until(&mut building, deadline).timed_out() {
                    break;
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
        self.current(key)
    }

    /// The serving version, or why there is none.
    fn current(&self, key: &str) -> Result<Arc<Agent>, LoadError> {
        if let Some(agent) = self.serving.load_full() {
            return Ok(agent);
        }
        let state = self.state.lock();
        let reason = match (&state.held, &state.last_error) {
            (Some(h), _) => h.explain(key),
            (None, Some(f)) => f.message.clone(),
            (None, None) => "it is being loaded".to_string(),
        };
        Err(LoadError::NotServing { name: key.to_string(), reason })
    }

    fn fail(&self, message: String) {
        self.state.lock().last_error = Some(Failure { at: SystemTime::now(), message });
    }
}

/// A version kept from serving until the operator approves what it asks for.
struct Held {
    agent: Arc<Agent>,
    widening: Widening,
}

impl Held {
    fn explain(&self, name: &str) -> String {
        format!(
            "version {} is held: it asks for {}, which the version before it did not; approve it with `paddock plugins approve {name} {}`",
            self.agent.version,
            self.widening.describe().join(", "),
            self.agent.version
        )
    }
}

/// An attempt to load a version that failed.
#[derive(Clone, Debug)]
struct Failure {
    at: SystemTime,
    message: String,
}

/// Size and modification time of a manifest and its component: a reload
/// starts only when one of them changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    manifest: Option<(u64, SystemTime)>,
    component: Option<(u64, SystemTime)>,
}

impl Stamp {
    fn of(manifest: &Manifest) -> Stamp {
        let stat =
            |p: &Path| std::fs::metadata(p).ok().map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        Stamp { manifest: stat(&manifest.file), component: stat(&manifest.component) }
    }
}

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files did not change (or changed back to what serves).
    Unchanged,
    /// A new version serves.
    Swapped {
        /// The version it replaced, if any.
        from: Option<Arc<str>>,
        /// The version now serving.
        to: Arc<str>,
    },
    /// A new version asks for more and waits for approval; the old one serves.
    Held {
        /// The held version.
        version: Arc<str>,
        /// What it asks for that the serving one did not.
        asks: Vec<String>,
    },
    /// The new files could not be loaded; the old version (if any) serves.
    Failed(String),
    /// The plugin is gone: new invocations fail, running ones finish.
    Removed,
}

/// Serve the new version, or hold it.
enum Decision {
    Serve,
    Hold(Widening),
}

impl Runtime {
    /// The version of `spec` serving now, if it was loaded; never loads.
    pub fn serving_now(&self, spec: &str) -> Option<Arc<Agent>> {
        self.inner.live.get(spec).and_then(|slot| slot.serving.load_full())
    }

    /// [`Runtime::load`] for a caller on an async thread: the version serving
    /// now, or else the load (which may compile, or wait for a build) on a
    /// blocking thread, so the caller's thread, and every connection a front
    /// thread serves, goes on meanwhile.
    pub async fn load_off_thread(&self, spec: &str) -> Result<Arc<Agent>, LoadError> {
        if let Some(agent) = self.serving_now(spec) {
            return Ok(agent);
        }
        // Outside a tokio runtime there is no blocking pool, and no other task to keep going.
        let Ok(tokio) = tokio::runtime::Handle::try_current() else { return self.load(spec) };
        let (runtime, spec) = (self.clone(), spec.to_string());
        match tokio.spawn_blocking(move || runtime.load(&spec)).await {
            Ok(loaded) => loaded,
            // Cancelled only as the runtime shuts down.
            Err(e) => {
                std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|_| Box::new("the host is stopping")))
            }
        }
    }

    /// Loads an agent named by `spec`: a path to a `.wasm`/`.wat` file or to
    /// an `agent.toml`, or the name of a plugin. Loaded agents are kept; the
    /// version returned is the one serving now.
    ///
    /// Concurrent first loads of one spec build it once: the others wait
    /// for that build (blocking their thread, as a load's own compile does)
    /// and get its version, or its error.
    pub fn load(&self, spec: &str) -> Result<Arc<Agent>, LoadError> {
        if let Some(slot) = self.inner.live.get(spec) {
            return slot.settled(spec);
        }
        let is_path =
            spec.contains('/') || spec.ends_with(".wasm") || spec.ends_with(".wat") || spec.ends_with(".toml");
        let (name, manifest) = if !is_path {
            let m = self.inner.registry.find(spec)?;
            (m.name.clone(), Some(m))
        } else if spec.ends_with(".toml") {
            let m = Manifest::load(Path::new(spec))?;
            (m.name.clone(), Some(m))
        } else {
            let stem = Path::new(spec).file_stem().map_or("agent".into(), |s| s.to_string_lossy().into_owned());
            (stem, None)
        };
        let component = manifest.as_ref().map_or_else(|| PathBuf::from(spec), |m| m.component.clone());
        let (slot, inserted) =
            self.inner.live.get_or_insert(spec, || Slot::new(!is_path, manifest.as_ref().map(|m| m.file.clone())));
        if !inserted {
            return slot.settled(spec);
        }
        let building = Building(&slot);
        let stamp = manifest.as_ref().map(Stamp::of);
        let built = read_with_hint(&component, &name, manifest.is_some())
            .and_then(|file| self.build_agent(&name, manifest, file));
        let agent = match built {
            Ok(agent) => agent,
            Err(e) => {
                // Nothing was loaded: the next load tries again. Loads
                // waiting on this one get its error.
                slot.fail(e.to_string());
                self.inner.live.forget(spec, &slot);
                return Err(e);
            }
        };
        {
            let mut state = slot.state.lock();
            state.stamp = stamp;
            state.component = Some(agent.component.clone());
        }
        let decision = self.decide(&agent, None);
        self.settle(&slot, agent, decision);
        drop(building);
        slot.current(spec)
    }

    /// Compiles `file` and gives the agent its limits. On a tiered host,
    /// code whose optimized form is not in the cache is Winch's for now,
    /// and Cranelift's is compiled in the background (`runtime::tiers`).
    fn build_agent(
        &self,
        name: &str,
        manifest: Option<Manifest>,
        file: ComponentFile,
    ) -> Result<Arc<Agent>, LoadError> {
        let s = self.inner.settings.load();
        if let Some(manifest) = &manifest {
            manifest.check_key_prefixes(s.caps.key_bytes)?;
        }
        // wasi:http is linked only for an agent whose manifest asks for hosts.
        let http = manifest.as_ref().is_some_and(|m| !m.capabilities.http.is_empty());
        let (prepared, unstored) = self.compile(&file, http)?;
        self.inner.metrics.loaded(prepared.compiled);
        let (limits, notes) = super::agent::limits_for(&s, manifest.as_ref());
        for note in &notes {
            tracing::warn!(agent = name, "{note}");
        }
        let compiled = prepared.compiled;
        let agent = Arc::new(Agent::new(AgentParts {
            name: Arc::from(name),
            hash: file.hash,
            manifest,
            component: file.path.clone(),
            limits,
            notes,
            code: Code { pre: prepared.pre, compiled },
        }));
        match (compiled, &self.inner.tiers) {
            // A one-shot process ends before optimized code could serve it.
            (Compiled::Baseline, Some(tiers)) => tiers.optimize_later(&agent, file, http, unstored, !self.one_shot()),
            // (A tiered host's tiering thread hands the memory back after its
            // compile; a one-shot process, by ending.)
            (Compiled::Fresh, _) if !self.one_shot() => memory::after_compiling(),
            _ => {}
        }
        Ok(agent)
    }

    /// The code of `file`: Winch's when the host is tiered and Cranelift's
    /// is not in the cache yet (or when there is no cache), with Winch's
    /// code when it was compiled now and is not stored yet; else Cranelift's.
    fn compile(&self, file: &ComponentFile, http: bool) -> Result<(Prepared, Option<Component>), LoadError> {
        let cache = self.inner.cache.as_deref();
        if let Some(tiers) = &self.inner.tiers
            && !cache.is_some_and(|c| c.contains(&file.hash))
        {
            match tiers.compile(file, http) {
                Ok(baseline) => return Ok(baseline),
                // The world is checked alike on either engine.
                Err(e @ LoadError::WrongWorld { .. }) => return Err(e),
                Err(e) => tracing::debug!(component = %file.path.display(), "Winch cannot compile it: {e}"),
            }
        }
        let linker = if http { &self.inner.http_linker } else { &self.inner.linker };
        Ok((load::compile(&self.inner.engine, (linker, http), file, cache)?, None))
    }

    /// Whether `agent` may serve: it asks for nothing beyond `prior` (the
    /// serving version's capabilities, else the last accepted ones), or the
    /// tenants grant the difference outright, or the operator approved it.
    fn decide(&self, agent: &Agent, prior: Option<&Capabilities>) -> Decision {
        if agent.manifest.is_none() {
            return Decision::Serve;
        }
        let accepted;
        let prior = match prior {
            Some(p) => p,
            None => match self.inner.book.accepted(&agent.name) {
                Some(a) => {
                    accepted = a;
                    &accepted.capabilities
                }
                None => return Decision::Serve,
            },
        };
        let widening = Widening::between(prior, &agent.requested);
        if widening.is_empty()
            || widening.granted_in_advance(&self.inner.settings.load().tenants, &agent.name)
            || self.inner.book.approved(&agent.name, &agent.version)
        {
            Decision::Serve
        } else if self.one_shot() {
            tracing::warn!(
                agent = &*agent.name,
                "version {} asks for {}, beyond the version last accepted: it runs here, once; a serving host holds it \
                 until `paddock plugins approve {} {}`",
                agent.version,
                widening.describe().join(", "),
                agent.name,
                agent.version
            );
            Decision::Serve
        } else {
            Decision::Hold(widening)
        }
    }

    /// Puts `agent` in `slot`: serving, or held.
    fn settle(&self, slot: &Slot, agent: Arc<Agent>, decision: Decision) -> Reload {
        match decision {
            Decision::Serve => {
                if agent.manifest.is_some() && !self.one_shot() {
                    let accepted =
                        Accepted { version: agent.version.to_string(), capabilities: (*agent.requested).clone() };
                    if let Err(e) = self.inner.book.accept(&agent.name, accepted) {
                        tracing::warn!(agent = &*agent.name, "cannot record the accepted version: {e}");
                    }
                }
                let to = agent.version.clone();
                let from = slot.serving.swap(Some(agent)).map(|old| old.version.clone());
                let mut state = slot.state.lock();
                state.held = None;
                state.last_error = None;
                Reload::Swapped { from, to }
            }
            Decision::Hold(widening) => {
                let reload = Reload::Held { version: agent.version.clone(), asks: widening.describe() };
                let held = Held { agent, widening };
                tracing::warn!(agent = &*held.agent.name, "{}", held.explain(&held.agent.name));
                slot.state.lock().held = Some(held);
                reload
            }
        }
    }

    /// Loads the plugin `name` again from the plugins folder, if its files changed.
    pub async fn reload(&self, name: &str) -> Reload {
        match self.inner.registry.find(name) {
            Ok(manifest) => self.reload_manifest(manifest).await,
            Err(LoadError::NoPlugin { .. }) => self.remove(name),
            Err(e) => {
                let message = e.to_string();
                if let Some(slot) = self.inner.live.get(name) {
                    slot.fail(message.clone());
                }
                Reload::Failed(message)
            }
        }
    }

    async fn reload_manifest(&self, manifest: Manifest) -> Reload {
        let name = manifest.name.clone();
        let (slot, inserted) = self.inner.live.get_or_insert(&name, || Slot::new(true, Some(manifest.file.clone())));
        // A new slot is building from birth; `load`s of it wait until this ends.
        let _building = inserted.then(|| Building(&slot));
        let _one_at_a_time = slot.reloading.lock().await;
        let stamp = Stamp::of(&manifest);
        {
            let mut state = slot.state.lock();
            if state.stamp == Some(stamp) {
                return Reload::Unchanged;
            }
            state.stamp = Some(stamp);
            state.manifest = Some(manifest.file.clone());
            state.component = Some(manifest.component.clone());
        }
        let runtime = self.clone();
        // Reading and compiling may take seconds (interpreted languages);
        // they happen off the async workers.
        let built = tokio::task::spawn_blocking(move || -> Result<Option<Arc<Agent>>, LoadError> {
            let file = read_with_hint(&manifest.component, &manifest.name, true)?;
            let same = |a: &Agent| a.hash == file.hash && a.manifest.as_ref() == Some(&manifest);
            let slot = runtime.inner.live.get(&manifest.name);
            if let Some(slot) = slot {
                let serving = slot.serving.load_full();
                let held = slot.state.lock().held.as_ref().map(|h| h.agent.clone());
                if serving.as_deref().is_some_and(same) {
                    // Back to what serves: a version held meanwhile is no longer on disk.
                    let mut state = slot.state.lock();
                    state.held = None;
                    state.last_error = None;
                    return Ok(None);
                }
                if held.as_deref().is_some_and(same) {
                    return Ok(None);
                }
            }
            runtime.build_agent(&manifest.name.clone(), Some(manifest), file).map(Some)
        })
        .await;
        let agent = match built {
            Ok(Ok(Some(agent))) => agent,
            Ok(Ok(None)) => return Reload::Unchanged,
            Ok(Err(e)) => {
                let message = e.to_string();
                match slot.serving.load().as_ref() {
                    Some(old) => tracing::error!(
                        agent = %name,
                        "new version not loaded, version {} keeps serving: {message}",
                        old.version
                    ),
                    None => tracing::error!(agent = %name, "not loaded, nothing serves it: {message}"),
                }
                slot.fail(message.clone());
                return Reload::Failed(message);
            }
            Err(e) => {
                let message = format!("loading panicked: {e}");
                slot.fail(message.clone());
                return Reload::Failed(message);
            }
        };
        let serving = slot.serving.load_full();
        let decision = self.decide(&agent, serving.as_ref().map(|s| &*s.requested));
        let reload = self.settle(&slot, agent, decision);
        if let Reload::Swapped { from, to } = &reload {
            tracing::info!(agent = %name, from = from.as_deref().unwrap_or("none"), to = &**to, "new version serving");
        }
        reload
    }

    /// Approves `version` of `name` in this host and serves it if it is held.
    pub fn approve(&self, name: &str, version: &str) -> Vec<(String, Reload)> {
        self.inner.book.approve_here(name, version);
        self.release_approved()
    }

    /// Serves every held version that has been approved since.
    fn release_approved(&self) -> Vec<(String, Reload)> {
        let slots: Vec<(String, Arc<Slot>)> =
            self.inner.live.slots.read().iter().map(|(k, s)| (k.clone(), s.clone())).collect();
        let mut out = Vec::new();
        for (key, slot) in slots {
            let approved = {
                let mut state = slot.state.lock();
                match &state.held {
                    Some(h) if self.inner.book.approved(&h.agent.name, &h.agent.version) => state.held.take(),
                    _ => None,
                }
            };
            if let Some(held) = approved {
                out.push((key, self.settle(&slot, held.agent, Decision::Serve)));
            }
        }
        out
    }

    /// The manifests and component files of every plugin this host has loaded
    /// or tried to, built or not, and the broken manifests.
    pub(super) fn plugin_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.inner.live.strays.lock().keys().cloned().collect();
        for slot in self.inner.live.slots.read().values() {
            let state = slot.state.lock();
            files.extend(state.manifest.iter().chain(&state.component).cloned());
        }
        files
    }
}

/// Reads a component, telling how to build it when it is missing.
fn read_with_hint(path: &Path, name: &str, has_manifest: bool) -> Result<ComponentFile, LoadError> {
    load::read_component(path).map_err(|e| match e {
        LoadError::Missing { path, .. } if has_manifest => LoadError::Missing {
            path,
            hint: Some(format!("build it first: `paddock build` or `paddock run {name} --build`")),
        },
        other => other,
    })
}
