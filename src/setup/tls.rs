//! Tessera's own TLS certificate, issued by Tessera through the same
//! pipeline as every other certificate (so it is tracked and revocable).

use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, KeyPair};
use secrecy::{ExposeSecret, SecretString};
use time::{Duration, OffsetDateTime};

use super::SetupError;
use crate::clock::Clock;
use crate::config::Config;
use crate::issuance::{CertificateIssuer, CheckedCsr, Identifier, IssueRequest};
use crate::private_files::{create_private_dir, create_private_file};
use crate::storage::CertificateKind;

/// Lifetime of the server certificate; it is replaced with a third left.
pub const SERVER_CERT_LIFETIME: Duration = Duration::days(7);

/// The PEM chain and key the HTTPS listeners serve.
pub struct ServerTls {
    pub chain_pem: String,
    pub key_pem: SecretString,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl ServerTls {
    /// Whether a third of the lifetime or less is left.
    pub fn needs_renewal(&self, now: OffsetDateTime) -> bool {
        now >= self.not_after - (self.not_after - self.not_before) / 3
    }
}

fn paths(config: &Config) -> (PathBuf, PathBuf) {
    let dir = config.data_dir.join("tls");
    (dir.join("server.crt"), dir.join("server.key"))
}

/// Returns the stored server certificate when it is still fresh, was issued
/// by the current issuing CA and names what the config names; otherwise
/// issues a new one and stores it.
pub async fn ensure_server_tls(
    config: &Config,
    issuer: &CertificateIssuer,
    clock: &dyn Clock,
) -> Result<ServerTls, SetupError> {
    let names: Vec<Identifier> = config
        .tls_names
        .iter()
        .map(|n| Identifier::guess(n).map_err(|e| SetupError::Refused(format!("tls_names: {e}"))))
        .collect::<Result<_, _>>()?;
    let (cert_path, key_path) = paths(config);
    if let Some(existing) = read_existing(&cert_path, &key_path, issuer, &names)
        && !existing.needs_renewal(clock.now())
    {
        return Ok(existing);
    }
    let fresh = issue(issuer, &names).await?;
    store(&cert_path, &key_path, &fresh)?;
    tracing::info!(not_after = %fresh.not_after, "issued Tessera's TLS certificate");
    Ok(fresh)
}

async fn issue(issuer: &CertificateIssuer, names: &[Identifier]) -> Result<ServerTls, SetupError> {
    let key = KeyPair::generate().map_err(|e| SetupError::Refused(format!("TLS key generation: {e}")))?;
    let csr_der = CertificateParams::default()
        .serialize_request(&key)
        .map_err(|e| SetupError::Refused(format!("TLS CSR: {e}")))?;
    let csr = CheckedCsr::parse_der(csr_der.der()).map_err(|e| SetupError::Refused(format!("TLS CSR: {e}")))?;
    let issued = issuer
        .issue(&IssueRequest {
            csr: &csr,
            names: names.to_vec(),
            ttl: SERVER_CERT_LIFETIME,
            not_before: None,
            requester: "tessera".into(),
            policy: None,
            kind: CertificateKind::Internal,
        })
        .await?;
    Ok(ServerTls {
        chain_pem: issued.chain_pem(),
        key_pem: SecretString::from(key.serialize_pem()),
        not_before: issued.not_before,
        not_after: issued.not_after,
    })
}

fn read_existing(cert: &Path, key: &Path, issuer: &CertificateIssuer, names: &[Identifier]) -> Option<ServerTls> {
    let chain_pem = std::fs::read_to_string(cert).ok()?;
    let key_pem = std::fs::read_to_string(key).ok()?;
    let blocks = pem::parse_many(&chain_pem).ok()?;
    let leaf = blocks.first()?;
    let ca = blocks.get(1)?;
    if ca.contents() != issuer.authority().certificate_der.as_slice() {
        return None;
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.contents()).ok()?;
    let mut stored: Vec<String> = parsed
        .subject_alternative_name()
        .ok()??
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(format!("dns:{d}")),
            x509_parser::extensions::GeneralName::IPAddress(b) => ip_from_bytes(b).map(|ip| format!("ip:{ip}")),
            _ => None,
        })
        .collect();
    let mut wanted: Vec<String> = names.iter().map(Identifier::to_tagged).collect();
    stored.sort();
    wanted.sort();
    if stored != wanted {
        return None;
    }
    Some(ServerTls {
        chain_pem,
        key_pem: SecretString::from(key_pem),
        not_before: parsed.validity().not_before.to_datetime(),
        not_after: parsed.validity().not_after.to_datetime(),
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

fn store(cert: &Path, key: &Path, tls: &ServerTls) -> Result<(), SetupError> {
    if let Some(dir) = cert.parent() {
        create_private_dir(dir).map_err(SetupError::io(dir))?;
    }
    let key_tmp = key.with_extension("tmp");
    let _ = std::fs::remove_file(&key_tmp);
    let mut file = create_private_file(&key_tmp).map_err(SetupError::io(&key_tmp))?;
    file.write_all(tls.key_pem.expose_secret().as_bytes()).map_err(SetupError::io(&key_tmp))?;
    file.sync_all().map_err(SetupError::io(&key_tmp))?;
    std::fs::rename(&key_tmp, key).map_err(SetupError::io(key))?;
    std::fs::write(cert, &tls.chain_pem).map_err(SetupError::io(cert))?;
    Ok(())
}
