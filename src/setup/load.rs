//! Loading the active issuing CA at start: its record, its key and its chain.

use std::sync::Arc;

use super::SetupError;
use crate::clock::from_unix;
use crate::config::Config;
use crate::issuance::{RevocationUrls, SigningAuthority, certificate_pem};
use crate::keys::open_signer;
use crate::storage::Db;

/// The active issuing CA that expires last, ready to sign.
pub async fn load_signing_authority(config: &Config, db: &Db) -> Result<Arc<SigningAuthority>, SetupError> {
    let authorities = db.list_authorities().await?;
    let issuing = authorities
        .iter()
        .filter(|a| a.kind == "issuing" && a.status == "active")
        .max_by_key(|a| a.not_after)
        .ok_or_else(|| {
            SetupError::Refused("no active issuing CA in the database; run `tessera init --config FILE`".into())
        })?;
    let uri = config.resolve_key_uri(&issuing.key_uri)?;
    let signer = open_signer(&uri, &config.keys).await?;
    if signer.public_key_der() != public_key_of(&issuing.certificate_der)?.as_slice() {
        return Err(SetupError::Refused(format!(
            "the key {} does not match the certificate of authority {:?}",
            issuing.key_uri, issuing.name
        )));
    }

    let mut chain_pem = String::new();
    let mut root_pem = String::new();
    let mut current = Some(issuing);
    while let Some(authority) = current {
        if authority.parent_id.is_none() {
            root_pem = certificate_pem(&authority.certificate_der);
        } else {
            chain_pem.push_str(&certificate_pem(&authority.certificate_der));
        }
        current = authority.parent_id.and_then(|id| authorities.iter().find(|a| a.id == id));
    }
    Ok(Arc::new(SigningAuthority {
        id: issuing.id,
        name: issuing.name.clone(),
        signer,
        certificate_der: issuing.certificate_der.clone(),
        not_after: from_unix(issuing.not_after),
        urls: RevocationUrls::for_authority(&config.public_base_url(), issuing.id),
        crl_shards: config.revocation.crl_shards,
        chain_pem,
        root_pem,
    }))
}

fn public_key_of(der: &[u8]) -> Result<Vec<u8>, SetupError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| SetupError::Refused(format!("stored CA certificate does not parse: {e}")))?;
    Ok(cert.public_key().raw.to_vec())
}
