//! `LISTEN`: one connection per channel, outside the pool, whose
//! notifications are handed to a callback; reopened after a failure.

use crate::Postgres;
use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::AsyncMessage;

/// The first wait before reopening a lost connection; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Postgres {
    /// Calls `on(Some(payload))` for each notification on `channel` (an SQL
    /// identifier), and `on(None)` each time the listening connection opens:
    /// notifications sent while it was closed are lost, so a listener then
    /// reads what it follows afresh. Runs until the pool is dropped.
    pub fn listen(&self, channel: &'static str, on: impl Fn(Option<&str>) + Send + Sync + 'static) {
        let (config, tls) = (self.config().clone(), self.inner.tls.clone());
        let shown = self.shown().to_string();
        self.spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                match listen_once(&config, &tls, channel, &on).await {
                    Ok(()) => backoff = FIRST_BACKOFF,
                    Err(e) => {
                        tracing::warn!(channel, at = %shown, "PostgreSQL: listening stopped, reopening in {backoff:?}: {e}");
                    }
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}

/// Listens on one connection until it ends; `Ok` when it had been listening.
async fn listen_once(
    config: &tokio_postgres::Config,
    tls: &crate::tls::Tls,
    channel: &str,
    on: &(impl Fn(Option<&str>) + Send + Sync),
) -> Result<(), String> {
    let (client, mut connection) = config.connect(tls.clone()).await.map_err(|e| crate::describe(&e))?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_string()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(crate::describe(&e)),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {channel}")).await.map_err(|e| crate::describe(&e))?;
    on(None);
    while let Some(payload) = rx.recv().await {
        on(Some(&payload));
    }
    drop(client);
    match driver.await {
        Ok(Ok(())) => Err("the connection closed".into()),
        Ok(Err(e)) => Err(e),
        Err(e) => Err(format!("its task failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::{describe, testing};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_notification_committed_on_one_connection_reaches_a_listener_and_a_rolled_back_one_never() {
        let Some(pg) = testing::database("listen") else { return };
        let (tx, rx) = mpsc::channel::<Option<String>>();
        let tx = parking_lot::Mutex::new(tx);
        pg.listen("paddock_test", move |payload| {
            let _ = tx.lock().send(payload.map(str::to_string));
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), None, "told it is listening");
        pg.run(|mut c| async move {
            let tx = c.transaction().await.map_err(|e| describe(&e))?;
            tx.execute("SELECT pg_notify('paddock_test', 'lost')", &[]).await.map_err(|e| describe(&e))?;
            tx.rollback().await.map_err(|e| describe(&e))?;
            c.execute("SELECT pg_notify('paddock_test', 'kept')", &[]).await.map_err(|e| describe(&e))?;
            Ok(())
        })
        .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap().as_deref(), Some("kept"));
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err(), "nothing else arrived");
    }
}
