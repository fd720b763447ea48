//! OCSP requests as relying parties send them, for the benchmarks.

use der_07::Encode;
use der_07::asn1::{Null, OctetString};
use spki_07::AlgorithmIdentifierOwned;
use x509_ocsp::{CertId, OcspRequest, Request, TbsRequest};

/// A DER OCSP request for one serial (SHA-1 CertID, as RFC 5019 asks).
pub fn request_der(name_hash: &[u8], key_hash: &[u8], serial: &[u8]) -> Vec<u8> {
    let cert_id = CertId {
        hash_algorithm: AlgorithmIdentifierOwned {
            oid: der_07::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: Some(Null.into()),
        },
        issuer_name_hash: OctetString::new(name_hash).unwrap(),
        issuer_key_hash: OctetString::new(key_hash).unwrap(),
        serial_number: x509_cert_02::serial_number::SerialNumber::new(serial).unwrap(),
    };
    let request = OcspRequest {
        tbs_request: TbsRequest {
            version: Default::default(),
            requestor_name: None,
            request_list: vec![Request { req_cert: cert_id, single_request_extensions: None }],
            request_extensions: None,
        },
        optional_signature: None,
    };
    request.to_der().unwrap()
}

pub fn sha1(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, data).as_ref().to_vec()
}
