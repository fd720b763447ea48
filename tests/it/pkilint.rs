//! A second opinion on what Tessera signs: pkilint's RFC 5280 linter on
//! one certificate of each kind, its CRL linter on the full, sharded and
//! root CRLs, and its RFC 6960 linter on a good and a revoked OCSP answer,
//! all from a running dev CA. Any error-level finding fails the test.
//!
//! pkilint comes from the venv `scripts/test.sh` installs it into
//! (`TESSERA_PKILINT_VENV`), or from PATH. Without it the test is skipped,
//! saying so, unless `TESSERA_TEST_PKILINT=required` (set by
//! `scripts/test.sh`) or a CI run makes its absence a failure.
//!
//! One backend is enough: what the objects hold comes from the profile and
//! the revocation code, which no SQL touches. The CA names its CRL and OCSP
//! host as a deployment does (`public_base_url`): the harness's listeners
//! bind port 0, and URLs naming port 0 are refused, rightly, by pkilint.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::relying_party::{CertStatus, LeafFiles, crl_until};
use crate::common::{Backend, TestCa, csr_for, is_ci, skip};
use der_07::{Decode, Encode};
use serde_json::{Value, json};
use tessera::config::AcmeOverrides;

/// The SPIFFE leaf's URI: pkilint's generic URI check does not know the
/// `spiffe` scheme and reports it; the waiver below covers exactly that.
const SPIFFE_ID: &str = "spiffe://tessera.test/ns/payments/sa/api";

#[derive(Debug, Clone, Copy)]
enum Linter {
    Certificate,
    Crl,
    /// A CRL that lists CA certificates (the root's).
    Arl,
    OcspResponse,
}

impl Linter {
    fn command(self, venv_bin: &Path, file: &Path) -> Command {
        let (program, extra): (&str, &[&str]) = match self {
            Self::Certificate => ("lint_pkix_cert", &[]),
            Self::Crl => ("lint_crl", &["-t", "CRL", "-p", "PKIX"]),
            Self::Arl => ("lint_crl", &["-t", "ARL", "-p", "PKIX"]),
            Self::OcspResponse => ("lint_ocsp_response", &[]),
        };
        let mut command = Command::new(venv_bin.join(program));
        command.arg("lint").args(extra).args(["-s", "ERROR", "-f", "JSON", "--document-format", "DER"]).arg(file);
        command
    }
}

/// The directory holding pkilint's commands, if it is installed.
fn pkilint_bin() -> Option<PathBuf> {
    let venv = std::env::var_os("TESSERA_PKILINT_VENV").map(|v| PathBuf::from(v).join("bin"));
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>());
    venv.into_iter().chain(on_path).find(|dir| dir.join("lint_pkix_cert").is_file())
}

/// One finding at error level or above.
#[derive(Debug)]
struct Finding {
    path: String,
    code: String,
    message: String,
}

