//! `[serve]`: how `paddock serve` listens — the address, who may call (API
//! keys, or none on loopback), TLS, and the limits on connections that hold
//! against clients who open many or send slowly.

use paddock_core::{ByteSize, Span};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default address of `paddock serve`: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// How many requests each tenant and each API key may make: a second, and
/// in flight at once (`serve.requests-per-key`, `requests-per-tenant`,
/// `concurrent-per-key`, `concurrent-per-tenant`; 0: no limit). Past any,
/// the request is answered 429 and the others of that tenant or key wait
/// for nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests one API key may make a second (bursts of as many).
    pub per_key_rate: u32,
    /// Requests one tenant may make a second, all its keys together.
    pub per_tenant_rate: u32,
    /// Requests of one API key being answered at once.
    pub per_key_concurrent: u32,
    /// Requests of one tenant being answered at once.
    pub per_tenant_concurrent: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits { per_key_rate: 1000, per_tenant_rate: 2000, per_key_concurrent: 128, per_tenant_concurrent: 256 }
    }
}

/// How `paddock serve` listens and answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeSettings {
    /// Where it listens.
    pub listen: SocketAddr,
    /// How it knows who calls.
    pub auth: ServeAuth,
    /// Its certificate and key, when it speaks TLS.
    pub tls: Option<TlsFiles>,
    /// Limits on connections.
    pub connections: ConnectionLimits,
    /// Requests per tenant and per key, a second and at once.
    pub requests: RequestLimits,
    /// How long requests in flight may go on after a stop signal.
    pub drain: Duration,
    /// How long plugin file changes settle before a reload.
    pub debounce: Duration,
    /// The folder of flow specs it starts by name.
    pub flows: PathBuf,
    /// The flows of that folder MCP clients may call as tools (`serve.mcp-flows`).
    pub mcp_flows: Vec<String>,
    /// The threads that serve connections, each with a runtime of its own
    /// (`serve.threads`): `None` for one a core; `Some(0)` serves them on
    /// the host's shared runtime.
    pub threads: Option<usize>,
}

/// The most `serve.threads` may be.
pub const MAX_SERVE_THREADS: usize = 1024;

/// How `paddock serve` knows who calls (`serve.auth`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServeAuth {
    /// Every request carries an API key (`paddock keys create`); the tenant
    /// and role come from it.
    #[default]
    Keys,
    /// No authentication, for development: loopback addresses only, the
    /// `x-paddock-tenant` header picks the tenant, every caller is an admin.
    None,
}

/// PEM files of the certificate chain and its private key (`serve.tls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Limits on the connections of `paddock serve`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once; past it new ones are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one source address.
    pub max_per_source: usize,
    /// The most a connection may take to send a request's head (and its TLS
    /// handshake), counted from when it opened or its last answer ended: so
    /// also how long an idle keep-alive connection stays open.
    pub header_timeout: Duration,
    /// The most bytes a request's head may take.
    pub max_header_bytes: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 512,
            max_per_source: 64,
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// `[serve]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ServeSection {
    listen: Option<String>,
    auth: Option<String>,
    tls: Option<TlsSection>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    header_timeout: Option<Span>,
    max_header_bytes: Option<ByteSize>,
    requests_per_key: Option<u32>,
    requests_per_tenant: Option<u32>,
    concurrent_per_key: Option<u32>,
    concurrent_per_tenant: Option<u32>,
    drain: Option<Span>,
    debounce: Option<Span>,
    flows: Option<PathBuf>,
    #[serde(default)]
    mcp_flows: Vec<String>,
    threads: Option<usize>,
}

/// `serve.tls = { cert = "...", key = "..." }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
}

/// A listen address: an IP address and port, or `localhost:PORT` (which is
/// 127.0.0.1, whatever a resolver would answer first).
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.parse().map_err(|_| format!("`{text}` is not an address like \"127.0.0.1:7700\" or \"localhost:7700\""))
}

