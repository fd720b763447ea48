//! tls-alpn-01 (RFC 8737): a TLS listener that offers only `acme-tls/1` and
//! answers each SNI name with a self-signed certificate carrying the
//! critical acmeIdentifier extension (the SHA-256 of the key authorization).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use instant_acme::{Identifier as AcmeIdentifier, KeyAuthorization};
use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::AbortOnDrop;

const ACME_TLS_1: &[u8] = b"acme-tls/1";

type Certificates = Arc<Mutex<HashMap<String, Arc<CertifiedKey>>>>;

pub(super) struct TlsAlpn01Server {
    certificates: Certificates,
    _task: AbortOnDrop,
}

impl TlsAlpn01Server {
    pub(super) async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let certificates = Certificates::default();
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(std::io::Error::other)?
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(BySni(certificates.clone())));
        config.alpn_protocols = vec![ACME_TLS_1.to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    match acceptor.accept(stream).await {
                        Ok(mut tls) => {
                            tracing::debug!(%peer, "answered tls-alpn-01");
                            let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                        }
                        Err(e) => tracing::debug!(%peer, error = %e, "tls-alpn-01 handshake failed"),
                    }
                });
            }
        });
        tracing::debug!(%addr, "tls-alpn-01 listener open");
        Ok(Self { certificates, _task: AbortOnDrop(task) })
    }

    /// Serves the validation certificate for `identifier`.
    pub(super) fn answer(
        &self,
        identifier: &AcmeIdentifier,
        key_authorization: &KeyAuthorization,
    ) -> Result<(), String> {
        let (sni, san) = match identifier {
            AcmeIdentifier::Dns(name) => {
                (name.to_ascii_lowercase(), SanType::DnsName(name.as_str().try_into().map_err(|e| format!("{e}"))?))
            }
            AcmeIdentifier::Ip(ip) => (reverse_name(*ip), SanType::IpAddress(*ip)),
            other => return Err(format!("cannot prove {other:?} with tls-alpn-01")),
        };
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![san];
        params.custom_extensions = vec![CustomExtension::new_acme_identifier(key_authorization.digest().as_ref())];
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| e.to_string())?;
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).map_err(|e| e.to_string())?;
        let certified = Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing));
        if let Ok(mut certificates) = self.certificates.lock() {
            certificates.insert(sni, certified);
        }
        Ok(())
    }
}

/// RFC 8738 §6: tls-alpn-01 for an IP address uses its reverse-DNS name as SNI.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let nibbles: Vec<String> =
                v6.octets().iter().rev().flat_map(|b| [b & 0x0f, b >> 4]).map(|n| format!("{n:x}")).collect();
            format!("{}.ip6.arpa", nibbles.join("."))
        }
    }
}

#[derive(Debug)]
struct BySni(Certificates);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Only the ACME validation protocol gets a certificate (RFC 8737 §3).
        if !hello.alpn()?.any(|p| p == ACME_TLS_1) {
            return None;
        }
        let name = hello.server_name()?.to_ascii_lowercase();
        self.0.lock().ok()?.get(&name).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(reverse_name("192.0.2.5".parse().unwrap_or(IpAddr::from([0; 4]))), "5.2.0.192.in-addr.arpa");
        let v6 = reverse_name("2001:db8::1".parse().unwrap_or(IpAddr::from([0; 16])));
        assert!(v6.starts_with("1.0.0.0.") && v6.ends_with("8.b.d.0.1.0.0.2.ip6.arpa"), "{v6}");
    }
}
