//! Creating a root and an issuing CA under it, and recording both.

use time::Duration;

use super::{SetupError, system_event};
use crate::clock::SharedClock;
use crate::config::{AuthorityConfig, Config, Mode};
use crate::issuance::{
    CaSubject, KeyHash, Profile, RevocationUrls, Serial, issuing_params, root_params, sign_certificate,
    sign_self_signed, to_column,
};
use crate::keys::Signer;
use crate::storage::{CertificateKind, Db, IssuanceLedger, NewAuthority, PendingCertificate};

/// Makes the root certificate (self-signed) and the issuing CA certificate
/// (signed by the root), and records both authorities, the root with the
/// mode that made it. The issuing CA's certificate is also tracked as a
/// certificate of the root, so the root's CRL can revoke it.
pub async fn create_hierarchy(
    db: &Db,
    config: &Config,
    clock: &SharedClock,
    mode: Mode,
    root_signer: &dyn Signer,
    issuing_signer: &dyn Signer,
) -> Result<(), SetupError> {
    let now = clock.now();
    let root_cfg = &config.hierarchy.root;
    let issuing_cfg = &config.hierarchy.issuing;

    let root_subject = ca_subject(root_cfg, now);
    let root_expectation = root_subject.expectation(Profile::Root, root_signer.public_key_der());
    let root_der = sign_self_signed(&root_params(&root_subject), &root_expectation, root_signer).await?;
    let authorities = db.authorities();
    let root_id = authorities
        .insert_authority(
            &NewAuthority {
                setup_mode: Some(mode.as_str()),
                ..new_authority(
                    &root_cfg.name,
                    &root_cfg.key_uri,
                    "root",
                    None,
                    root_signer,
                    &root_der,
                    &root_subject,
                    clock,
                )?
            },
            &system_event(clock, "authority.create", &root_cfg.name),
        )
        .await?;

    let issuing_subject = ca_subject(issuing_cfg, now);
    let issuing_der = certify_issuing(
        &db.ledger(),
        config,
        clock,
        &IssuingParent { id: root_id, certificate_der: &root_der, signer: root_signer },
        &issuing_subject,
        issuing_signer,
    )
    .await?;
    authorities
        .insert_authority(
            &new_authority(
                &issuing_cfg.name,
                &issuing_cfg.key_uri,
                "issuing",
                Some(root_id),
                issuing_signer,
                &issuing_der,
                &issuing_subject,
                clock,
            )?,
            &system_event(clock, "authority.create", &issuing_cfg.name),
        )
        .await?;
    Ok(())
}

/// The root an issuing CA is certified by: its id, certificate and key.
pub struct IssuingParent<'a> {
    pub id: i64,
    pub certificate_der: &'a [u8],
    pub signer: &'a dyn Signer,
}

/// Signs an issuing CA certificate for `issuing_signer`'s key under the
/// root, through the same steps as every certificate: the serial is
/// recorded as the root's pending certificate first, so the root's CRL can
/// revoke it later. Returns the certificate; the caller records the
/// authority.
pub async fn certify_issuing(
    ledger: &IssuanceLedger,
    config: &Config,
    clock: &SharedClock,
    root: &IssuingParent<'_>,
    subject: &CaSubject,
    issuing_signer: &dyn Signer,
) -> Result<Vec<u8>, SetupError> {
    let root_urls = RevocationUrls::for_authority(&config.public_base_url(), root.id);
    let params = issuing_params(subject, &root_urls)?;
    ledger
        .reserve_certificate(&PendingCertificate {
            serial: subject.serial.as_bytes().to_vec(),
            authority_id: root.id,
            not_before: subject.not_before.unix_timestamp(),
            not_after: subject.not_after.unix_timestamp(),
            created_at: clock.unix(),
            kind: CertificateKind::Internal,
            subject: Some(format!("CN={}", subject.common_name)),
            sans: to_column(&[]),
            requester: "tessera".into(),
            key_type: Some(issuing_signer.algorithm().as_str().into()),
            policy: None,
            crl_shard: None,
            spki_hash: KeyHash::of_spki_der(issuing_signer.public_key_der()).as_bytes().to_vec(),
        })
        .await?;
    let expectation = subject.expectation(Profile::IssuingCa, issuing_signer.public_key_der());
    let signed = sign_certificate(&params, &expectation, root.certificate_der, root.signer).await;
    let issuing_der = match signed {
        Ok(der) => der,
        Err(e) => {
            if let Err(store) = ledger.record_failed(subject.serial.as_bytes()).await {
                tracing::warn!(error = %store, "could not mark a failed CA certificate");
            }
            return Err(e.into());
        }
    };
    ledger
        .record_issued(
            subject.serial.as_bytes(),
            &issuing_der,
            &system_event(clock, "certificate.issue", &subject.serial.to_hex()),
        )
        .await?;
    Ok(issuing_der)
}

pub fn ca_subject(config: &AuthorityConfig, now: time::OffsetDateTime) -> CaSubject {
    CaSubject {
        common_name: config.common_name.clone(),
        organization: config.organization.clone(),
        serial: Serial::random(),
        not_before: now - Duration::minutes(5),
        not_after: now + Duration::days(i64::from(config.validity_days)),
    }
}

/// The record of a CA certificate Tessera made. The key URI is kept as
/// configured (a relative file: path stays relative to the data dir).
#[allow(clippy::too_many_arguments, reason = "each is one column of the record, named at the call")]
pub fn new_authority(
    name: &str,
    key_uri: &str,
    kind: &'static str,
    parent_id: Option<i64>,
    signer: &dyn Signer,
    der: &[u8],
    subject: &CaSubject,
    clock: &SharedClock,
) -> Result<NewAuthority, SetupError> {
    let ski = subject_key_identifier(der)?;
    Ok(NewAuthority {
        name: name.to_owned(),
        kind,
        parent_id,
        key_uri: key_uri.to_owned(),
        algorithm: signer.algorithm().as_str().into(),
        certificate_der: der.to_vec(),
        serial: subject.serial.as_bytes().to_vec(),
        ski,
        subject: subject_text(der)?,
        not_before: subject.not_before.unix_timestamp(),
        not_after: subject.not_after.unix_timestamp(),
        created_at: clock.unix(),
        setup_mode: None,
    })
}

fn parse(der: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, SetupError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| SetupError::Refused(format!("a certificate Tessera made does not parse: {e}")))
}

pub fn subject_key_identifier(der: &[u8]) -> Result<Vec<u8>, SetupError> {
    let cert = parse(der)?;
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
        .ok_or_else(|| SetupError::Refused("CA certificate has no subject key identifier".into()))
}

fn subject_text(der: &[u8]) -> Result<String, SetupError> {
    Ok(parse(der)?.subject().to_string())
}
