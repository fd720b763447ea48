//! Building and signing certificates: CSR checks, serials, profiles, and
//! the issuance pipeline that records every certificate before it exists.

mod csr;
#[cfg(any(test, feature = "test-support"))]
#[cfg_attr(not(feature = "test-support"), allow(dead_code))]
mod fault;
#[cfg(feature = "test-support")]
mod hold;
mod identifier;
mod issuer;
mod key_hash;
pub mod lint;
mod profile;
mod reason;
mod selector;
mod serial;
mod signing;

pub use csr::{CheckedCsr, CsrError, KeyType, PublicKeyNumbers, RSA_EXPONENT};
#[cfg(feature = "test-support")]
pub use fault::{ProfileFault, corrupt_next_issuance_of};
#[cfg(feature = "test-support")]
pub use hold::hold_next_issuance_of;
pub use identifier::{Identifier, IdentifierError, from_column, to_column};
pub use issuer::{AcmeOrderLink, CertificateIssuer, IssueError, IssueRequest, IssuedCertificate, SigningAuthority};
pub use key_hash::{KeyHash, backfill_key_hashes};
pub use lint::{CertificateExpectation, LintFailure, Profile};
pub use profile::{
    CaSubject, LeafProfile, RevocationUrls, issuing_params, leaf_params, leaf_subject, ocsp_signer_params, root_params,
};
pub use reason::RevocationReason;
pub use selector::SanSelector;
pub use serial::{InvalidSerial, Serial};
pub use signing::{SigningError, TbsCapture, envelope, sign_tbs};
pub use tessera_core::uri::{UriError, UriName};

use crate::keys::Signer;

/// Signs a self-signed certificate (a root) with `signer`, once it passes
/// its lint against `expect`.
pub async fn sign_self_signed(
    params: &rcgen::CertificateParams,
    expect: &CertificateExpectation<'_>,
    signer: &dyn Signer,
) -> Result<Vec<u8>, SigningError> {
    let capture = TbsCapture::for_signer(signer)?;
    params.self_signed(&capture)?;
    let tbs = capture.take()?;
    lint::check_certificate(&tbs, None, signer.algorithm(), expect)?;
    sign_tbs(signer, &tbs).await
}

/// Signs a certificate for `expect.subject_spki_der` under the CA
/// certificate `issuer_der`, whose key `signer` holds, once it passes its
/// lint against `expect`.
pub async fn sign_certificate(
    params: &rcgen::CertificateParams,
    expect: &CertificateExpectation<'_>,
    issuer_der: &[u8],
    signer: &dyn Signer,
) -> Result<Vec<u8>, SigningError> {
    let capture = TbsCapture::for_signer(signer)?;
    let subject = rcgen::SubjectPublicKeyInfo::from_der(expect.subject_spki_der)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der.into(), &capture)?;
    params.signed_by(&subject, &issuer)?;
    let tbs = capture.take()?;
    lint::check_certificate(&tbs, Some(issuer_der), signer.algorithm(), expect)?;
    sign_tbs(signer, &tbs).await
}

/// PEM text of one DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", der), lf)
}
