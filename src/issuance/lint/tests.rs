//! Each check refuses the profile it guards once that profile is broken on
//! purpose, and the real profiles pass.

use time::{Duration, OffsetDateTime};

use super::{CertificateExpectation, LintFailure, Profile, check_certificate};
use crate::issuance::fault::{ProfileFault, corrupt};
use crate::issuance::{
    CaSubject, Identifier, KeyType, LeafProfile, RevocationUrls, Serial, SigningError, TbsCapture, issuing_params,
    leaf_params, ocsp_signer_params, root_params, sign_certificate, sign_self_signed,
};
use crate::keys::software::SoftwareSigner;
use crate::keys::{KeyUri, Signer, SigningAlgorithm};

fn key(name: &str) -> SoftwareSigner {
    SoftwareSigner::generate_sealable(KeyUri::Memory(name.into()), SigningAlgorithm::EcdsaP256Sha256)
        .expect("key generation")
        .0
}

fn subject(name: &str, now: OffsetDateTime) -> CaSubject {
    CaSubject {
        common_name: name.into(),
        organization: Some("Tessera tests".into()),
        serial: Serial::random(),
        not_before: now - Duration::hours(1),
        not_after: now + Duration::days(365),
    }
}

/// A root and an issuing CA signed through the linted path.
struct Hierarchy {
    root: SoftwareSigner,
    root_der: Vec<u8>,
    issuing: SoftwareSigner,
    issuing_der: Vec<u8>,
    issuing_subject: CaSubject,
    urls: RevocationUrls,
}

async fn hierarchy() -> Hierarchy {
    let now = OffsetDateTime::now_utc();
    let root = key("root");
    let root_subject = subject("Lint Root", now);
    let expect = root_subject.expectation(Profile::Root, root.public_key_der());
    let root_der =
        sign_self_signed(&root_params(&root_subject), &expect, &root).await.expect("the root passes its lint");
    let urls = RevocationUrls::for_authority("https://ca.test", 1);
    let issuing = key("issuing");
    let issuing_subject = subject("Lint Issuing", now);
    let params = issuing_params(&issuing_subject, &urls).expect("issuing params");
    let expect = issuing_subject.expectation(Profile::IssuingCa, issuing.public_key_der());
    let issuing_der =
        sign_certificate(&params, &expect, &root_der, &root).await.expect("the issuing CA passes its lint");
    Hierarchy { root, root_der, issuing, issuing_der, issuing_subject, urls }
}

fn leaf_names() -> Vec<Identifier> {
    vec![Identifier::dns("api.lint.test").expect("name"), Identifier::uri("spiffe://lint.test/api").expect("uri")]
}

/// A workload's leaf under [`hierarchy`]: what the profile is asked for
/// and what the lint then expects.
struct Leaf {
    hierarchy: Hierarchy,
    workload: SoftwareSigner,
    names: Vec<Identifier>,
    serial: Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

impl Leaf {
    async fn new() -> Self {
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).expect("whole second");
        Self {
            hierarchy: hierarchy().await,
            workload: key("workload"),
            names: leaf_names(),
            serial: Serial::random(),
            not_before: now - Duration::minutes(1),
            not_after: now + Duration::hours(24),
        }
    }

    fn profile(&self) -> LeafProfile<'_> {
        LeafProfile {
            serial: &self.serial,
            names: &self.names,
            key_type: KeyType::EcdsaP256,
            not_before: self.not_before,
            not_after: self.not_after,
            urls: &self.hierarchy.urls,
            crl_url: &self.hierarchy.urls.crl,
        }
    }

    fn expectation(&self) -> CertificateExpectation<'_> {
        CertificateExpectation {
            kind: Profile::Leaf,
            serial: &self.serial,
            names: &self.names,
            not_before: self.not_before,
            not_after: self.not_after,
            subject_spki_der: self.workload.public_key_der(),
        }
    }
}

/// The TBS of `params` signed by `issuer_der`'s key, and the lint's verdict on it.
fn lint(
    params: &rcgen::CertificateParams,
    expect: &CertificateExpectation<'_>,
    issuer_der: &[u8],
    signer: &SoftwareSigner,
) -> Result<(), LintFailure> {
    lint_encoding_key(params, expect.subject_spki_der, expect, issuer_der, signer)
}

