//! What a relying party does with Tessera's revocation data, done with the
//! openssl CLI: `openssl ocsp` against the responder and
//! `openssl verify -crl_check` with downloaded CRLs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::TestCa;

/// Files a relying party holds for one leaf.
pub struct LeafFiles {
    pub dir: PathBuf,
    pub leaf: PathBuf,
    pub issuer: PathBuf,
    pub root: PathBuf,
    pub serial: String,
}

impl LeafFiles {
    /// Writes the leaf and its issuing CA (from a REST issuance answer).
    pub fn new(ca: &TestCa, issued: &serde_json::Value, name: &str) -> Self {
        let chain = issued["chain"].as_str().unwrap();
        let issuer_pem = chain.split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap();
        let root_pem = issued["root"].as_str().unwrap();
        Self::from_pems(ca, name, issued["certificate"].as_str().unwrap(), issuer_pem, root_pem)
    }

    /// Writes a leaf, its issuing CA and the root, as a client installed them.
    pub fn from_pems(ca: &TestCa, name: &str, leaf_pem: &str, issuer_pem: &str, root_pem: &str) -> Self {
        let dir = ca.dir.path().join(format!("rp-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        let leaf = dir.join("leaf.pem");
        std::fs::write(&leaf, leaf_pem).unwrap();
        let issuer = dir.join("issuer.pem");
        std::fs::write(&issuer, issuer_pem).unwrap();
        let root = dir.join("root.pem");
        std::fs::write(&root, root_pem).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(leaf_pem.as_bytes()).unwrap();
        let serial = hex::encode(pem.parse_x509().unwrap().raw_serial());
        Self { dir, leaf, issuer, root, serial }
    }

    fn ocsp_args(&self) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "-issuer".into(),
            path(&self.issuer),
            "-cert".into(),
            path(&self.leaf),
            "-CAfile".into(),
            path(&self.root),
            "-verify_other".into(),
            path(&self.issuer),
        ]
    }

    /// Asks the responder over POST; returns openssl's whole output.
    pub fn ocsp_post(&self, ocsp_url: &str, extra: &[&str]) -> String {
        let out = Command::new("openssl")
            .arg("ocsp")
            .args(extra)
            .args(self.ocsp_args())
            .args(["-url", ocsp_url])
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// Writes a DER OCSP request without a nonce (what GET carries).
    pub fn ocsp_request(&self, extra: &[&str]) -> Vec<u8> {
        let path = self.dir.join("request.der");
        let out = Command::new("openssl")
            .args(["ocsp", "-no_nonce", "-reqout"])
            .arg(&path)
            .args(extra)
            .args(["-issuer"])
            .arg(&self.issuer)
            .arg("-cert")
            .arg(&self.leaf)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(path).unwrap()
    }

    /// Checks a DER response with openssl; returns its whole output.
    pub fn ocsp_check_response(&self, response: &[u8]) -> String {
        let path = self.dir.join("response.der");
        std::fs::write(&path, response).unwrap();
        let out = Command::new("openssl").args(["ocsp", "-respin"]).arg(&path).args(self.ocsp_args()).output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// The status a DER response gives `serial` (hex), once openssl has
    /// verified its signature through the responder certificate to the
    /// root. Panics unless the response answers for exactly that serial.
    pub fn ocsp_status_of(&self, response: &[u8], serial: &str) -> CertStatus {
        let checked = self.ocsp_check_response(response);
        assert!(checked.contains("Response verify OK"), "{checked}");
        let answers = ocsp_answers(response);
        match answers.as_slice() {
            [(answered, status)] if answered == serial => *status,
            _ => panic!("asked about {serial}, answered {answers:?}"),
        }
    }

    /// `openssl verify -crl_check` (or `-crl_check_all`) with these CRLs.
    pub fn verify_with_crls(&self, crls_der: &[&[u8]], all: bool) -> String {
        let crl_path = self.dir.join("crls.pem");
        let pem: String = crls_der.iter().map(|der| pem::encode(&pem::Pem::new("X509 CRL", der.to_vec()))).collect();
        std::fs::write(&crl_path, pem).unwrap();
        let out = Command::new("openssl")
            .arg("verify")
            .arg(if all { "-crl_check_all" } else { "-crl_check" })
            .arg("-CAfile")
            .arg(&self.root)
            .arg("-untrusted")
            .arg(&self.issuer)
            .arg("-CRLfile")
            .arg(&crl_path)
            .arg(&self.leaf)
            .output()
            .unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    }

    /// The leaf's OCSP responder URL (its authority information access).
    pub fn ocsp_url(&self) -> String {
        let out =
            Command::new("openssl").args(["x509", "-noout", "-ocsp_uri", "-in"]).arg(&self.leaf).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// The leaf's CRL distribution point URL.
    pub fn crl_url(&self) -> String {
        let pem_text = std::fs::read(&self.leaf).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_text).unwrap();
        let cert = pem.parse_x509().unwrap();
        for ext in cert.extensions() {
            if let x509_parser::extensions::ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
                for point in points.iter() {
                    if let Some(x509_parser::extensions::DistributionPointName::FullName(names)) =
                        &point.distribution_point
                    {
                        for name in names {
                            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                                return uri.to_string();
                            }
                        }
                    }
                }
            }
        }
        panic!("the leaf has no CRL distribution point");
    }
}

