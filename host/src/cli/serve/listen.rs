//! The accept loop of `paddock serve`: HTTP/1.1 over TCP or TLS, under
//! limits a hostile client cannot talk its way past.
//!
//! - **Connections**: at most `serve.max-connections` open at once, and
//!   `serve.max-connections-per-source` from one address; past either a new
//!   connection is answered `503` (plain HTTP) or closed (TLS) at once, so it
//!   holds no file descriptor and waits in no queue.
//! - **Slow clients**: a TLS handshake and each request's head must arrive
//!   within `serve.header-timeout` of the connection opening or of the last
//!   answer ending, so a half-sent head or an idle keep-alive connection is
//!   closed then; a head over `serve.max-header-bytes` is refused.
//! - **TLS** (`serve.tls`): rustls with the ring provider; the certificate and
//!   key files are re-read when they change, and a bad pair keeps the old one.
//!
//! Each connection is its own task, on a front thread ([`super::fronts`]),
//! so one stalled connection delays no other.

use super::fronts::Fronts;
use crate::config::{ConnectionLimits, TlsFiles};
use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How often the certificate files are checked for a change.
const TLS_POLL: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and lets the requests in flight finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    fronts: &Fronts,
    app: Router,
    tls: Option<Tls>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let slots = Slots::new(limits);
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes)
        .max_headers(100);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = slots.take(peer.ip()) else {
            refuse(&stream, tls.is_some());
            continue;
        };
        let service = app.clone().map_request(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let service = TowerToHyperService::new(service);
        let (http, watcher, tls) = (http.clone(), graceful.watcher(), tls.as_ref().map(|t| t.acceptor.clone()));
        fronts.spawn(stream, move |stream| async move {
            let _slot = slot;
            let Some(acceptor) = tls else {
                let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                return;
            };
            // The handshake is held to the same deadline as a request's head.
            match tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = watcher.watch(http.serve_connection(TokioIo::new(stream), service)).await;
                }
                Ok(Err(e)) => tracing::debug!(source = %peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(source = %peer, "TLS handshake timed out"),
            }
        });
    }
    drop(listener);
    let open = graceful.count();
    if open > 0 {
        eprintln!(
            "stopping: no new connections; {open} open ones get up to {} to finish (a second signal stops at once)",
            crate::config::Span(drain)
        );
    }
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        eprintln!("stopping: connections still open after {}; closing them", crate::config::Span(drain));
    }
}

/// A connection over a limit, on a plain-HTTP port, hears why before it is
/// closed; the write never waits.
fn refuse(stream: &TcpStream, tls: bool) {
    if !tls {
        let answer =
            "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n";
        let _ = stream.try_write(answer.as_bytes());
    }
}

/// The open connections, in all and by source address.
#[derive(Clone)]
struct Slots {
    all: Arc<Semaphore>,
    by_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
    per_source: usize,
}

/// One open connection's place, given back when it closes.
struct Slot {
    _permit: OwnedSemaphorePermit,
    source: IpAddr,
    by_source: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Slots {
    fn new(limits: ConnectionLimits) -> Self {
        Slots {
            all: Arc::new(Semaphore::new(limits.max_connections)),
            by_source: Arc::default(),
            per_source: limits.max_per_source,
        }
    }

    fn take(&self, source: IpAddr) -> Option<Slot> {
        let mut by_source = self.by_source.lock();
        let open = by_source.entry(source).or_insert(0);
        if *open >= self.per_source {
            tracing::warn!(source = %source, limit = self.per_source, "serve.max-connections-per-source reached; closing a new connection");
            return None;
        }
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            tracing::warn!(source = %source, "serve.max-connections reached; closing a new connection");
            if *open == 0 {
                by_source.remove(&source);
            }
            return None;
        };
        *open += 1;
        Some(Slot { _permit: permit, source, by_source: self.by_source.clone() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_source = self.by_source.lock();
        if let Some(open) = by_source.get_mut(&self.source) {
            *open -= 1;
            if *open == 0 {
                by_source.remove(&self.source);
            }
        }
    }
}

/// The TLS side: an acceptor whose certificate can be swapped while it runs.
pub struct Tls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: TlsFiles,
}

/// The certificate served now.
#[derive(Debug)]
struct Current(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

impl Tls {
    /// Reads `files` and makes the acceptor; the error names the file.
    pub fn load(files: &TlsFiles) -> Result<Tls, String> {
        let current = Arc::new(Current(ArcSwap::from_pointee(certified_key(files)?)));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("serve.tls: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), current, files: files.clone() })
    }

    /// Re-reads the files whenever either changes; a pair that does not load
    /// leaves the one serving in place, and says why.
    pub fn spawn_reload(&self) -> tokio::task::JoinHandle<()> {
        let (current, files) = (self.current.clone(), self.files.clone());
        tokio::spawn(async move {
            let mut seen = stamps(&files);
            loop {
                tokio::time::sleep(TLS_POLL).await;
                let now = stamps(&files);
                if now == seen {
                    continue;
                }
                seen = now;
                match certified_key(&files) {
                    Ok(key) => {
                        current.0.store(Arc::new(key));
                        eprintln!("reloaded the TLS certificate from {}", files.cert.display());
                    }
                    Err(e) => eprintln!("error: {e} (the certificate serving is kept)"),
                }
            }
        })
    }
}

fn stamps(files: &TlsFiles) -> [Option<SystemTime>; 2] {
    let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    [modified(&files.cert), modified(&files.key)]
}

/// The chain and key of `files`, checked to belong together.
fn certified_key(files: &TlsFiles) -> Result<CertifiedKey, String> {
    let (cert, key) = (&files.cert, &files.key);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("serve.tls.cert: {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("serve.tls.cert: {}: no PEM certificate in it", cert.display()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("serve.tls.key: {}: {e}", key.display()))?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&private)
        .map_err(|e| format!("serve.tls.key: {}: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        format!("serve.tls: the key {} does not belong to the certificate {}: {e}", key.display(), cert.display())
    })?;
    Ok(certified)
}

/// `https` with TLS, else `http`: how `serving on …` names the address.
pub fn scheme(tls: &Option<Tls>) -> &'static str {
    if tls.is_some() { "https" } else { "http" }
}