/// As [`lint`], with `subject_spki_der` encoded as the subject's key.
fn lint_encoding_key(
    params: &rcgen::CertificateParams,
    subject_spki_der: &[u8],
    expect: &CertificateExpectation<'_>,
    issuer_der: &[u8],
    signer: &SoftwareSigner,
) -> Result<(), LintFailure> {
    let capture = TbsCapture::for_signer(signer).expect("capture");
    let subject = rcgen::SubjectPublicKeyInfo::from_der(subject_spki_der).expect("spki");
    let issuer = rcgen::Issuer::from_ca_cert_der(&issuer_der.into(), &capture).expect("issuer");
    params.signed_by(&subject, &issuer).expect("encoding");
    check_certificate(&capture.take().expect("tbs"), Some(issuer_der), signer.algorithm(), expect)
}

#[tokio::test]
async fn each_broken_leaf_profile_is_refused_with_what_broke() {
    let leaf = Leaf::new().await;
    let (h, profile) = (&leaf.hierarchy, leaf.profile());
    let expect = leaf.expectation();
    let params = leaf_params(&profile).expect("leaf params");
    lint(&params, &expect, &h.issuing_der, &h.issuing).expect("the real leaf profile passes");

    let cases = [
        (ProfileFault::ExtraName, "not the approved"),
        (ProfileFault::LongerValidity, "notAfter"),
        (ProfileFault::CaTrue, "CA:TRUE"),
        (ProfileFault::KeyCertSign, "may sign certificates"),
        (ProfileFault::ShortSerial, "serial"),
        (ProfileFault::BmpSubject, "encoded as BmpString"),
    ];
    for (fault, says) in cases {
        let failure = lint(&corrupt(params.clone(), fault), &expect, &h.issuing_der, &h.issuing)
            .expect_err(&format!("{fault:?} must be refused"));
        assert!(failure.findings.iter().any(|f| f.contains(says)), "{fault:?}: {failure}");
    }
}

#[tokio::test]
async fn what_the_profile_alone_cannot_see_is_refused_too() {
    let leaf = Leaf::new().await;
    let (h, profile) = (&leaf.hierarchy, leaf.profile());
    let params = leaf_params(&profile).expect("leaf params");
    let expect = leaf.expectation();

    // Another key than the one approved.
    let other = key("other");
    let failure = lint_encoding_key(&params, other.public_key_der(), &expect, &h.issuing_der, &h.issuing)
        .expect_err("another key");
    assert!(failure.to_string().contains("public key"), "{failure}");

    // Signed under a CA the names do not lead to (the root, not the issuing CA).
    let capture = TbsCapture::for_signer(&h.root).expect("capture");
    let subject = rcgen::SubjectPublicKeyInfo::from_der(leaf.workload.public_key_der()).expect("spki");
    let root = rcgen::Issuer::from_ca_cert_der(&h.root_der.as_slice().into(), &capture).expect("issuer");
    params.signed_by(&subject, &root).expect("encoding");
    let tbs = capture.take().expect("tbs");
    let failure =
        check_certificate(&tbs, Some(&h.issuing_der), h.issuing.algorithm(), &expect).expect_err("the wrong issuer");
    assert!(failure.to_string().contains("issuer name"), "{failure}");
    assert!(failure.to_string().contains("authority key identifier"), "{failure}");

    // A leaf that outlives its CA.
    let mut late = profile.clone();
    late.not_after = h.issuing_subject.not_after + Duration::days(1);
    let late_expect = CertificateExpectation { not_after: late.not_after, ..expect.clone() };
    let failure = lint(&leaf_params(&late).expect("params"), &late_expect, &h.issuing_der, &h.issuing)
        .expect_err("a leaf outliving its CA");
    assert!(failure.to_string().contains("after the issuing CA's"), "{failure}");

    // A responder profile where a leaf was approved.
    let responder = ocsp_signer_params("Lint Issuing", &leaf.serial, profile.not_before, profile.not_after);
    let failure = lint(&responder, &expect, &h.issuing_der, &h.issuing).expect_err("a responder as a leaf");
    assert!(failure.to_string().contains("extended key usage"), "{failure}");

    // And the responder profile passes as what it is.
    let as_responder = CertificateExpectation { kind: Profile::OcspResponder, names: &[], ..expect.clone() };
    lint(&responder, &as_responder, &h.issuing_der, &h.issuing).expect("the responder profile passes");
}