/// A certificate's status in an OCSP answer (RFC 6960 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Good,
    Revoked,
    Unknown,
}

/// Each (serial in hex, status) a DER OCSP response answers. Panics unless
/// the response is `successful` and carries a BasicOCSPResponse.
pub fn ocsp_answers(response: &[u8]) -> Vec<(String, CertStatus)> {
    use der_07::Decode;
    let parsed = x509_ocsp::OcspResponse::from_der(response).expect("an OCSPResponse");
    assert_eq!(parsed.response_status, x509_ocsp::OcspResponseStatus::Successful, "{response:02x?}");
    let bytes = parsed.response_bytes.expect("a successful response carries responseBytes");
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("a BasicOCSPResponse");
    basic
        .tbs_response_data
        .responses
        .iter()
        .map(|single| {
            let status = match single.cert_status {
                x509_ocsp::CertStatus::Good(_) => CertStatus::Good,
                x509_ocsp::CertStatus::Revoked(_) => CertStatus::Revoked,
                x509_ocsp::CertStatus::Unknown(_) => CertStatus::Unknown,
            };
            (hex::encode(single.cert_id.serial_number.as_bytes()), status)
        })
        .collect()
}

/// `openssl crl -text` of a DER CRL.
pub fn crl_text(der: &[u8], dir: &Path) -> String {
    let path = dir.join("crl-under-test.der");
    std::fs::write(&path, der).unwrap();
    let out =
        Command::new("openssl").args(["crl", "-inform", "DER", "-noout", "-text", "-in"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Downloads a CRL until `done` holds for its text (the CRL job follows a
/// revocation within seconds).
pub async fn crl_until(ca: &TestCa, path: &str, done: impl Fn(&str) -> bool) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let response = reqwest::get(ca.http_url(path)).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let der = response.bytes().await.unwrap().to_vec();
        if done(&crl_text(&der, ca.dir.path())) {
            return der;
        }
        assert!(Instant::now() < deadline, "{path} did not change in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `/crl/...` path of the leaf's CRL distribution point.
pub fn crl_path(leaf: &LeafFiles) -> String {
    format!("/crl/{}", leaf.crl_url().rsplit("/crl/").next().unwrap())
}

/// `/trust-bundle.pem` from the public HTTP listener.
pub async fn trust_bundle(ca: &TestCa) -> String {
    let response = reqwest::get(ca.http_url("/trust-bundle.pem")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pem-certificate-chain");
    response.text().await.unwrap()
}
