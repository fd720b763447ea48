//! Encoding and signing one CRL (RFC 5280 §5): v2, CRL number, AKI equal to
//! the issuer's SKI, reason codes, and for a shard a critical issuing
//! distribution point naming exactly the URL its certificates carry.

use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, KeyIdMethod, RevokedCertParams,
    SerialNumber,
};
use time::OffsetDateTime;

use crate::clock::from_unix;
use crate::issuance::{RevocationReason, SigningError, TbsCapture, sign_tbs};
use crate::keys::Signer;
use crate::storage::RevokedEntry;

/// What a CRL says, apart from who signs it.
#[derive(Debug)]
pub struct CrlContents<'a> {
    pub number: i64,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: &'a [RevokedEntry],
    /// For a shard: the URL its certificates name; None for a full CRL.
    pub distribution_point: Option<String>,
}

/// Signs a CRL for the CA whose certificate is `issuer_der`, SKI `ski`,
/// and whose key `signer` holds.
pub async fn sign_crl(
    contents: &CrlContents<'_>,
    issuer_der: &[u8],
    ski: &[u8],
    signer: &dyn Signer,
) -> Result<Vec<u8>, SigningError> {
    let params = CertificateRevocationListParams {
        this_update: contents.this_update,
        next_update: contents.next_update,
        crl_number: SerialNumber::from_slice(&contents.number.to_be_bytes()),
        issuing_distribution_point: contents.distribution_point.as_ref().map(|url| CrlIssuingDistributionPoint {
            distribution_point: CrlDistributionPoint { uris: vec![url.clone()] },
            scope: None,
        }),
        revoked_certs: contents.entries.iter().map(revoked_cert).collect(),
        key_identifier_method: KeyIdMethod::PreSpecified(ski.to_vec()),
    };
    let capture = TbsCapture::for_signer(signer)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der.into(), &capture)?;
    params.signed_by(&issuer)?;
    sign_tbs(signer, &capture.take()?).await
}

fn revoked_cert(entry: &RevokedEntry) -> RevokedCertParams {
    RevokedCertParams {
        serial_number: SerialNumber::from_slice(&entry.serial),
        revocation_time: from_unix(entry.revoked_at),
        // RFC 5280 §5.3.1: unspecified is written by leaving the reason out.
        reason_code: entry.revocation_reason.and_then(RevocationReason::from_code).and_then(rcgen_reason),
        invalidity_date: None,
    }
}

fn rcgen_reason(reason: RevocationReason) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match reason {
        RevocationReason::Unspecified => return None,
        RevocationReason::KeyCompromise => R::KeyCompromise,
        RevocationReason::CaCompromise => R::CaCompromise,
        RevocationReason::AffiliationChanged => R::AffiliationChanged,
        RevocationReason::Superseded => R::Superseded,
        RevocationReason::CessationOfOperation => R::CessationOfOperation,
        RevocationReason::CertificateHold => R::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => R::AaCompromise,
    })
}
