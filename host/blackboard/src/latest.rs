//! Each tenant's newest revision as this process knows it, for the watchers
//! of a backend that other processes or hosts write too: raised by this
//! process's writes at once, and by the others' when the backend hears of them.

use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::watch;

/// The newest revision of every tenant watched here.
#[derive(Default)]
pub(crate) struct Latest(Mutex<HashMap<String, watch::Sender<u64>>>);

impl Latest {
    /// `tenant`'s sender, made at revision 0 when new.
    pub(crate) fn sender(&self, tenant: &str) -> watch::Sender<u64> {
        self.0.lock().entry(tenant.to_string()).or_insert_with(|| watch::Sender::new(0)).clone()
    }

    /// Raises `tenant`'s revision to `revision`; watchers wake only when it grew.
    pub(crate) fn told(&self, tenant: &str, revision: u64) {
        if let Some(sender) = self.0.lock().get(tenant) {
            raise(sender, revision);
        }
    }

    /// The tenants watched here.
    pub(crate) fn tenants(&self) -> Vec<String> {
        self.0.lock().keys().cloned().collect()
    }

    /// Wakes every watcher to look again (writes may have been missed).
    pub(crate) fn wake_all(&self) {
        self.0.lock().values().for_each(|sender| sender.send_modify(|_| {}));
    }
}

/// Raises `sender` to `revision`, waking its receivers only when it grew.
pub(crate) fn raise(sender: &watch::Sender<u64>, revision: u64) {
    sender.send_if_modified(|seen| {
        let newer = revision > *seen;
        *seen = (*seen).max(revision);
        newer
    });
}
