//! HTTPS for `bale serve --tls-cert --tls-key`: rustls with the ring
//! provider (the one ureq already brings), TLS 1.2 and 1.3.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::ServeError;

fn tls_err(path: &Path, message: impl std::fmt::Display) -> ServeError {
    ServeError::Tls {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// An acceptor for the PEM certificate chain `cert` and private key `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, format!("cannot read a PEM certificate: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_err(cert, "no certificate in the file"));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(key, format!("not a PEM private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| tls_err(key, format!("does not match the certificate: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
