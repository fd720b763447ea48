//! The OCSP response lint: the to-be-signed ResponseData (RFC 6960 §4.2.1),
//! decoded back, must answer exactly the questions asked with the statuses
//! Tessera knows, name its responder by key hash and hold coherent times.

use der_07::Decode;
use x509_ocsp::{CertId, CertStatus, OcspGeneralizedTime, ResponderId, ResponseData, Version};

use super::{Findings, LintFailure};

/// id-pkix-ocsp-nonce (RFC 6960 §4.4.1).
const NONCE: &str = "1.3.6.1.5.5.7.48.1.2";
/// RFC 8954 §2.1: a nonce is 1 to 32 octets.
const MAX_NONCE: usize = 32;

/// The status an answer must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedStatus {
    Good,
    Revoked { at: i64 },
    Unknown,
}

/// What one response must say.
#[derive(Debug, Clone)]
pub struct OcspExpectation<'a> {
    /// SHA-1 of the responder's public key (RFC 6960 §4.2.2.3).
    pub responder_key_hash: &'a [u8],
    pub answers: Vec<(&'a CertId, ExpectedStatus)>,
    pub produced_at: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub nonce: Option<&'a [u8]>,
}

/// Checks the DER of a to-be-signed ResponseData against `expect`.
pub fn check_ocsp_response(tbs_der: &[u8], expect: &OcspExpectation<'_>) -> Result<(), LintFailure> {
    let mut findings = Findings::new("OCSP response");
    let data = match ResponseData::from_der(tbs_der) {
        Ok(data) => data,
        Err(e) => {
            findings.push(format!("the response data does not parse: {e}"));
            return findings.into_result();
        }
    };
    findings.check(data.version == Version::V1, || "the response is not v1".into());
    let by_key = match &data.responder_id {
        ResponderId::ByKey(hash) => hash.as_bytes() == expect.responder_key_hash,
        ResponderId::ByName(_) => false,
    };
    findings.check(by_key, || "the responder is not named by its own key hash".into());
    let produced_at = unix(&data.produced_at);
    findings
        .check(produced_at == expect.produced_at, || format!("producedAt {produced_at} is not {}", expect.produced_at));
    findings.check(!data.responses.is_empty(), || "the response answers nothing".into());
    findings.check(data.responses.len() == expect.answers.len(), || {
        format!("{} answers for {} questions", data.responses.len(), expect.answers.len())
    });
    for (single, (cert_id, status)) in data.responses.iter().zip(&expect.answers) {
        let serial = hex::encode(cert_id.serial_number.as_bytes());
        findings.check(single.cert_id == **cert_id, || format!("the answer for {serial} names another CertID"));
        let this_update = unix(&single.this_update);
        let next_update = single.next_update.as_ref().map(unix);
        findings.check(this_update == expect.this_update && this_update <= produced_at, || {
            format!("thisUpdate {this_update} for {serial} is not {}", expect.this_update)
        });
        findings.check(next_update == Some(expect.next_update) && expect.next_update > this_update, || {
            format!("nextUpdate {next_update:?} for {serial} is not {} after thisUpdate", expect.next_update)
        });
        let said = match &single.cert_status {
            CertStatus::Good(_) => ExpectedStatus::Good,
            CertStatus::Revoked(info) => ExpectedStatus::Revoked { at: unix(&info.revocation_time) },
            CertStatus::Unknown(_) => ExpectedStatus::Unknown,
        };
        findings.check(said == *status, || format!("{serial} is answered {said:?}, not {status:?}"));
        findings.check(single.single_extensions.is_none(), || format!("the answer for {serial} has extensions"));
    }
    let extensions = data.response_extensions.as_deref().unwrap_or_default();
    let nonce = extensions.iter().find(|e| e.extn_id.to_string() == NONCE);
    findings.check(extensions.iter().all(|e| e.extn_id.to_string() == NONCE && !e.critical), || {
        "the response carries an extension other than a non-critical nonce".into()
    });
    match (expect.nonce, nonce) {
        (Some(asked), Some(echoed)) => {
            let value = der_07::asn1::OctetString::from_der(echoed.extn_value.as_bytes());
            findings
                .check(value.as_ref().is_ok_and(|v| v.as_bytes() == asked), || "the nonce is not the request's".into());
            findings.check((1..=MAX_NONCE).contains(&asked.len()), || format!("a nonce of {} octets", asked.len()));
        }
        (None, None) => {}
        (Some(_), None) => findings.push("the request's nonce is not echoed".into()),
        (None, Some(_)) => findings.push("a nonce nobody asked for".into()),
    }
    findings.into_result()
}

fn unix(time: &OcspGeneralizedTime) -> i64 {
    time.0.to_unix_duration().as_secs() as i64
}