#[tokio::test]
async fn a_ca_profile_without_its_constraints_is_not_signed() {
    let h = hierarchy().await;
    let next = key("next");
    let subject = subject("Lint Next", OffsetDateTime::now_utc());
    let expect = subject.expectation(Profile::IssuingCa, next.public_key_der());
    let mut params = issuing_params(&subject, &h.urls).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    match sign_certificate(&params, &expect, &h.root_der, &h.root).await {
        Err(SigningError::Lint(failure)) => assert!(failure.to_string().contains("pathLen 0"), "{failure}"),
        other => panic!("an issuing CA without pathLen 0 was not refused: {other:?}"),
    }
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages.retain(|u| *u != rcgen::KeyUsagePurpose::CrlSign);
    match sign_certificate(&params, &expect, &h.root_der, &h.root).await {
        Err(SigningError::Lint(failure)) => assert!(failure.to_string().contains("cRLSign"), "{failure}"),
        other => panic!("an issuing CA that cannot sign CRLs was not refused: {other:?}"),
    }
    let _ = h.issuing_subject;
}

#[test]
fn an_ocsp_answer_other_than_the_status_known_is_not_signed() {
    use der_07::Encode;
    use der_07::asn1::{GeneralizedTime, Null, ObjectIdentifier, OctetString};
    use x509_ocsp::{CertId, CertStatus, OcspGeneralizedTime, ResponderId, ResponseData, SingleResponse, Version};

    use super::{ExpectedStatus, OcspExpectation, check_ocsp_response};

    let at = |unix: u64| {
        OcspGeneralizedTime(
            GeneralizedTime::from_unix_duration(std::time::Duration::from_secs(unix)).expect("test value"),
        )
    };
    let cert_id = CertId {
        hash_algorithm: spki_07::AlgorithmIdentifierOwned {
            oid: ObjectIdentifier::new_unwrap("1.3.14.3.2.26"),
            parameters: None,
        },
        issuer_name_hash: OctetString::new(vec![1; 20]).expect("test value"),
        issuer_key_hash: OctetString::new(vec![2; 20]).expect("test value"),
        serial_number: x509_cert_02::serial_number::SerialNumber::new(&[0x11; 16]).expect("test value"),
    };
    let key_hash = vec![3; 20];
    let data = ResponseData {
        version: Version::V1,
        responder_id: ResponderId::ByKey(OctetString::new(key_hash.clone()).expect("test value")),
        produced_at: at(1_000),
        responses: vec![SingleResponse {
            cert_id: cert_id.clone(),
            cert_status: CertStatus::Good(Null),
            this_update: at(1_000),
            next_update: Some(at(2_000)),
            single_extensions: None,
        }],
        response_extensions: None,
    };
    let tbs = data.to_der().expect("test value");
    let expect = |status| OcspExpectation {
        responder_key_hash: &key_hash,
        answers: vec![(&cert_id, status)],
        produced_at: 1_000,
        this_update: 1_000,
        next_update: 2_000,
        nonce: None,
    };
    check_ocsp_response(&tbs, &expect(ExpectedStatus::Good)).expect("the answer known passes");
    let failure =
        check_ocsp_response(&tbs, &expect(ExpectedStatus::Revoked { at: 900 })).expect_err("good for revoked");
    assert!(failure.to_string().contains("is answered Good"), "{failure}");
    let asked_nonce = OcspExpectation { nonce: Some(b"nonce"), ..expect(ExpectedStatus::Good) };
    let failure = check_ocsp_response(&tbs, &asked_nonce).expect_err("a nonce not echoed");
    assert!(failure.to_string().contains("not echoed"), "{failure}");
    let other_responder = OcspExpectation { responder_key_hash: &[4; 20], ..expect(ExpectedStatus::Good) };
    check_ocsp_response(&tbs, &other_responder).expect_err("another responder");
}
