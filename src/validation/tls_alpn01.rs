//! tls-alpn-01 (RFC 8737): a TLS handshake offering only ALPN `acme-tls/1`
//! with the identifier as SNI (the reverse-DNS name for IP addresses, RFC
//! 8738 §6). The server's self-signed certificate must name exactly the
//! identifier and carry the critical acmeIdentifier extension holding
//! SHA-256 of the key authorization. Its chain is deliberately not checked.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::{ValidationError, ValidationResolver, key_authorization_digest};
use crate::issuance::Identifier;

const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// id-pe-acmeIdentifier (RFC 8737 §6.1).
const ACME_IDENTIFIER_OID: &str = "1.3.6.1.5.5.7.1.31";

pub async fn validate(
    resolver: &ValidationResolver,
    identifier: &Identifier,
    port: u16,
    key_authorization: &str,
) -> Result<(), ValidationError> {
    let (ip, sni) = match identifier {
        Identifier::Dns(name) => (resolver.addresses(name).await?[0], name.clone()),
        Identifier::Ip(ip) => (*ip, reverse_name(*ip)),
        Identifier::Uri(u) => return Err(ValidationError::Unauthorized(format!("tls-alpn-01 cannot validate {u}"))),
    };
    let tcp = TcpStream::connect((ip, port))
        .await
        .map_err(|e| ValidationError::Connection(format!("connecting to {ip} port {port} failed: {}", e.kind())))?;
    let server_name = ServerName::try_from(sni.clone())
        .map_err(|e| ValidationError::Tls(format!("{sni:?} cannot be sent as SNI: {e}")))?;
    let connector = tokio_rustls::TlsConnector::from(client_config()?);
    let tls = connector.connect(server_name, tcp).await.map_err(|e| {
        ValidationError::Tls(format!("the TLS handshake with {ip} port {port} {}", handshake_failure(&e)))
    })?;
    let (_, connection) = tls.get_ref();
    if connection.alpn_protocol() != Some(ACME_TLS_ALPN) {
        return Err(ValidationError::Tls(format!("{ip} port {port} did not negotiate ALPN acme-tls/1")));
    }
    let certificate = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| ValidationError::Tls("the server presented no certificate".into()))?;
    check_certificate(certificate, identifier, &key_authorization_digest(key_authorization))
}

/// Why a handshake failed, in rustls's categories: the peer's own words
/// (and its certificate's fields) stay out of the error the account reads.
fn handshake_failure(e: &std::io::Error) -> String {
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
        return format!("failed: {}", e.kind());
    };
    match tls {
        rustls::Error::AlertReceived(alert) => format!("failed: the server sent the alert {alert:?}"),
        rustls::Error::NoApplicationProtocol => "failed: the server does not offer acme-tls/1".into(),
        rustls::Error::InvalidCertificate(_) => "failed: the server's certificate or signature is invalid".into(),
        rustls::Error::PeerIncompatible(_) => "failed: the server's TLS is incompatible".into(),
        rustls::Error::PeerMisbehaved(_) | rustls::Error::InvalidMessage(_) => {
            "failed: the server broke the TLS protocol".into()
        }
        _ => "failed".into(),
    }
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, ValidationError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ValidationError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    config.alpn_protocols = vec![ACME_TLS_ALPN.to_vec()];
    Ok(Arc::new(config))
}

/// The name an IP address is presented under in SNI (RFC 8738 §6).
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut labels: Vec<String> =
                v6.octets().iter().flat_map(|b| [format!("{:x}", b >> 4), format!("{:x}", b & 0xf)]).collect();
            labels.reverse();
            format!("{}.ip6.arpa", labels.join("."))
        }
    }
}

fn check_certificate(der: &CertificateDer<'_>, identifier: &Identifier, digest: &[u8]) -> Result<(), ValidationError> {
    let wrong = |detail: String| ValidationError::IncorrectResponse(detail);
    let (_, certificate) = x509_parser::certificate::X509Certificate::from_der(der.as_ref())
        .map_err(|_| ValidationError::Tls("the challenge certificate does not parse".into()))?;
    let mut names = Vec::new();
    let mut acme_identifier = None;
    for extension in certificate.extensions() {
        if extension.oid.to_id_string() == ACME_IDENTIFIER_OID {
            if !extension.critical {
                return Err(wrong("the acmeIdentifier extension is not critical".into()));
            }
            acme_identifier = Some(extension.value);
        }
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            for name in &san.general_names {
                names.push(match name {
                    GeneralName::DNSName(d) => Identifier::dns(d).ok(),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| Identifier::Ip(IpAddr::from(b))),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| Identifier::Ip(IpAddr::from(b))),
                        _ => None,
                    },
                    _ => None,
                });
            }
        }
    }
    if names.len() != 1 || names[0].as_ref() != Some(identifier) {
        return Err(wrong(format!("the challenge certificate must name exactly {identifier} in its SAN")));
    }
    let value = acme_identifier.ok_or_else(|| wrong("the challenge certificate has no acmeIdentifier".into()))?;
    // The extension value is an OCTET STRING of the 32-octet digest.
    let expected: Vec<u8> = [&[0x04, 0x20][..], digest].concat();
    if value != expected.as_slice() {
        return Err(wrong("the acmeIdentifier does not hold the key authorization's digest".into()));
    }
    Ok(())
}

/// Accepts any certificate: tls-alpn-01 proves control with the
/// acmeIdentifier, not with a chain. Handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        self.verify_handshake(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl AnyCertificate {
    /// Checks the handshake signature with the certificate's key. rustls's
    /// own helper parses the certificate with webpki, which refuses the
    /// critical acmeIdentifier extension, so the key is taken out here.
    fn verify_handshake(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature);
        let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref()).map_err(|_| bad())?;
        let key = parsed.public_key().subject_public_key.data.as_ref();
        let algorithms = self
            .0
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .map(|(_, algorithms)| *algorithms)
            .ok_or_else(bad)?;
        algorithms
            .iter()
            .find(|alg| alg.verify_signature(key, message, dss.signature()).is_ok())
            .map(|_| HandshakeSignatureValid::assertion())
            .ok_or_else(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(reverse_name("127.0.0.1".parse().expect("ip")), "1.0.0.127.in-addr.arpa");
        assert!(reverse_name("::1".parse().expect("ip")).starts_with("1.0.0.0."));
        assert!(reverse_name("::1".parse().expect("ip")).ends_with(".0.ip6.arpa"));
    }
}
