//! The successor of an issuing CA: its name, a new key in the same kind of
//! custodian as the current one, and its certificate from the root.

use time::Duration;

use super::RotationError;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::issuance::{CaSubject, Serial};
use std::sync::Arc;

use secrecy::ExposeSecret;

use crate::keys::software::SoftwareSigner;
use crate::keys::{KeyUri, Pkcs11Uri, Signer, open_or_create_signer};
use crate::secrets::Sealer;
use crate::setup::{IssuingParent, certify_issuing, new_authority, open_authority};
use crate::storage::{AuthorityRecord, AuthorityStore, IssuanceLedger, NewAuditEvent, SealedKey, SecretRow};

/// A successor CA is back-dated like the first one, for clock skew.
const BACKDATE: Duration = Duration::minutes(5);

/// Names a successor takes: `issuing` is followed by `issuing-2`, then
/// `issuing-3`; its key and common name carry the same generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuccessorNames {
    pub name: String,
    pub key_uri: String,
    pub common_name: String,
}

/// The first free generation after `current` among `authorities`: neither
/// its name nor its key URI may be in use (a key is never certified twice).
pub fn successor_names(
    current: &AuthorityRecord,
    authorities: &[AuthorityRecord],
    common_name: &str,
) -> Result<SuccessorNames, RotationError> {
    let (base, generation) = split_generation(&current.name);
    let uri: KeyUri =
        current.key_uri.parse().map_err(|e: crate::keys::KeyUriError| RotationError::Refused(e.to_string()))?;
    for next in generation + 1.. {
        let name = format!("{base}-{next}");
        let key_uri = successor_key_uri(&uri, &name, next)?;
        if authorities.iter().any(|a| a.name == name || a.key_uri == key_uri) {
            continue;
        }
        let common_name = format!("{} G{next}", split_cn_generation(common_name));
        return Ok(SuccessorNames { name, key_uri, common_name });
    }
    Err(RotationError::Refused("no free generation number".into()))
}

/// `issuing-3` is generation 3 of `issuing`; a name without a number is
/// generation 1.
fn split_generation(name: &str) -> (&str, u32) {
    match name.rsplit_once('-') {
        Some((base, number)) if !base.is_empty() => match number.parse::<u32>() {
            Ok(n) if n >= 2 => (base, n),
            _ => (name, 1),
        },
        _ => (name, 1),
    }
}

/// `Tessera Issuing CA G2` comes from `Tessera Issuing CA`.
fn split_cn_generation(common_name: &str) -> &str {
    match common_name.rsplit_once(" G") {
        Some((base, number)) if number.parse::<u32>().is_ok() => base,
        _ => common_name,
    }
}

/// A key URI for the successor in the current key's custodian: an object
/// on the same token, an alias in the same KMS account and region. A
/// software key's successor is sealed in the database under the CA's name
/// rather than written beside it: a file in this node's data directory is
/// one the other nodes cannot open.
fn successor_key_uri(current: &KeyUri, name: &str, generation: u32) -> Result<String, RotationError> {
    let with_generation = |label: &str| format!("{}-{generation}", split_generation(label).0);
    Ok(match current {
        KeyUri::File(_) | KeyUri::Sealed(_) => KeyUri::Sealed(name.to_owned()).to_string(),
        KeyUri::Pkcs11(p11) => KeyUri::Pkcs11(Pkcs11Uri {
            token: p11.token.clone(),
            object: Some(p11.object.as_deref().map_or_else(|| name.to_owned(), with_generation)),
            id: None,
        })
        .to_string(),
        KeyUri::AwsKms(id) => {
            // An alias (or an alias ARN) names the successor's alias; a bare
            // key id or key ARN has no name to follow, so the authority's is used.
            let alias = match id.split_once("alias/") {
                Some((prefix, alias)) => format!("{prefix}alias/{}", with_generation(alias)),
                None => format!("alias/tessera-{name}"),
            };
            KeyUri::AwsKms(alias).to_string()
        }
        KeyUri::Memory(_) => return Err(RotationError::Refused("an in-memory key cannot be rotated".into())),
    })
}

/// The validity a successor gets now: the configured issuing lifetime,
/// never beyond the root's.
pub fn successor_validity(config: &Config, root: &AuthorityRecord, now: time::OffsetDateTime) -> (i64, i64) {
    let lifetime = Duration::days(i64::from(config.hierarchy.issuing.validity_days));
    let not_before = (now - BACKDATE).unix_timestamp();
    (not_before, (now + lifetime).unix_timestamp().min(root.not_after))
}

