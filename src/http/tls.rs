//! The rustls configuration the HTTPS listeners share, rebuilt when
//! Tessera's own certificate is renewed.

use std::sync::Arc;

use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;

use crate::setup::ServerTls;

#[derive(Debug, thiserror::Error)]
#[error("TLS configuration: {0}")]
pub struct TlsError(String);

pub fn server_config(tls: &ServerTls) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(tls.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError(format!("certificate chain: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.expose_secret().as_bytes())
        .map_err(|e| TlsError(format!("private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub fn rustls_config(tls: &ServerTls) -> Result<RustlsConfig, TlsError> {
    Ok(RustlsConfig::from_config(server_config(tls)?))
}
