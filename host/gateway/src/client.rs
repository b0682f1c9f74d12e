//! The HTTP clients provider calls go through: one for every thread but the
//! front threads of `paddock serve`, and one for each of those.

use super::Inner;
use std::time::Duration;

/// Installs rustls' ring provider once per process (reqwest is built without
/// a default): call it before building any reqwest client.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client every provider call goes through. A provider's redirect is its
/// answer, never followed: reqwest drops only `authorization` when a redirect
/// leaves the host, so Anthropic's `x-api-key` and the others would go
/// wherever a provider pointed.
pub(super) fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("paddock/", env!("CARGO_PKG_VERSION")))
        .build()
}

impl Inner {
    /// The client for a call made on this thread. A pooled connection is
    /// driven by a task on the runtime that opened it, so on a front thread
    /// ([`paddock_core::front`]) a shared pool would hand the call's bytes to
    /// another thread's task, and wait for that thread whenever it is busy:
    /// each front thread has a client of its own.
    pub(super) fn client(&self) -> &reqwest::Client {
        if paddock_core::front::index().is_none() {
            return &self.client;
        }
        // Built once a thread with the settings the shared one was built
        // with; should it fail, the shared client serves.
        self.fronts.get_or_try(http_client).unwrap_or(&self.client)
    }
}

#[cfg(test)]
mod tests {
    use crate::{Gateway, GatewaySettings};
    use std::ptr::eq;

    #[test]
    fn a_front_threads_client_is_built_when_the_thread_is_prepared_and_kept_for_its_calls() {
        super::install_crypto();
        let gateway = Gateway::new(&GatewaySettings::default()).unwrap();
        let (before, used_is_prepared, prepared_is_shared, elsewhere) = std::thread::scope(|s| {
            s.spawn(|| {
                paddock_core::front::enter(0, None);
                let before = gateway.inner.fronts.get().is_some();
                gateway.prepare_thread();
                let prepared = gateway.inner.fronts.get().expect("built when prepared");
                let used = gateway.inner.client();
                let elsewhere = s.spawn(|| {
                    gateway.prepare_thread();
                    gateway.inner.fronts.get().is_some()
                });
                (before, eq(used, prepared), eq(prepared, &gateway.inner.client), elsewhere.join().unwrap())
            })
            .join()
            .unwrap()
        });
        assert!(!before, "no client before the thread is prepared");
        assert!(used_is_prepared, "its calls use the client built when it was prepared");
        assert!(!prepared_is_shared, "a front thread's own, not the shared one");
        assert!(!elsewhere, "a thread that is not a front builds none: it uses the shared client");
    }
}
