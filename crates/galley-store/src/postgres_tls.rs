//! TLS to PostgreSQL (rustls with ring), with libpq's `sslmode` meanings:
//! `disable` (no TLS), `prefer` and `require` (encrypted, certificate not checked, as libpq
//! does), `verify-ca` and `verify-full` (certificate checked against the web PKI roots and
//! the PEM file given by `sslrootcert=PATH`).

use crate::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL asked for, once Galley's extra parameters are taken out of it.
pub struct TlsChoice {
    /// The URL tokio-postgres can parse (`verify-*` turned into `require`, `sslrootcert` removed).
    pub url: String,
    pub verify: bool,
    pub root_cert: Option<String>,
}

/// Splits libpq parameters tokio-postgres does not know out of a URL.
pub fn choose(url: &str) -> TlsChoice {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, q),
        None => {
            return TlsChoice {
                url: url.to_owned(),
                verify: false,
                root_cert: None,
            }
        }
    };
    let mut verify = false;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match (k, v) {
            ("sslmode", "verify-ca" | "verify-full") => {
                verify = true;
                kept.push("sslmode=require".to_owned());
            }
            ("sslrootcert", path) => root_cert = Some(percent_decode(path)),
            _ => kept.push(pair.to_owned()),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    TlsChoice {
        url,
        verify,
        root_cert,
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Accepts any server certificate but still checks the handshake signatures: libpq's
/// `sslmode=require` (encryption without authentication of the server).
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connector for a choice.
pub fn connector(choice: &TlsChoice) -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Config(format!("cannot set up TLS: {e}")))?;
    let config = if choice.verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &choice.root_cert {
            let pem = std::fs::read(path).map_err(|e| {
                StoreError::Config(format!("cannot read sslrootcert {path}: {e}. Give the path of the server's CA certificate (PEM)"))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    StoreError::Config(format!("sslrootcert {path} is not a PEM certificate: {e}"))
                })?;
                roots.add(cert).map_err(|e| {
                    StoreError::Config(format!(
                        "sslrootcert {path} holds an unusable certificate: {e}"
                    ))
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_modes_are_translated() {
        let c = choose(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        );
        assert!(c.verify);
        assert_eq!(c.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(
            c.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        let c = choose("postgres://u@h/db?sslmode=require");
        assert!(!c.verify);
        assert_eq!(c.url, "postgres://u@h/db?sslmode=require");
        assert_eq!(choose("postgres://u@h/db").url, "postgres://u@h/db");
    }
}
