//! Doorbells: what a store shared by hosts rings when another host writes
//! something a waiter here is waiting for — an answer to a question
//! (`answer ID`), a cancel of a run (`cancel RUN`), a run's new events
//! (`events RUN`). A waiter holds a [`Bell`] for its key and takes its
//! [`Bell::next`] ring before it reads the store, so a ring between its read
//! and its wait still wakes it.
//!
//! Only keys someone waits on are kept: a bell is forgotten with its last
//! waiter, so rings for keys no one here follows cost a map lookup.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// The bells of one store, keyed by what is waited for.
#[derive(Default)]
pub struct Doorbells {
    bells: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
}

impl Doorbells {
    /// A bell for `key`, rung by [`Doorbells::ring`] until it is dropped.
    pub fn bell(self: &Arc<Self>, key: String) -> Bell {
        let notify = {
            let mut bells = self.bells.lock();
            let (notify, waiters) = bells.entry(key.clone()).or_default();
            *waiters += 1;
            notify.clone()
        };
        Bell { bells: self.clone(), key, notify }
    }

    /// Wakes every waiter on `key`.
    pub fn ring(&self, key: &str) {
        if let Some((notify, _)) = self.bells.lock().get(key) {
            notify.notify_waiters();
        }
    }

    /// Wakes every waiter: rings may have been missed (the store's
    /// listening connection was reopened), so each reads afresh.
    pub fn ring_all(&self) {
        for (notify, _) in self.bells.lock().values() {
            notify.notify_waiters();
        }
    }

    /// How many keys have a waiter.
    #[cfg(test)]
    fn keys(&self) -> usize {
        self.bells.lock().len()
    }
}

/// A waiter's hold on one key's bell.
pub struct Bell {
    bells: Arc<Doorbells>,
    key: String,
    notify: Arc<Notify>,
}

impl Bell {
    /// The next ring: taken before the store is read and awaited after, it
    /// completes for a ring in between.
    pub fn next(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

/// Waits for `next` (a [`Bell::next`]), or forever when there is no bell.
pub async fn rung(next: Option<tokio::sync::futures::Notified<'_>>) {
    match next {
        Some(next) => next.await,
        None => std::future::pending().await,
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        let mut bells = self.bells.bells.lock();
        if let Some((_, waiters)) = bells.get_mut(&self.key) {
            *waiters -= 1;
            if *waiters == 0 {
                bells.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_ring_before_the_wait_still_wakes_and_a_bell_is_forgotten_with_its_last_waiter() {
        let bells = Arc::new(Doorbells::default());
        let bell = bells.bell("answer ap-1".into());
        let other = bells.bell("answer ap-1".into());
        let next = bell.next();
        bells.ring("answer ap-1");
        tokio::time::timeout(Duration::from_secs(5), next).await.expect("a ring after it was taken wakes it");
        let next = bell.next();
        bells.ring("answer ap-2");
        assert!(tokio::time::timeout(Duration::from_millis(50), next).await.is_err(), "another key's ring");
        assert_eq!(bells.keys(), 1);
        drop((bell, other));
        assert_eq!(bells.keys(), 0);
    }

    #[tokio::test]
    async fn every_waiter_of_a_key_wakes_on_one_ring() {
        let bells = Arc::new(Doorbells::default());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let bell = bells.bell("events r".into());
                tokio::spawn(async move { bell.next().await })
            })
            .collect();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        bells.ring("events r");
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter).await.expect("woken").unwrap();
        }
    }
}
