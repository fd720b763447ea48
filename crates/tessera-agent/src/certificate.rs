//! The certificate the agent looks after: parsed from the chain the CA
//! returned or from the files already on disk, with what renewal needs to
//! know (names, validity, the ARI identifier).

use std::net::IpAddr;

use instant_acme::CertificateIdentifier;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;

use super::args::OutputFiles;
use tessera_core::Identifier;

/// A leaf certificate and the chain above it, as PEM blocks.
#[derive(Debug, Clone)]
pub struct CertificateChain {
    pub leaf: CertificateDer<'static>,
    pub issuers: Vec<CertificateDer<'static>>,
    pub serial_hex: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub names: Vec<Identifier>,
    /// The leaf's public key bits, to match against the private key.
    public_key: Vec<u8>,
}

impl CertificateChain {
    /// Parses PEM text holding the leaf first, then its issuers.
    pub fn from_pem(text: &str) -> Result<Self, String> {
        let blocks = pem::parse_many(text).map_err(|e| format!("not PEM: {e}"))?;
        let mut ders = blocks.into_iter().filter(|b| b.tag() == "CERTIFICATE").map(|b| b.into_contents());
        let leaf = ders.next().ok_or("no CERTIFICATE block")?;
        let issuers = ders.map(CertificateDer::from).collect();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).map_err(|e| format!("bad leaf certificate: {e}"))?;
        let names = cert
            .subject_alternative_name()
            .map_err(|e| format!("bad subjectAltName: {e}"))?
            .map(|san| san.value.general_names.iter().filter_map(identifier).collect())
            .unwrap_or_default();
        let not_before = cert.validity().not_before.to_datetime();
        let not_after = cert.validity().not_after.to_datetime();
        let serial_hex = hex::encode(cert.raw_serial());
        let public_key = cert.public_key().subject_public_key.data.to_vec();
        Ok(Self { leaf: CertificateDer::from(leaf), issuers, serial_hex, not_before, not_after, names, public_key })
    }

    /// Whether the certificate names every wanted identifier.
    pub fn covers(&self, wanted: &[Identifier]) -> bool {
        wanted.iter().all(|w| self.names.contains(w))
    }

    /// Whether `private_key_pem` is the key this certificate certifies.
    pub fn matches_key(&self, private_key_pem: &str) -> bool {
        rcgen::KeyPair::from_pem(private_key_pem).is_ok_and(|k| k.public_key_raw() == self.public_key)
    }

    /// The RFC 9773 identifier, for renewal information and `replaces`.
    pub fn ari_id(&self) -> Option<CertificateIdentifier<'static>> {
        CertificateIdentifier::try_from(&self.leaf).ok().map(CertificateIdentifier::into_owned)
    }

    pub fn lifetime(&self) -> time::Duration {
        self.not_after - self.not_before
    }

    pub fn leaf_pem(&self) -> String {
        pem::encode(&pem::Pem::new("CERTIFICATE", self.leaf.to_vec()))
    }

    pub fn issuers_pem(&self) -> String {
        self.issuers.iter().map(|c| pem::encode(&pem::Pem::new("CERTIFICATE", c.to_vec()))).collect()
    }
}

fn identifier(name: &GeneralName<'_>) -> Option<Identifier> {
    match name {
        GeneralName::DNSName(dns) => Identifier::dns(dns).ok(),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes).ok().map(|b| Identifier::Ip(IpAddr::from(b))),
            16 => <[u8; 16]>::try_from(*bytes).ok().map(|b| Identifier::Ip(IpAddr::from(b))),
            _ => None,
        },
        _ => None,
    }
}

/// What is on disk now.
#[derive(Debug)]
pub enum Installed {
    /// No certificate yet.
    Missing,
    /// Something is there but cannot be kept (wrong names, other key,
    /// expired, unreadable); the reason is logged and a new one is ordered.
    Unusable(String),
    Usable(CertificateChain),
}

impl Installed {
    /// Reads the files the agent writes and judges them against the wanted names.
    pub fn read(files: &OutputFiles, wanted: &[Identifier], now: OffsetDateTime) -> Self {
        let cert_text = match std::fs::read_to_string(&files.cert) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::Missing,
            Err(e) => return Self::Unusable(format!("cannot read {}: {e}", files.cert.display())),
        };
        let mut text = cert_text;
        if let Some(chain) = &files.chain {
            match std::fs::read_to_string(chain) {
                Ok(issuers) => text.push_str(&issuers),
                Err(e) => return Self::Unusable(format!("cannot read {}: {e}", chain.display())),
            }
        }
        let chain = match CertificateChain::from_pem(&text) {
            Ok(chain) => chain,
            Err(e) => return Self::Unusable(format!("{}: {e}", files.cert.display())),
        };
        let key = match std::fs::read_to_string(&files.key) {
            Ok(key) => key,
            Err(e) => return Self::Unusable(format!("cannot read {}: {e}", files.key.display())),
        };
        if !chain.matches_key(&key) {
            return Self::Unusable(format!("{} does not hold the key of the certificate", files.key.display()));
        }
        if !chain.covers(wanted) {
            return Self::Unusable("the certificate does not name every --domain".into());
        }
        if chain.not_after <= now {
            return Self::Unusable(format!("the certificate expired at {}", chain.not_after));
        }
        Self::Usable(chain)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rcgen::{CertificateParams, KeyPair};

    use super::*;

    fn self_signed(names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn judges_the_files_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let files = OutputFiles { cert: dir.path().join("c.pem"), key: dir.path().join("k.pem"), chain: None };
        let wanted = vec![Identifier::dns("a.test").unwrap(), Identifier::Ip("10.0.0.1".parse().unwrap())];
        let now = OffsetDateTime::now_utc();
        assert!(matches!(Installed::read(&files, &wanted, now), Installed::Missing));

        let (cert, key) = self_signed(&["a.test", "10.0.0.1", "b.test"]);
        std::fs::write(&files.cert, &cert).unwrap();
        std::fs::write(&files.key, &key).unwrap();
        let Installed::Usable(chain) = Installed::read(&files, &wanted, now) else { panic!("not usable") };
        assert!(chain.covers(&wanted) && chain.issuers.is_empty());

        let more = vec![Identifier::dns("c.test").unwrap()];
        assert!(matches!(Installed::read(&files, &more, now), Installed::Unusable(r) if r.contains("--domain")));
        let (_, other_key) = self_signed(&["a.test"]);
        std::fs::write(&files.key, &other_key).unwrap();
        assert!(matches!(Installed::read(&files, &wanted, now), Installed::Unusable(r) if r.contains("key")));
        std::fs::write(&files.key, &key).unwrap();
        let later = chain.not_after + time::Duration::seconds(1);
        assert!(matches!(Installed::read(&files, &wanted, later), Installed::Unusable(r) if r.contains("expired")));
        std::fs::write(&files.cert, "garbage").unwrap();
        assert!(matches!(Installed::read(&files, &wanted, now), Installed::Unusable(_)));
    }
}