/// Makes the successor of `current` and records it, retiring `current`, in
/// one transaction with the audit event. Returns the successor's id.
pub async fn create_successor(
    config: &Config,
    sealer: &Sealer,
    store: &AuthorityStore,
    ledger: &IssuanceLedger,
    clock: &SharedClock,
    current: &AuthorityRecord,
    actor: &str,
) -> Result<i64, RotationError> {
    let authorities = store.list_authorities().await?;
    let root = current
        .parent_id
        .and_then(|id| authorities.iter().find(|a| a.id == id))
        .ok_or(RotationError::NotIssuing(current.id))?;
    // The root's key is needed only now; opening it checks it against the
    // root certificate.
    let root_authority = open_authority(config, sealer, root, &authorities).await?;
    let names = successor_names(current, &authorities, &config.hierarchy.issuing.common_name)?;
    let algorithm = config.hierarchy.issuing.algorithm;
    let uri = config.resolve_key_uri(&names.key_uri).map_err(crate::setup::SetupError::from)?;
    let (signer, sealed_key): (Arc<dyn Signer>, _) = match &uri {
        KeyUri::Sealed(name) => {
            let (signer, pkcs8) = SoftwareSigner::generate_sealable(uri.clone(), algorithm)?;
            let value = sealer
                .seal(&SecretRow::AuthorityKey(name.clone()), pkcs8.expose_secret())
                .await
                .map_err(crate::setup::SetupError::from)?;
            (Arc::new(signer), Some(SealedKey { name: name.clone(), value }))
        }
        _ => (open_or_create_signer(&uri, algorithm, &config.keys).await?, None),
    };

    let now = clock.now();
    let (not_before, not_after) = successor_validity(config, root, now);
    let subject = CaSubject {
        common_name: names.common_name.clone(),
        organization: config.hierarchy.issuing.organization.clone(),
        serial: Serial::random(),
        not_before: crate::clock::from_unix(not_before),
        not_after: crate::clock::from_unix(not_after),
    };
    let parent = IssuingParent {
        id: root.id,
        certificate_der: &root_authority.certificate_der,
        signer: root_authority.signer.as_ref(),
    };
    let der = certify_issuing(ledger, config, clock, &parent, &subject, signer.as_ref()).await?;
    let record =
        new_authority(&names.name, &names.key_uri, "issuing", Some(root.id), signer.as_ref(), &der, &subject, clock)?;
    let audit = NewAuditEvent {
        at: clock.unix(),
        actor: actor.to_owned(),
        action: "authority.rotate",
        target: format!("authority:{}", current.id),
        detail: serde_json::json!({
            "predecessor": current.name,
            "successor": names.name,
            "key_uri": names.key_uri,
            "serial": subject.serial.to_hex(),
            "not_after": not_after,
        }),
    };
    let id = store.rotate_authority(current.id, &record, sealed_key.as_ref(), &audit).await?;
    tracing::info!(predecessor = %current.name, successor = %names.name, key = %names.key_uri, "rotated the issuing CA");
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: i64, name: &str, key_uri: &str) -> AuthorityRecord {
        AuthorityRecord {
            id,
            name: name.into(),
            kind: "issuing".into(),
            parent_id: Some(1),
            key_uri: key_uri.into(),
            algorithm: "ecdsa-p256-sha256".into(),
            certificate_der: vec![],
            serial: vec![],
            ski: vec![],
            subject: String::new(),
            not_before: 0,
            not_after: 0,
            status: crate::storage::AuthorityStatus::Active,
            created_at: 0,
        }
    }

    #[test]
    fn successors_stay_in_the_custodian_and_count_generations() {
        let cases = [
            ("file:keys/issuing.key.pem", "sealed:issuing-2"),
            ("sealed:issuing", "sealed:issuing-2"),
            ("pkcs11:token=ca;object=issuing", "pkcs11:token=ca;object=issuing-2"),
            ("pkcs11:token=ca;id=%01", "pkcs11:token=ca;object=issuing-2"),
            ("awskms:alias/tessera-issuing", "awskms:alias/tessera-issuing-2"),
            ("awskms:arn:aws:kms:eu-west-1:1:alias/ca", "awskms:arn:aws:kms:eu-west-1:1:alias/ca-2"),
            ("awskms:1234abcd-12ab-34cd-56ef-1234567890ab", "awskms:alias/tessera-issuing-2"),
        ];
        for (current, expected) in cases {
            let names = successor_names(&record(2, "issuing", current), &[], "Tessera Issuing CA").expect(current);
            assert_eq!(names.key_uri, expected);
            assert_eq!(names.name, "issuing-2");
            assert_eq!(names.common_name, "Tessera Issuing CA G2");
        }
        let third = successor_names(
            &record(3, "issuing-2", "sealed:issuing-2"),
            &[record(4, "issuing-3", "file:elsewhere.pem")],
            "Tessera Issuing CA G2",
        )
        .expect("valid");
        assert_eq!(third.name, "issuing-4", "a taken name is skipped");
        assert_eq!(third.key_uri, "sealed:issuing-4");
        assert_eq!(third.common_name, "Tessera Issuing CA G4");
    }
}
