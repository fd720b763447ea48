//! Loading authorities at start: their records, keys and chains.

use std::sync::Arc;

use secrecy::ExposeSecret;

use super::SetupError;
use crate::clock::from_unix;
use crate::config::Config;
use crate::issuance::{RevocationUrls, SigningAuthority, certificate_pem};
use crate::keys::software::SoftwareSigner;
use crate::keys::{KeyUri, Signer, open_signer, redact_pins};
use crate::secrets::Sealer;
use crate::storage::{AuthorityRecord, AuthorityStatus, Catalog};

/// The active issuing CA that expires last, ready to sign.
pub async fn load_signing_authority(
    config: &Config,
    sealer: &Sealer,
    catalog: &Catalog,
) -> Result<Arc<SigningAuthority>, SetupError> {
    let authorities = catalog.list_authorities().await?;
    let issuing = authorities
        .iter()
        .filter(|a| a.kind == "issuing" && a.status == AuthorityStatus::Active)
        .max_by_key(|a| a.not_after)
        .ok_or_else(|| {
            SetupError::Refused("no active issuing CA in the database; run `tessera init --config FILE`".into())
        })?;
    Ok(Arc::new(open_authority(config, sealer, issuing, &authorities).await?))
}

/// Any authority ready to sign: its key opened and checked against its
/// certificate (a mismatched key would sign what nobody can verify), its
/// chain up to the root, and the URLs and CRL shards of what it signs.
pub async fn open_authority(
    config: &Config,
    sealer: &Sealer,
    record: &AuthorityRecord,
    authorities: &[AuthorityRecord],
) -> Result<SigningAuthority, SetupError> {
    let uri = config.resolve_key_uri(&record.key_uri)?;
    let signer: Arc<dyn Signer> = match &uri {
        KeyUri::Sealed(name) => {
            let pkcs8 = sealer.open_authority_key(name).await?;
            Arc::new(SoftwareSigner::from_pkcs8(uri.clone(), pkcs8.expose_secret())?)
        }
        _ => open_signer(&uri, &config.keys).await?,
    };
    if signer.public_key_der() != public_key_of(&record.certificate_der)?.as_slice() {
        return Err(SetupError::Refused(format!(
            "the key {} does not match the certificate of authority {:?}",
            redact_pins(&record.key_uri),
            record.name
        )));
    }

    let mut chain_pem = String::new();
    let mut root_pem = String::new();
    let mut current = Some(record);
    while let Some(authority) = current {
        if authority.parent_id.is_none() {
            root_pem = certificate_pem(&authority.certificate_der);
        } else {
            chain_pem.push_str(&certificate_pem(&authority.certificate_der));
        }
        current = authority.parent_id.and_then(|id| authorities.iter().find(|a| a.id == id));
    }
    Ok(SigningAuthority {
        id: record.id,
        name: record.name.clone(),
        signer,
        certificate_der: record.certificate_der.clone(),
        not_after: from_unix(record.not_after),
        urls: RevocationUrls::for_authority(&config.public_base_url(), record.id),
        // The root signs only issuing CAs: too few to shard.
        crl_shards: if record.parent_id.is_none() { 0 } else { config.revocation.crl_shards },
        chain_pem,
        root_pem,
    })
}

fn public_key_of(der: &[u8]) -> Result<Vec<u8>, SetupError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SetupError::Refused(format!("stored CA certificate does not parse: {e}")))?;
    Ok(cert.public_key().raw.to_vec())
}
