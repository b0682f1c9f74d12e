//! `paddock:agent/settings`: the operator's settings of the calling agent
//! (`[agents.NAME.settings]` in `paddock.toml`), and no one else's.
//!
//! Every answer is journaled, so a replay sees the settings the run saw even
//! after the operator changed them.

use super::wit::settings::Host;
use super::{CallContext, Capability, Lent};
use paddock_journal as journal;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::HasData;

/// Per-invocation state of the `settings` interface.
pub struct SettingsCtx {
    call: Arc<CallContext>,
    settings: Arc<BTreeMap<String, String>>,
}

impl Host for SettingsCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        self.call.check_size("settings key", key.len(), self.call.caps.key_bytes, "limits.max-key-bytes")?;
        let settings = &self.settings;
        journal::through_sync(self.call.journal.as_deref(), "settings.get", (key,), |(key,)| {
            Ok(settings.get(&key).cloned())
        })
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        let settings = &self.settings;
        journal::through_sync(self.call.journal.as_deref(), "settings.get-all", (), |()| {
            Ok(settings.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        })
    }
}

impl Capability for SettingsCtx {
    const INTERFACE: &'static str = "settings";

    fn new(call: &Arc<CallContext>, lent: &Lent) -> Self {
        SettingsCtx { call: call.clone(), settings: lent.policy.settings.clone() }
    }

    fn add_to_linker<T: Send + 'static>(
        linker: &mut wasmtime::component::Linker<T>,
        get: fn(&mut T) -> &mut Self,
    ) -> wasmtime::Result<()> {
        super::wit::settings::add_to_linker::<T, Settings>(linker, get)
    }
}

/// [`HasData`] marker for the `settings` interface.
pub struct Settings;

impl HasData for Settings {
    type Data<'a> = &'a mut SettingsCtx;
}
