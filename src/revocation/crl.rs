//! Encoding and signing one CRL (RFC 5280 §5): v2, CRL number, AKI equal to
//! the issuer's SKI, reason codes, and for a shard a critical issuing
//! distribution point naming exactly the URL its certificates carry.

use rcgen::{
    CertificateRevocationListParams, CrlDistributionPoint, CrlIssuingDistributionPoint, KeyIdMethod, RevokedCertParams,
    SerialNumber,
};
use time::OffsetDateTime;

use crate::clock::from_unix;
use crate::issuance::lint::{CrlExpectation, check_crl};
use crate::issuance::{RevocationReason, SigningError, TbsCapture, sign_tbs};
use crate::keys::Signer;
use crate::storage::RevokedEntry;

/// What a CRL says, apart from who signs it.
#[derive(Debug)]
pub struct CrlContents<'a> {
    pub number: i64,
    /// The number of the CRL this one replaces, which it must exceed.
    pub previous_number: Option<i64>,
    pub this_update: OffsetDateTime,
    pub next_update: OffsetDateTime,
    pub entries: &'a [RevokedEntry],
    /// For a shard: the URL its certificates name; None for a full CRL.
    pub distribution_point: Option<String>,
}

/// Signs a CRL for the CA whose certificate is `issuer_der`, SKI `ski`,
/// and whose key `signer` holds, once it passes its lint.
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
    let tbs = capture.take()?;
    let expectation = CrlExpectation {
        number: contents.number,
        previous_number: contents.previous_number,
        this_update: contents.this_update.unix_timestamp(),
        next_update: contents.next_update.unix_timestamp(),
        serials: contents.entries.iter().map(|e| e.serial.as_slice()).collect(),
        sharded: contents.distribution_point.is_some(),
        algorithm: signer.algorithm(),
    };
    check_crl(&tbs, issuer_der, &expectation)?;
    sign_tbs(signer, &tbs).await
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

#[cfg(test)]
mod tests {
    use time::Duration;
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;
    use crate::issuance::{CaSubject, Profile, Serial, root_params, sign_self_signed};
    use crate::keys::software::SoftwareSigner;
    use crate::keys::{KeyUri, SigningAlgorithm};

    /// A CA certificate, its key and its SKI.
    async fn ca() -> (SoftwareSigner, Vec<u8>, Vec<u8>) {
        let signer = SoftwareSigner::generate_sealable(KeyUri::Memory("crl".into()), SigningAlgorithm::EcdsaP256Sha256)
            .expect("test value")
            .0;
        let now = OffsetDateTime::now_utc();
        let subject = CaSubject {
            common_name: "CRL Lint CA".into(),
            organization: None,
            serial: Serial::random(),
            not_before: now - Duration::hours(1),
            not_after: now + Duration::days(30),
        };
        let expect = subject.expectation(Profile::Root, signer.public_key_der());
        let der = sign_self_signed(&root_params(&subject), &expect, &signer).await.expect("test value");
        let ski = X509Certificate::from_der(&der)
            .expect("test value")
            .1
            .tbs_certificate
            .extensions()
            .iter()
            .find_map(|e| match e.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .expect("test value");
        (signer, der, ski)
    }

    fn contents(entries: &[RevokedEntry], number: i64, previous_number: Option<i64>) -> CrlContents<'_> {
        let now = OffsetDateTime::now_utc();
        CrlContents {
            number,
            previous_number,
            this_update: now,
            next_update: now + Duration::hours(24),
            entries,
            distribution_point: None,
        }
    }

    fn refused(result: Result<Vec<u8>, SigningError>, says: &str) {
        match result {
            Err(SigningError::Lint(failure)) => assert!(failure.to_string().contains(says), "{failure}"),
            other => panic!("not refused by the lint ({says}): {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_crl_is_signed_only_when_its_number_rises_and_it_names_its_issuer_key() {
        let (signer, der, ski) = ca().await;
        let entries =
            [RevokedEntry { serial: Serial::random().as_bytes().to_vec(), revoked_at: 1, revocation_reason: Some(1) }];
        sign_crl(&contents(&entries, 7, Some(6)), &der, &ski, &signer).await.expect("a rising number passes");
        refused(sign_crl(&contents(&entries, 7, Some(7)), &der, &ski, &signer).await, "does not rise");
        refused(sign_crl(&contents(&entries, 5, Some(7)), &der, &ski, &signer).await, "does not rise");
        refused(sign_crl(&contents(&entries, 8, None), &der, &[1, 2, 3], &signer).await, "authority key identifier");
        let twice = [entries[0].clone(), entries[0].clone()];
        refused(sign_crl(&contents(&twice, 9, None), &der, &ski, &signer).await, "listed twice");
    }
}
