//! Writing OCSP responses (RFC 6960 §4.2): a BasicOCSPResponse signed by the
//! delegated responder, its certificate included, responder named by key
//! hash (RFC 5019 §2.2.2), the request's CertIDs and nonce echoed.

use der_07::asn1::{BitString, GeneralizedTime, OctetString};
use der_07::{DateTime, Decode, Encode};
use spki_07::AlgorithmIdentifierOwned;
use x509_cert_02::Certificate;
use x509_cert_02::ext::pkix::CrlReason;
use x509_ocsp::{
    BasicOcspResponse, CertId, CertStatus, OcspGeneralizedTime, OcspResponse, ResponderId, ResponseData, RevokedInfo,
    SingleResponse, Version,
};

use crate::issuance::RevocationReason;
use crate::issuance::lint::{ExpectedStatus, LintFailure, OcspExpectation, check_ocsp_response};
use crate::keys::Signer;
use crate::keys::software::SoftwareSigner;

/// What Tessera knows of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    Revoked {
        at: i64,
        reason: Option<RevocationReason>,
    },
    /// Never issued by this authority.
    Unknown,
}

/// A delegated OCSP signer: an in-memory key and its certificate.
#[derive(Debug)]
pub struct ResponderKey {
    pub key: SoftwareSigner,
    pub certificate_der: Vec<u8>,
    certificate: Certificate,
    key_hash: Vec<u8>,
    pub not_after: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("OCSP encoding: {0}")]
    Der(#[from] der_07::Error),
    #[error("OCSP signing: {0}")]
    Sign(#[from] crate::keys::SignerError),
    #[error(transparent)]
    Lint(#[from] LintFailure),
}

impl ResponderKey {
    pub fn new(key: SoftwareSigner, certificate_der: Vec<u8>, not_after: i64) -> Result<Self, EncodeError> {
        let certificate = Certificate::from_der(&certificate_der)?;
        let point = certificate.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes();
        let key_hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, point).as_ref().to_vec();
        Ok(Self { key, certificate_der, certificate, key_hash, not_after })
    }

    /// Signs one response covering `answers`, valid from `this_update` to
    /// `next_update`, echoing `nonce` when the request had one.
    pub fn sign(
        &self,
        answers: &[(&CertId, Status)],
        produced_at: i64,
        this_update: i64,
        next_update: i64,
        nonce: Option<&[u8]>,
    ) -> Result<Vec<u8>, EncodeError> {
        let responses = answers
            .iter()
            .map(|(cert_id, status)| {
                Ok(SingleResponse {
                    cert_id: (*cert_id).clone(),
                    cert_status: cert_status(*status)?,
                    this_update: time(this_update)?,
                    next_update: Some(time(next_update)?),
                    single_extensions: None,
                })
            })
            .collect::<Result<Vec<_>, der_07::Error>>()?;
        let response_extensions = match nonce {
            Some(nonce) => Some(vec![x509_cert_02::ext::Extension {
                extn_id: NONCE,
                critical: false,
                extn_value: OctetString::new(OctetString::new(nonce)?.to_der()?)?,
            }]),
            None => None,
        };
        let data = ResponseData {
            version: Version::V1,
            responder_id: ResponderId::ByKey(OctetString::new(self.key_hash.clone())?),
            produced_at: time(produced_at)?,
            responses,
            response_extensions,
        };
        let tbs = data.to_der()?;
        let expectation = OcspExpectation {
            responder_key_hash: &self.key_hash,
            answers: answers.iter().map(|(cert_id, status)| (*cert_id, expected(*status))).collect(),
            produced_at,
            this_update,
            next_update,
            nonce,
        };
        check_ocsp_response(&tbs, &expectation)?;
        let signature = self.key.sign_now(&tbs)?;
        let basic = BasicOcspResponse {
            tbs_response_data: data,
            signature_algorithm: AlgorithmIdentifierOwned::from_der(self.key.algorithm().algorithm_identifier_der())?,
            signature: BitString::from_bytes(&signature)?,
            certs: Some(vec![self.certificate.clone()]),
        };
        Ok(OcspResponse::successful(basic)?.to_der()?)
    }
}

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
const NONCE: der_07::asn1::ObjectIdentifier = der_07::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2");

fn time(unix: i64) -> Result<OcspGeneralizedTime, der_07::Error> {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    Ok(OcspGeneralizedTime(GeneralizedTime::from_date_time(DateTime::from_system_time(at)?)))
}

/// What the lint holds an answer to.
fn expected(status: Status) -> ExpectedStatus {
    match status {
        Status::Good => ExpectedStatus::Good,
        Status::Revoked { at, .. } => ExpectedStatus::Revoked { at: at.max(0) },
        Status::Unknown => ExpectedStatus::Unknown,
    }
}

fn cert_status(status: Status) -> Result<CertStatus, der_07::Error> {
    Ok(match status {
        Status::Good => CertStatus::good(),
        Status::Unknown => CertStatus::unknown(),
        Status::Revoked { at, reason } => CertStatus::revoked(RevokedInfo {
            revocation_time: time(at)?,
            revocation_reason: reason.and_then(crl_reason),
        }),
    })
}

fn crl_reason(reason: RevocationReason) -> Option<CrlReason> {
    Some(match reason {
        RevocationReason::Unspecified => CrlReason::Unspecified,
        RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
        RevocationReason::CaCompromise => CrlReason::CaCompromise,
        RevocationReason::AffiliationChanged => CrlReason::AffiliationChanged,
        RevocationReason::Superseded => CrlReason::Superseded,
        RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
        RevocationReason::CertificateHold => CrlReason::CertificateHold,
        RevocationReason::PrivilegeWithdrawn => CrlReason::PrivilegeWithdrawn,
        RevocationReason::AaCompromise => CrlReason::AaCompromise,
    })
}

/// The unsigned answers for requests Tessera cannot or will not sign.
pub fn error_response(status: x509_ocsp::OcspResponseStatus) -> Vec<u8> {
    let response = OcspResponse { response_status: status, response_bytes: None };
    response.to_der().unwrap_or_default()
}
