//! Publishing to message brokers: minimal clients for NATS (JetStream when the server has
//! it) and RabbitMQ (AMQP 0-9-1 with publisher confirms). Hand-written rather than
//! async-nats / lapin: a publisher needs a handful of protocol messages, and those crates
//! bring their own TLS stacks and dozens of dependencies (see docs/ARCHITECTURE.md).

pub mod amqp;
pub mod nats;

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A broker connection: plain TCP or TLS over it.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(crate) type Stream = Box<dyn Io>;

/// TLS over `tcp` to `host` (a name or an address), the server's certificate checked
/// against the web PKI roots (rustls with ring).
pub(crate) async fn tls(tcp: TcpStream, host: &str, broker: &str) -> Result<Stream, BrokerError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerError(format!("TLS to {broker}: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    )
    .map_err(|_| {
        BrokerError(format!(
            "TLS to {broker}: {host:?} is not a valid server name"
        ))
    })?;
    let s = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| BrokerError(format!("TLS handshake with {broker} at {host} failed: {e}")))?;
    Ok(Box::new(s))
}

/// The host of `host:port` (IPv6 in brackets).
pub(crate) fn host_of(addr: &str) -> &str {
    match addr.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => addr,
    }
}

/// A broker connection or publish failed; the caller reconnects and retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BrokerError(pub String);
