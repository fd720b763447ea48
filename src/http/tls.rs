//! The rustls configuration the HTTPS listeners share, rebuilt when
//! Tessera's own certificate is renewed.

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;

use super::client_certificate::RequestClientCertificate;
use crate::setup::ServerTls;

/// Whether a listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for, not required (see `client_certificate`).
    Requested,
}

#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

pub fn server_config(tls: &ServerTls, client_auth: ClientAuth) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(tls.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("certificate chain: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose_secret().as_bytes())
        .map_err(|e| TlsError(format!("private key: {e}")))?;
    let builder = rustls::ServerConfig::builder();
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested => builder.with_client_cert_verifier(RequestClientCertificate::new()),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub fn rustls_config(tls: &ServerTls, client_auth: ClientAuth) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(server_config(tls, client_auth)?))
}
