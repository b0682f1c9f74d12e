//! Keeping up with the plugins folder: new and changed plugins loaded,
//! removed ones stopped, a name kept by the folder it is served from.

use super::{Failure, Reload, Slot};
use crate::plugins::Manifest;
use crate::runtime::Runtime;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

impl Runtime {
    /// Stops serving `name`: new invocations fail, running ones finish.
    pub(super) fn remove(&self, name: &str) -> Reload {
        let removed = {
            let mut slots = self.inner.live.slots.write();
            match slots.get(name) {
                Some(slot) if slot.named => slots.remove(name),
                _ => None,
            }
        };
        match removed {
            Some(_) => {
                tracing::info!(agent = name, "plugin removed; invocations already running finish");
                Reload::Removed
            }
            None => Reload::Unchanged,
        }
    }

    /// Brings every plugin of the plugins folder up to date: new and changed
    /// ones are loaded, removed ones stop serving, approved ones are released.
    /// A folder that cannot be read changes nothing: every agent keeps serving.
    pub async fn sync(&self) -> Vec<(String, Reload)> {
        if let Err(e) = self.inner.book.reload_approvals() {
            tracing::error!("{e}");
        }
        let serving = self.inner.live.slots.read().values().any(|slot| slot.named);
        let scanned = match self.inner.registry.scan() {
            Ok(scanned) => scanned,
            // A host that never had a plugins folder has nothing to keep.
            Err(_) if !serving && !self.inner.registry.dir().exists() => Vec::new(),
            Err(e) => {
                let message = format!("{e}; every loaded agent keeps serving");
                tracing::error!("{message}");
                self.inner.live.strays.lock().insert(e.file, Failure { at: SystemTime::now(), message });
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut names = HashSet::new();
        let mut strays = BTreeMap::new();
        let mut claims: BTreeMap<String, Vec<Manifest>> = BTreeMap::new();
        for scanned in scanned {
            match scanned {
                Ok(m) => claims.entry(m.name.clone()).or_default().push(m),
                Err(e) => {
                    let message = e.to_string();
                    let slots: Vec<Arc<Slot>> = self.inner.live.slots.read().values().cloned().collect();
                    let owner = slots.iter().find(|s| s.state.lock().manifest.as_deref() == Some(e.file.as_path()));
                    // Logged once per new error, not at every sync while it stays.
                    let told = match owner {
                        Some(slot) => slot.state.lock().last_error.as_ref().is_some_and(|f| f.message == message),
                        None => self.inner.live.strays.lock().get(&e.file).is_some_and(|f| f.message == message),
                    };
                    if !told {
                        tracing::error!("plugin not loaded: {message}");
                    }
                    match owner {
                        Some(slot) => {
                            names.extend(self.name_of(slot));
                            slot.fail(message);
                        }
                        None => {
                            strays.insert(e.file.clone(), Failure { at: SystemTime::now(), message });
                        }
                    }
                }
            }
        }
        for (name, manifests) in claims {
            names.insert(name.clone());
            let Some(manifest) = self.claimant(&name, manifests, &mut strays) else { continue };
            let reload = self.reload_manifest(manifest).await;
            if reload != Reload::Unchanged {
                out.push((name, reload));
            }
        }
        *self.inner.live.strays.lock() = strays;
        let gone: Vec<String> = self
            .inner
            .live
            .slots
            .read()
            .iter()
            .filter(|(key, slot)| slot.named && !names.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for name in gone {
            out.push((name.clone(), self.remove(&name)));
        }
        out.extend(self.release_approved());
        out
    }

    /// Of the manifests claiming `name`, the one that may serve it; the
    /// others go to `strays`, ignored. A name is kept by the manifest it is
    /// served from for as long as that file exists (broken or not), so a new
    /// folder claiming it never replaces the agent; among newcomers, the one
    /// in the folder of that name wins, and two others load neither.
    fn claimant(
        &self,
        name: &str,
        mut claims: Vec<Manifest>,
        strays: &mut BTreeMap<PathBuf, Failure>,
    ) -> Option<Manifest> {
        let serving_from = self.inner.live.get(name).and_then(|slot| slot.state.lock().manifest.clone());
        let kept = serving_from.filter(|file| file.is_file());
        let folder = self.inner.registry.dir().join(name).join(crate::plugins::manifest::FILE_NAME);
        let owner = match &kept {
            Some(file) => claims.iter().position(|m| &m.file == file),
            None if claims.len() == 1 => Some(0),
            None => claims.iter().position(|m| m.file == folder),
        }
        .map(|i| claims.remove(i));
        let holder = kept.clone().or_else(|| owner.as_ref().map(|m| m.file.clone()));
        for m in claims {
            let message = match &holder {
                Some(holder) => format!(
                    "another plugin is also named {name:?}: {} is ignored; the name is {}'s",
                    m.file.display(),
                    holder.display()
                ),
                None => format!(
                    "another plugin is also named {name:?} and neither is in {}: {} is ignored",
                    folder.display(),
                    m.file.display()
                ),
            };
            tracing::warn!(agent = name, "{message}");
            strays.insert(m.file.clone(), Failure { at: SystemTime::now(), message });
        }
        owner
    }

    fn name_of(&self, slot: &Arc<Slot>) -> Option<String> {
        self.inner.live.slots.read().iter().find(|(_, s)| Arc::ptr_eq(s, slot)).map(|(k, _)| k.clone())
    }
}
