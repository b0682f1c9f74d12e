//! Watching the plugins folder: after file changes settle, the host brings
//! its plugins up to date ([`Runtime::sync`]).
//!
//! Only the folders that matter are watched, each without recursion: the
//! plugins folder (plugins added or removed), each plugin's folder (its
//! manifest), the folder of each component (which may be a build's output
//! folder elsewhere, e.g. `plugins/target/wasm32-wasip2/release`), and
//! `host.data` (approvals). A recursive watch of a build tree would cost an
//! inotify watch per folder of it, thousands for a cargo target folder.
//!
//! Only changes count, not reads: a sync opens and reads the manifests and
//! folders it watches, and when those reads counted, each sync set off the
//! next, one every debounce period forever (18 a second on a busy host, a
//! manifest parsed each time), though no file had changed.

use super::{Reload, Runtime};
use notify::EventKind;
use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};

/// A running watch; dropping it stops watching.
pub struct Watch {
    task: tokio::task::JoinHandle<()>,
    events: broadcast::Sender<(String, Reload)>,
    syncs: Arc<AtomicU64>,
}

impl Watch {
    /// What each reload did, as it happens.
    pub fn events(&self) -> broadcast::Receiver<(String, Reload)> {
        self.events.subscribe()
    }

    /// How many times the plugins were brought up to date, the first
    /// included.
    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type FsWatcher = Debouncer<notify::RecommendedWatcher, RecommendedCache>;

impl Runtime {
    /// Loads every plugin of the plugins folder, then keeps them up to date
    /// as files change, `debounce` after the last change of a burst. Needs a
    /// tokio runtime.
    pub async fn watch(&self, debounce: Duration) -> Result<Watch, String> {
        let dir = self.inner.registry.dir().to_path_buf();
        if !dir.is_dir() {
            return Err(format!("the plugins folder {} does not exist", dir.display()));
        }
        let changed = Arc::new(Notify::new());
        let signal = changed.clone();
        let debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
            let changed = match &result {
                Ok(events) => events.iter().any(|e| !matches!(e.kind, EventKind::Access(_))),
                Err(errors) => {
                    for e in errors {
                        tracing::warn!("watching the plugins folder: {e}");
                    }
                    true
                }
            };
            if changed {
                signal.notify_one();
            }
        })
        .map_err(|e| format!("cannot watch {}: {e}", dir.display()))?;
        let watcher = Arc::new(Mutex::new((debouncer, BTreeSet::new())));
        // An approval given through another host of a shared book.
        let approved = changed.clone();
        self.inner.book.on_approval(move || approved.notify_one());
        let (events, _) = broadcast::channel(256);
        // The first sync happens before returning, so the caller serves a
        // complete set of plugins from the start.
        let first = self.sync().await;
        let syncs = Arc::new(AtomicU64::new(1));
        watch_folders(self, &watcher);
        publish(&events, first);
        let (runtime, sender, counted) = (self.clone(), events.clone(), syncs.clone());
        let task = tokio::spawn(async move {
            loop {
                changed.notified().await;
                let reloads = runtime.sync().await;
                counted.fetch_add(1, Ordering::Relaxed);
                watch_folders(&runtime, &watcher);
                publish(&sender, reloads);
            }
        });
        Ok(Watch { task, events, syncs })
    }

    /// The folders whose changes matter now.
    fn folders_to_watch(&self) -> BTreeSet<PathBuf> {
        let mut folders = BTreeSet::new();
        folders.insert(self.inner.registry.dir().to_path_buf());
        // Each plugin's folder (its manifest) and its component's folder,
        // which `sync` recorded even for a component not built yet.
        for file in self.plugin_files() {
            folders.extend(file.parent().map(PathBuf::from));
        }
        if let Some(file) = self.inner.book.approvals_file() {
            folders.extend(file.parent().map(PathBuf::from));
        }
        folders.into_iter().filter(|f| f.is_dir()).collect()
    }
}

fn watch_folders(runtime: &Runtime, watcher: &Mutex<(FsWatcher, BTreeSet<PathBuf>)>) {
    let wanted = runtime.folders_to_watch();
    let mut guard = watcher.lock();
    let (debouncer, watched) = &mut *guard;
    for gone in watched.difference(&wanted).cloned().collect::<Vec<_>>() {
        let _ = debouncer.unwatch(&gone);
        watched.remove(&gone);
    }
    for folder in wanted {
        if watched.contains(&folder) {
            continue;
        }
        match debouncer.watch(&folder, RecursiveMode::NonRecursive) {
            Ok(()) => {
                watched.insert(folder);
            }
            Err(e) => tracing::warn!(folder = %folder.display(), "cannot watch: {e}"),
        }
    }
}

fn publish(events: &broadcast::Sender<(String, Reload)>, reloads: Vec<(String, Reload)>) {
    for event in reloads {
        // Nobody listening is fine.
        let _ = events.send(event);
    }
}
