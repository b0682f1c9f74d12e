//! TLS to the database: rustls (the ring provider, as everywhere in
//! Paddock), the server's certificate checked against the system's
//! authorities and those of `store.ca-file`.
//!
//! Whether TLS is used is the URL's `sslmode`, as tokio-postgres reads it:
//! `disable` never, `prefer` (the default) when the server offers it,
//! `require` always. Unlike libpq's `require`, a certificate that does not
//! verify (its authority unknown, or not naming the host) is always refused:
//! there is no mode that trusts any certificate.

use std::path::Path;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What every connection of a pool (and its listener) opens TLS with.
pub(crate) type Tls = MakeRustlsConnect;

/// The connector trusting the system's authorities and `ca_file`'s.
pub(crate) fn connector(ca_file: Option<&Path>) -> Result<Tls, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for e in &system.errors {
        tracing::debug!("PostgreSQL TLS: a system certificate could not be read: {e}");
    }
    roots.add_parsable_certificates(system.certs);
    if let Some(file) = ca_file {
        let fail = |e: String| format!("store.ca-file: {}: {e}", file.display());
        let certs = CertificateDer::pem_file_iter(file)
            .map_err(|e| fail(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?;
        if certs.is_empty() {
            return Err(fail("no PEM certificate in it".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| fail(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("PostgreSQL TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use crate::{Postgres, Settings, testing};

    fn ssl_in_use(pg: &Postgres) -> bool {
        pg.run(|c| async move {
            let row = c
                .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
                .await
                .map_err(|e| crate::describe(&e))?;
            Ok(row.get(0))
        })
        .unwrap()
    }

    #[test]
    fn a_server_certificate_from_the_ca_file_is_trusted_and_any_other_refused() {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (cert, key) = (made.cert.pem(), made.signing_key.serialize_pem());
        let files: [(&str, &[u8]); 2] = [("server.crt", cert.as_bytes()), ("server.key", key.as_bytes())];
        let options = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key";
        let Some((url, _server)) = testing::cluster_with(options, &files) else { return };
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, &cert).unwrap();
        let at = |mode: &str, ca_file: Option<&std::path::Path>| Settings {
            pool: 2,
            ca_file: ca_file.map(Into::into),
            ..Settings::new(&format!("{url}?sslmode={mode}"))
        };

        let pg = Postgres::connect(&at("require", Some(&ca))).unwrap();
        assert!(ssl_in_use(&pg), "sslmode=require with the server's authority: TLS");
        // The listening connection is TLS too, and hears.
        let (tx, heard) = std::sync::mpsc::channel();
        let tx = parking_lot::Mutex::new(tx);
        pg.listen("tls_test", move |note| {
            let _ = tx.lock().send(note.map(str::to_string));
        });
        assert_eq!(heard.recv_timeout(std::time::Duration::from_secs(10)), Ok(None), "the listener opened");
        pg.run(|c| async move { c.batch_execute("NOTIFY tls_test, 'hi'").await.map_err(|e| crate::describe(&e)) })
            .unwrap();
        assert_eq!(heard.recv_timeout(std::time::Duration::from_secs(10)), Ok(Some("hi".to_string())));

        let refused = Postgres::connect(&at("require", None)).map(drop).unwrap_err();
        assert!(refused.contains("invalid peer certificate: UnknownIssuer"), "{refused}");
        let plain = Postgres::connect(&at("disable", None)).unwrap();
        assert!(!ssl_in_use(&plain), "sslmode=disable: no TLS");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("empty.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let Err(refused) = super::connector(Some(&file)) else { panic!("an empty CA file was accepted") };
        assert_eq!(refused, format!("store.ca-file: {}: no PEM certificate in it", file.display()));
    }
}
