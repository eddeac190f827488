//! HTTPS serving for `http.tls` (rustls): certificate and key, mutual TLS
//! with `clientcas`, `minimumtls` and `ciphersuites`.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate found", path.display()));
    }
    Ok(certs)
}

/// The crypto provider, limited to the TLS 1.2 suites `names` lists (IANA
/// names, as Go and Distribution write them); TLS 1.3 suites stay.
fn provider(names: Option<&[String]>) -> Result<rustls::crypto::CryptoProvider, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let Some(names) = names else {
        return Ok(provider);
    };
    for n in names {
        let known = provider
            .cipher_suites
            .iter()
            .any(|s| s.suite().as_str() == Some(n.as_str()));
        if !known {
            return Err(format!(
                "http.tls.ciphersuites: {n:?} is not a cipher suite disco supports (supported: {})",
                provider
                    .cipher_suites
                    .iter()
                    .filter_map(|s| s.suite().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    provider.cipher_suites.retain(|s| {
        s.version() == &rustls::version::TLS13
            || names.iter().any(|n| s.suite().as_str() == Some(n.as_str()))
    });
    Ok(provider)
}

/// Builds the acceptor for `http.tls`: certificate and key, optional
/// client CAs (mutual TLS: a client without a certificate chained to one of
/// them is refused in the handshake), minimum version and cipher suites.
pub fn acceptor(tls: &TlsConfig) -> Result<TlsAcceptor, String> {
    let (Some(cert), Some(key)) = (&tls.certificate, &tls.key) else {
        return Err("http.tls needs certificate and key".into());
    };
    let certs = read_certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let provider = Arc::new(provider(tls.ciphersuites.as_deref())?);
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        if tls.minimumtls.as_deref() == Some("tls1.3") {
            &[&rustls::version::TLS13]
        } else {
            rustls::DEFAULT_VERSIONS
        };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let builder = match &tls.clientcas {
        Some(cas) => {
            let mut roots = rustls::RootCertStore::empty();
            for path in cas {
                for c in read_certs(path)? {
                    roots
                        .add(c)
                        .map_err(|e| format!("http.tls.clientcas {}: {e}", path.display()))?;
                }
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("http.tls.clientcas: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts TLS connections until `shutdown`, then waits for open
/// connections to finish.
pub async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection closed with error");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}
