//! Reading OCSP requests (RFC 6960 §4.1). Only what a responder acts on is
//! kept: per certificate, the CertID's hash algorithm, issuer hashes and
//! serial; and the nonce. Anything unparsable is `malformedRequest`.

use der_07::Decode;
use der_07::asn1::ObjectIdentifier;
use x509_ocsp::OcspRequest;

/// The hash algorithms a CertID may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertIdHash {
    Sha1,
    Sha256,
}

const SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

impl CertIdHash {
    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            SHA1 => Some(Self::Sha1),
            SHA256 => Some(Self::Sha256),
            _ => None,
        }
    }

    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            Self::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            Self::Sha256 => &digest::SHA256,
        };
        digest::digest(alg, data).as_ref().to_vec()
    }
}

/// One certificate asked about, with the CertID exactly as sent (echoed in
/// the answer).
#[derive(Debug, Clone)]
pub struct Query {
    pub hash: CertIdHash,
    pub issuer_name_hash: Vec<u8>,
    pub issuer_key_hash: Vec<u8>,
    pub serial: Vec<u8>,
    pub cert_id: x509_ocsp::CertId,
}

#[derive(Debug, Clone)]
pub struct ParsedRequest {
    pub queries: Vec<Query>,
    pub nonce: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("not a DER OCSPRequest: {0}")]
    Der(String),
    #[error("the request lists no certificate")]
    Empty,
    #[error("the request lists more than {0} certificates")]
    TooMany(usize),
    #[error("CertID hash algorithm {0} is not SHA-1 or SHA-256")]
    UnknownHash(String),
}

/// More certificates than this in one request is not a relying party.
const MAX_QUERIES: usize = 32;

pub fn parse(der: &[u8]) -> Result<ParsedRequest, RequestError> {
    let request = OcspRequest::from_der(der).map_err(|e| RequestError::Der(e.to_string()))?;
    let list = &request.tbs_request.request_list;
    if list.is_empty() {
        return Err(RequestError::Empty);
    }
    if list.len() > MAX_QUERIES {
        return Err(RequestError::TooMany(MAX_QUERIES));
    }
    let queries = list
        .iter()
        .map(|r| {
            let id = &r.req_cert;
            let hash = CertIdHash::from_oid(&id.hash_algorithm.oid)
                .ok_or_else(|| RequestError::UnknownHash(id.hash_algorithm.oid.to_string()))?;
            Ok(Query {
                hash,
                issuer_name_hash: id.issuer_name_hash.as_bytes().to_vec(),
                issuer_key_hash: id.issuer_key_hash.as_bytes().to_vec(),
                serial: id.serial_number.as_bytes().to_vec(),
                cert_id: id.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    let nonce = request.nonce().map(|n| n.0.as_bytes().to_vec());
    Ok(ParsedRequest { queries, nonce })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncation_are_refused() {
        assert!(matches!(parse(b"hello"), Err(RequestError::Der(_))));
        assert!(matches!(parse(&[]), Err(RequestError::Der(_))));
        // A SEQUENCE that claims more bytes than it has.
        assert!(matches!(parse(&[0x30, 0x82, 0x01, 0x00, 0x30]), Err(RequestError::Der(_))));
    }
}