/// Validates `[serve]`; relative paths are against `base`.
pub(super) fn serve_settings(serve: ServeSection, base: &Path) -> Result<ServeSettings, String> {
    let listen = parse_listen(serve.listen.as_deref().unwrap_or(DEFAULT_LISTEN))
        .map_err(|why| format!("serve.listen: {why}"))?;
    let auth = match serve.auth.as_deref().unwrap_or("keys") {
        "keys" => ServeAuth::Keys,
        "none" => ServeAuth::None,
        other => return Err(format!("serve.auth: `{other}` is not a mode; use \"keys\" or \"none\"")),
    };
    check_listen(&listen, auth).map_err(|why| format!("serve.listen: {why}"))?;
    let debounce = serve.debounce.map_or(Duration::from_millis(50), |s| s.0);
    if debounce > Duration::from_secs(60) {
        return Err(format!("serve.debounce ({}) must be at most 60s", Span(debounce)));
    }
    let connections = connection_limits(&serve)?;
    let drain = serve.drain.map_or(Duration::from_secs(30), |s| s.0);
    if drain > Duration::from_secs(3600) {
        return Err(format!("serve.drain ({}) must be at most 1h", Span(drain)));
    }
    let tls = serve.tls.map(|t| TlsFiles { cert: base.join(t.cert), key: base.join(t.key) });
    for (i, name) in serve.mcp_flows.iter().enumerate() {
        // A flow is `<serve.flows>/<name>.toml`: a name, never a path.
        let named = (1..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !named {
            return Err(format!(
                "serve.mcp-flows[{i}]: `{name}` is not a flow name (1 to 64 of a-z, 0-9, '-' and '_', the file name without .toml)"
            ));
        }
    }
    if let Some(threads) = serve.threads
        && threads > MAX_SERVE_THREADS
    {
        return Err(format!(
            "serve.threads ({threads}) must be 0 to {MAX_SERVE_THREADS} (unset: one a core; 0: the host's shared threads)"
        ));
    }
    Ok(ServeSettings {
        listen,
        auth,
        tls,
        connections,
        requests: RequestLimits {
            per_key_rate: serve.requests_per_key.unwrap_or(RequestLimits::default().per_key_rate),
            per_tenant_rate: serve.requests_per_tenant.unwrap_or(RequestLimits::default().per_tenant_rate),
            per_key_concurrent: serve.concurrent_per_key.unwrap_or(RequestLimits::default().per_key_concurrent),
            per_tenant_concurrent: serve
                .concurrent_per_tenant
                .unwrap_or(RequestLimits::default().per_tenant_concurrent),
        },
        drain,
        debounce,
        flows: base.join(serve.flows.unwrap_or_else(|| PathBuf::from("flows"))),
        mcp_flows: serve.mcp_flows,
        threads: serve.threads,
    })
}

fn connection_limits(serve: &ServeSection) -> Result<ConnectionLimits, String> {
    let default = ConnectionLimits::default();
    let max_connections = serve.max_connections.unwrap_or(default.max_connections);
    if !(1..=1_000_000).contains(&max_connections) {
        return Err(format!("serve.max-connections ({max_connections}) must be 1 to 1000000"));
    }
    let max_per_source = serve.max_connections_per_source.unwrap_or(default.max_per_source.min(max_connections));
    if !(1..=max_connections).contains(&max_per_source) {
        return Err(format!(
            "serve.max-connections-per-source ({max_per_source}) must be 1 to serve.max-connections ({max_connections})"
        ));
    }
    let header_timeout = serve.header_timeout.map_or(default.header_timeout, |s| s.0);
    if !(Duration::from_millis(100)..=Duration::from_secs(300)).contains(&header_timeout) {
        return Err(format!("serve.header-timeout ({}) must be 100ms to 5m", Span(header_timeout)));
    }
    let max_header_bytes = serve.max_header_bytes.map_or(default.max_header_bytes as u64, |b| b.0);
    // hyper reads a head into a buffer of at least 8 KiB.
    if !(8 * 1024..=1024 * 1024).contains(&max_header_bytes) {
        return Err(format!("serve.max-header-bytes ({}) must be 8 KiB to 1 MiB", ByteSize(max_header_bytes)));
    }
    Ok(ConnectionLimits {
        max_connections,
        max_per_source,
        header_timeout,
        max_header_bytes: max_header_bytes as usize,
    })
}

/// A listen address other hosts can reach, refused by [`check_listen`]
/// without authentication.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{address} is not a loopback address, and serve.auth = \"none\" lets anyone who reaches it act as any tenant; listen on 127.0.0.1 or ::1, or use API keys (serve.auth = \"keys\", the default)"
)]
pub struct NotLoopback {
    /// The address refused.
    pub address: SocketAddr,
}

/// With API keys any address will do; without them (`auth` = none), only a
/// loopback one: anyone who reaches it may run any agent for any tenant.
pub fn check_listen(address: &SocketAddr, auth: ServeAuth) -> Result<(), NotLoopback> {
    if auth == ServeAuth::Keys || address.ip().is_loopback() {
        return Ok(());
    }
    Err(NotLoopback { address: *address })
}