fn findings(report: &Value) -> Vec<Finding> {
    let mut out = Vec::new();
    for result in report["results"].as_array().into_iter().flatten() {
        for finding in result["finding_descriptions"].as_array().into_iter().flatten() {
            out.push(Finding {
                path: result["node_path"].as_str().unwrap_or_default().to_owned(),
                code: finding["code"].as_str().unwrap_or_default().to_owned(),
                message: finding["message"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    out
}

/// Whether `uri` is a SPIFFE ID (SPIFFE-ID.md §2): `spiffe://`, a trust
/// domain of lowercase letters, digits, '-', '.' and '_', and a path of
/// non-empty segments of letters, digits, '-', '.' and '_' (not `.` or `..`).
fn is_spiffe_id(uri: &str) -> bool {
    let Some(rest) = uri.strip_prefix("spiffe://") else { return false };
    let (domain, path) = rest.split_once('/').map_or((rest, ""), |(d, p)| (d, p));
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    let path_ok = path.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    });
    domain_ok && (path.is_empty() || path_ok) && !uri.ends_with('/')
}

/// The findings pkilint makes where the standards it checks say otherwise;
/// each waiver is printed with its reason.
///
/// - pkilint checks URIs against the grammar of the schemes it knows and
///   reports `spiffe:` ones: a SPIFFE ID that the SPIFFE rules accept is
///   waived.
/// - pkilint wants a dNSName of two labels or more: `localhost`, which
///   Tessera's own TLS certificate carries in dev mode (the test client
///   reaches the CA by it), is valid RFC 1034 §3.5 preferred name syntax,
///   what RFC 5280 §4.2.1.6 asks for.
fn waiver(finding: &Finding) -> Option<String> {
    let quoted = |prefix: &str| finding.message.strip_prefix(prefix)?.strip_suffix('"');
    match finding.code.as_str() {
        "pkix.invalid_uri_syntax" if finding.path.ends_with("subjectAltName.0.uniformResourceIdentifier") => {
            let uri = quoted("Invalid URI syntax: \"").filter(|uri| is_spiffe_id(uri))?;
            Some(format!("{uri} is a valid SPIFFE ID; pkilint's generic URI check does not know the spiffe scheme"))
        }
        "pkix.invalid_domain_name_syntax" if finding.path.ends_with("dNSName") => {
            quoted("Invalid domain name syntax: \"").filter(|name| *name == "localhost")?;
            Some("localhost is a single-label name in RFC 1034 preferred name syntax, as RFC 5280 asks".into())
        }
        _ => None,
    }
}

/// Lints each object; returns what it found that is not waived.
fn lint_all(bin: &Path, dir: &Path, objects: &[(&str, Linter, Vec<u8>)]) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, linter, der) in objects {
        let file = dir.join(format!("{}.der", name.replace(' ', "-")));
        std::fs::write(&file, der).unwrap();
        let out = linter.command(bin, &file).output().unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{name}: pkilint said no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        for finding in findings(&report) {
            match waiver(&finding) {
                Some(reason) => println!("{name}: WAIVED {} at {}: {reason}", finding.code, finding.path),
                None => failures.push(format!("{name}: {} at {}: {}", finding.code, finding.path, finding.message)),
            }
        }
        println!("{name}: linted ({linter:?})");
    }
    failures
}

fn first_certificate(pem_text: &str) -> Vec<u8> {
    pem::parse_many(pem_text).unwrap().into_iter().find(|b| b.tag() == "CERTIFICATE").unwrap().into_contents()
}

async fn fetch(ca: &TestCa, path: &str) -> Vec<u8> {
    let response = reqwest::get(ca.http_url(path)).await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.bytes().await.unwrap().to_vec()
}

async fn ocsp(ca: &TestCa, leaf: &LeafFiles, expected: CertStatus) -> Vec<u8> {
    let response = reqwest::Client::new()
        .post(ca.http_url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(leaf.ocsp_request(&[]))
        .send()
        .await
        .unwrap();
    let der = response.bytes().await.unwrap().to_vec();
    assert_eq!(leaf.ocsp_status_of(&der, &leaf.serial), expected);
    der
}

/// The delegated responder's certificate, as its answers carry it.
fn responder_certificate(ocsp_der: &[u8]) -> Vec<u8> {
    let response = x509_ocsp::OcspResponse::from_der(ocsp_der).unwrap();
    let basic = x509_ocsp::BasicOcspResponse::from_der(response.response_bytes.unwrap().response.as_bytes()).unwrap();
    basic.certs.unwrap().first().unwrap().to_der().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkilint_finds_no_error_in_what_tessera_signs() {
    let Some(bin) = pkilint_bin() else {
        let required = is_ci() || std::env::var("TESSERA_TEST_PKILINT").is_ok_and(|v| v == "required");
        assert!(
            !required,
            "pkilint is not installed (scripts/test.sh installs it; TESSERA_PKILINT_VENV names its venv)"
        );
        skip("pkilint is not installed; scripts/test.sh installs it");
        return;
    };
    let ca = TestCa::start_acme_with(Backend::Sqlite, AcmeOverrides::default(), |config| {
        config.revocation.crl_shards = 4;
        config.public_base_url = Some("http://pki.tessera.test:8080".into());
    })
    .await
    .expect("sqlite is always available");

    let tls = ca.sign(&csr_for(&["web.test", "127.0.0.1"])).await;
    let spiffe = ca.sign(&csr_for(&[SPIFFE_ID])).await;
    let revoked = ca.sign(&csr_for(&["revoked.test"])).await;
    let tls_files = LeafFiles::new(&ca, &tls, "web");
    let revoked_files = LeafFiles::new(&ca, &revoked, "revoked");
    let (status, body) = ca
        .post(
            &format!("/api/v1/certificates/{}/revoke", revoked_files.serial),
            Some(&ca.admin_token),
            &json!({"reason": "keyCompromise"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let good_answer = ocsp(&ca, &tls_files, CertStatus::Good).await;
    let revoked_answer = ocsp(&ca, &revoked_files, CertStatus::Revoked).await;
    let shard_path = format!("/crl/{}", revoked_files.crl_url().rsplit("/crl/").next().unwrap());
    let revoked_serial = format!("Serial Number: {}", revoked_files.serial.to_uppercase());
    let shard_crl = crl_until(&ca, &shard_path, |text| text.contains(&revoked_serial)).await;
    let (status, authorities) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{authorities}");
    let id_of = |kind: &str| {
        authorities
            .as_array()
            .or_else(|| authorities["items"].as_array())
            .into_iter()
            .flatten()
            .find(|a| a["kind"] == kind && a["status"] != "retired")
            .map(|a| a["id"].as_i64().unwrap())
            .unwrap_or_else(|| panic!("no {kind} authority in {authorities}"))
    };
    let full_crl =
        crl_until(&ca, &format!("/crl/{}.crl", id_of("issuing")), |text| text.contains(&revoked_serial)).await;
    let root_crl = fetch(&ca, &format!("/crl/{}.crl", id_of("root"))).await;
    let server_tls = std::fs::read_to_string(ca.dir.path().join("tls/server.crt")).unwrap();

    let objects = [
        ("root CA", Linter::Certificate, first_certificate(&std::fs::read_to_string(ca.root_pem_path()).unwrap())),
        ("issuing CA", Linter::Certificate, first_certificate(&std::fs::read_to_string(&tls_files.issuer).unwrap())),
        ("TLS leaf", Linter::Certificate, first_certificate(tls["certificate"].as_str().unwrap())),
        ("SPIFFE leaf", Linter::Certificate, first_certificate(spiffe["certificate"].as_str().unwrap())),
        ("Tessera's TLS certificate", Linter::Certificate, first_certificate(&server_tls)),
        ("OCSP responder certificate", Linter::Certificate, responder_certificate(&good_answer)),
        ("full CRL", Linter::Crl, full_crl),
        ("sharded CRL", Linter::Crl, shard_crl),
        ("root CRL", Linter::Arl, root_crl),
        ("OCSP good", Linter::OcspResponse, good_answer),
        ("OCSP revoked", Linter::OcspResponse, revoked_answer),
    ];
    let dir = ca.dir.path().join("pkilint");
    std::fs::create_dir_all(&dir).unwrap();
    let failures = lint_all(&bin, &dir, &objects);
    ca.stop().await;
    assert!(failures.is_empty(), "pkilint found errors:\n{}", failures.join("\n"));
}

#[test]
fn waivers_cover_spiffe_ids_and_localhost_only() {
    let finding = |uri: &str| Finding {
        path: "certificate.tbsCertificate.extensions.3.extnValue.subjectAltName.0.uniformResourceIdentifier".into(),
        code: "pkix.invalid_uri_syntax".into(),
        message: format!("Invalid URI syntax: \"{uri}\""),
    };
    assert!(waiver(&finding(SPIFFE_ID)).is_some());
    for not_spiffe in
        ["spiffe://Tessera.test/x", "spiffe://tessera.test/a//b", "spiffe://tessera.test/a/", "https://x/ y"]
    {
        assert!(waiver(&finding(not_spiffe)).is_none(), "{not_spiffe}");
    }
    let other = Finding { code: "pkix.name_empty".into(), ..finding(SPIFFE_ID) };
    assert!(waiver(&other).is_none());
    let dns = |name: &str| Finding {
        path: "certificate.tbsCertificate.extensions.1.extnValue.subjectAltName.0.dNSName".into(),
        code: "pkix.invalid_domain_name_syntax".into(),
        message: format!("Invalid domain name syntax: \"{name}\""),
    };
    assert!(waiver(&dns("localhost")).is_some());
    assert!(waiver(&dns("web")).is_none());
}