#[cfg(test)]
mod tests {
    use super::{ConnectionLimits, ServeAuth, parse_listen};
    use crate::Settings;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    fn parse(text: &str) -> Result<Settings, String> {
        Settings::parse(text, Path::new("conf/paddock.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn serve_listens_on_loopback_with_keys_by_default() {
        let s = parse("").unwrap();
        assert_eq!(s.serve.listen.to_string(), "127.0.0.1:7700");
        assert_eq!(
            (s.serve.auth, s.serve.tls, s.serve.connections),
            (ServeAuth::Keys, None, ConnectionLimits::default())
        );
        assert_eq!(s.serve.flows, Path::new("conf/flows"));
        assert!(s.serve.mcp_flows.is_empty(), "no flow is a tool unless named");
    }

    #[test]
    fn mcp_flows_are_flow_names_and_a_path_is_refused_by_index() {
        let s = parse("[serve]\nmcp-flows = [\"review\", \"nightly_2\"]\n").unwrap();
        assert_eq!(s.serve.mcp_flows, ["review", "nightly_2"]);
        let err = parse("[serve]\nmcp-flows = [\"review\", \"../etc\"]\n").unwrap_err();
        assert_eq!(
            err,
            "conf/paddock.toml: serve.mcp-flows[1]: `../etc` is not a flow name (1 to 64 of a-z, 0-9, '-' and '_', the file name without .toml)"
        );
    }

    #[test]
    fn localhost_listens_on_127_0_0_1_and_a_name_that_is_no_address_is_refused_naming_both_forms() {
        assert_eq!(parse("[serve]\nlisten = \"localhost:7790\"\n").unwrap().serve.listen.to_string(), "127.0.0.1:7790");
        assert_eq!(parse_listen("[::1]:0"), Ok(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0))));
        assert_eq!(
            parse("[serve]\nlisten = \"example.com:80\"\n").unwrap_err().to_string(),
            "conf/paddock.toml: serve.listen: `example.com:80` is not an address like \"127.0.0.1:7700\" or \"localhost:7700\""
        );
        assert!(parse_listen("localhost:99999").is_err());
    }

    #[test]
    fn without_keys_a_listen_address_other_hosts_can_reach_is_refused() {
        let err = parse("[serve]\nlisten = \"0.0.0.0:7700\"\nauth = \"none\"\n").unwrap_err();
        assert_eq!(
            err,
            "conf/paddock.toml: serve.listen: 0.0.0.0:7700 is not a loopback address, and serve.auth = \"none\" lets anyone who reaches it act as any tenant; listen on 127.0.0.1 or ::1, or use API keys (serve.auth = \"keys\", the default)"
        );
        assert!(parse("[serve]\nlisten = \"[::1]:0\"\nauth = \"none\"\n").is_ok());
        let keyed = parse("[serve]\nlisten = \"0.0.0.0:7700\"\n").unwrap();
        assert_eq!((keyed.serve.listen.to_string(), keyed.serve.auth), ("0.0.0.0:7700".into(), ServeAuth::Keys));
        let err = parse("[serve]\nauth = \"basic\"\n").unwrap_err();
        assert!(err.ends_with("serve.auth: `basic` is not a mode; use \"keys\" or \"none\""), "{err}");
    }

    #[test]
    fn serve_threads_default_to_one_a_core_and_more_than_1024_are_refused_naming_the_key() {
        assert_eq!(parse("").unwrap().serve.threads, None);
        assert_eq!(parse("[serve]\nthreads = 0\n").unwrap().serve.threads, Some(0));
        assert_eq!(parse("[serve]\nthreads = 1024\n").unwrap().serve.threads, Some(1024));
        assert_eq!(
            parse("[serve]\nthreads = 1025\n").unwrap_err(),
            "conf/paddock.toml: serve.threads (1025) must be 0 to 1024 (unset: one a core; 0: the host's shared threads)"
        );
    }

    #[test]
    fn tls_files_and_connection_limits_are_read_and_checked() {
        let s = parse(
            "[serve]\ntls = { cert = \"tls/cert.pem\", key = \"tls/key.pem\" }\nmax-connections = 100\n\
             max-connections-per-source = 10\nheader-timeout = \"2s\"\nmax-header-bytes = \"32KiB\"\n",
        )
        .unwrap();
        let tls = s.serve.tls.unwrap();
        assert_eq!(
            (tls.cert.as_path(), tls.key.as_path()),
            (Path::new("conf/tls/cert.pem"), Path::new("conf/tls/key.pem"))
        );
        let want = ConnectionLimits {
            max_connections: 100,
            max_per_source: 10,
            header_timeout: Duration::from_secs(2),
            max_header_bytes: 32 * 1024,
        };
        assert_eq!(s.serve.connections, want);
        for (text, message) in [
            ("max-connections = 0", "serve.max-connections (0) must be 1 to 1000000"),
            (
                "max-connections = 10\nmax-connections-per-source = 11",
                "serve.max-connections-per-source (11) must be 1 to serve.max-connections (10)",
            ),
            ("header-timeout = \"10m\"", "serve.header-timeout (10m) must be 100ms to 5m"),
            ("max-header-bytes = 1024", "serve.max-header-bytes (1 KiB) must be 8 KiB to 1 MiB"),
        ] {
            let err = parse(&format!("[serve]\n{text}\n")).unwrap_err();
            assert!(err.ends_with(message), "{err}");
        }
        let err = parse("[serve]\ntls = { cert = \"c.pem\" }\n").unwrap_err();
        assert!(err.contains("missing field `key`"), "{err}");
    }
}
