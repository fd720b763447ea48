//! OCSP requests (RFC 6960 §4.1): the DER parser, and the responder behind
//! its HTTP routes (POST, and the RFC 5019 GET path) with a real CA.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use der_07::asn1::OctetString;
use der_07::{Decode, Encode};
use http_body_util::BodyExt;
use tessera::clock::{SharedClock, SystemClock};
use tessera::config::Config;
use tessera::issuance::{CertificateIssuer, CheckedCsr, Identifier, IssueRequest};
use tessera::metrics::Metrics;
use tessera::revocation::Revocation;
use tessera::revocation::ocsp::request;
use tessera::secrets::Sealer;
use tessera::setup::{bootstrap_dev, load_signing_authority};
use tessera::storage::{Db, DbOptions, NewAuditEvent};
use tower::ServiceExt;
use x509_ocsp::{BasicOcspResponse, OcspRequest, OcspResponse, OcspResponseStatus};

use crate::test_keys::csr_key;

/// DER bytes, as `POST /ocsp` hands them to the parser.
pub fn ocsp_request(data: &[u8]) {
    if let Ok(parsed) = request::parse(data) {
        assert!(!parsed.queries.is_empty() && parsed.queries.len() <= 32, "{} queries", parsed.queries.len());
    }
}

/// How an input reaches the responder; the first byte chooses.
#[derive(Debug, Clone, Copy)]
enum Route {
    /// `GET /ocsp/{rest}`: the rest is the path as the handler sees it.
    GetPath,
    /// `GET /ocsp/{base64 of rest}`, in one of the encodings clients use.
    GetEncoded { url_safe: bool, escape: bool },
    /// `POST /ocsp` with the rest as its body.
    Post,
    /// The rest as a request about this CA's certificates (below), by POST or GET.
    Aimed { by_get: bool },
}

impl Route {
    fn from_byte(byte: u8) -> Self {
        match byte % 8 {
            0 => Self::GetPath,
            1 => Self::GetEncoded { url_safe: false, escape: true },
            2 => Self::GetEncoded { url_safe: false, escape: false },
            3 => Self::GetEncoded { url_safe: true, escape: false },
            4 => Self::Post,
            5 => Self::Aimed { by_get: true },
            _ => Self::Aimed { by_get: false },
        }
    }
}

/// The first byte picks the route, the rest is the request. Aimed requests
/// have every CertID's issuer hashes replaced by this CA's, and serial 1
/// and 2 by a good and a revoked certificate's, so they get past the
/// issuer check to the status lookup and the signature. Every answer is an
/// OCSPResponse; an aimed request the parser accepts gets a successful one
/// with one answer per certificate asked about.
pub fn ocsp_responder(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let ca = ResponderCa::get();
    let route = Route::from_byte(first);
    let (request, aimed) = match route {
        Route::GetPath => (get(&escape_path(rest)), None),
        Route::GetEncoded { url_safe, escape } => {
            let text = if url_safe { URL_SAFE.encode(rest) } else { STANDARD.encode(rest) };
            (get(&if escape { escape_path(text.as_bytes()) } else { text }), None)
        }
        Route::Post => (post(rest.to_vec()), None),
        Route::Aimed { by_get } => {
            let Some(der) = ca.aim(rest) else { return };
            let parsed = request::parse(&der).ok();
            let request = if by_get { get(&escape_path(URL_SAFE_NO_PAD.encode(&der).as_bytes())) } else { post(der) };
            (request, parsed)
        }
    };
    let Some(request) = request else { return };
    let (status, body) = ca.send(request);
    assert!(!status.is_server_error(), "{route:?} answered {status}");
    if status != StatusCode::OK {
        return;
    }
    let response = OcspResponse::from_der(&body).expect("the responder answers with an OCSPResponse");
    if let Some(parsed) = aimed {
        assert_eq!(response.response_status, OcspResponseStatus::Successful, "an aimed request was refused");
        let bytes = response.response_bytes.expect("a successful response has its bytes");
        let basic = BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("a BasicOCSPResponse");
        assert_eq!(basic.tbs_response_data.responses.len(), parsed.queries.len());
    }
}

fn get(path: &str) -> Option<Request<Body>> {
    Request::get(format!("/ocsp/{path}")).body(Body::empty()).ok()
}

fn post(der: Vec<u8>) -> Option<Request<Body>> {
    Request::post("/ocsp").header("content-type", "application/ocsp-request").body(Body::from(der)).ok()
}

/// Percent-encodes all but unreserved characters, so the handler receives
/// exactly these bytes once the router has decoded the path.
fn escape_path(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(*b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A dev CA with one good and one revoked leaf, and its revocation routes.
struct ResponderCa {
    runtime: tokio::runtime::Runtime,
    router: Router,
    good_serial: Vec<u8>,
    revoked_serial: Vec<u8>,
    /// (issuer name hash, issuer key hash) under SHA-1 and under SHA-256.
    sha1: (Vec<u8>, Vec<u8>),
    sha256: (Vec<u8>, Vec<u8>),
    _dir: tempfile::TempDir,
}

const SHA1: der_07::asn1::ObjectIdentifier = der_07::asn1::ObjectIdentifier::new_unwrap("1.3.14.3.2.26");
const SHA256: der_07::asn1::ObjectIdentifier = der_07::asn1::ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

impl ResponderCa {
    fn get() -> &'static Self {
        static CA: OnceLock<ResponderCa> = OnceLock::new();
        CA.get_or_init(Self::start)
    }

    fn start() -> Self {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the responder");
        let dir = tempfile::tempdir().expect("a data directory");
        let config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        let (router, good_serial, revoked_serial, issuer_der) = runtime.block_on(async {
            let clock: SharedClock = Arc::new(SystemClock);
            let db = Db::connect(&DbOptions::new(config.database_url())).await.expect("the SQLite database");
            db.migrate().await.expect("migrations");
            bootstrap_dev(&config, &db, &clock).await.expect("the dev CA");
            let kek = config.kek_sources().expect("the dev KEK");
            let sealer =
                Sealer::load(&kek, &config.keys.awskms, db.secrets(), clock.clone()).await.expect("the sealer");
            let authority =
                load_signing_authority(&config, &sealer, &db.catalog()).await.expect("the signing authority");
            let issuer_der = authority.certificate_der.clone();
            let issuer = CertificateIssuer::new(db.ledger(), clock.clone(), authority);
            let revocation = Revocation::load(
                &config,
                &db.revocation(),
                &db.leases(),
                &clock,
                &issuer,
                &sealer,
                &Metrics::default(),
            )
            .await
            .expect("the responder");
            let good = issue(&issuer, "good.test").await;
            let revoked = issue(&issuer, "revoked.test").await;
            let audit = NewAuditEvent {
                at: clock.unix(),
                actor: "fuzz".into(),
                action: "certificate.revoke",
                target: hex(&revoked),
                detail: serde_json::json!({}),
            };
            let record =
                db.revocation().revoke_certificate(&revoked, clock.unix(), 1, &audit).await.expect("revocation");
            revocation.revoked(&record.record);
            (tessera::http::revocation::router(revocation), good, revoked, issuer_der)
        });
        let issuer = x509_cert_02::Certificate::from_der(&issuer_der).expect("the issuing CA certificate");
        let name = issuer.tbs_certificate.subject.to_der().expect("the issuer's name");
        let key = issuer.tbs_certificate.subject_public_key_info.subject_public_key.raw_bytes().to_vec();
        let digest = |alg, data: &[u8]| aws_lc_rs::digest::digest(alg, data).as_ref().to_vec();
        let sha1 = &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY;
        let sha256 = &aws_lc_rs::digest::SHA256;
        Self {
            runtime,
            router,
            good_serial,
            revoked_serial,
            sha1: (digest(sha1, &name), digest(sha1, &key)),
            sha256: (digest(sha256, &name), digest(sha256, &key)),
            _dir: dir,
        }
    }

    /// `der` with its CertIDs pointed at this CA, or None if it is no OCSPRequest.
    fn aim(&self, der: &[u8]) -> Option<Vec<u8>> {
        let mut request = OcspRequest::from_der(der).ok()?;
        for query in &mut request.tbs_request.request_list {
            let id = &mut query.req_cert;
            let hashes = match id.hash_algorithm.oid {
                SHA1 => &self.sha1,
                SHA256 => &self.sha256,
                _ => continue,
            };
            id.issuer_name_hash = OctetString::new(hashes.0.clone()).ok()?;
            id.issuer_key_hash = OctetString::new(hashes.1.clone()).ok()?;
            let serial = match id.serial_number.as_bytes() {
                [1] => Some(&self.good_serial),
                [2] => Some(&self.revoked_serial),
                _ => None,
            };
            if let Some(serial) = serial {
                id.serial_number = x509_cert_02::serial_number::SerialNumber::new(serial).ok()?;
            }
        }
        request.to_der().ok()
    }

    fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        self.runtime.block_on(async {
            let response = self.router.clone().oneshot(request).await.expect("the router answers");
            let status = response.status();
            let body = response.into_body().collect().await.expect("the response body").to_bytes().to_vec();
            (status, body)
        })
    }
}

async fn issue(issuer: &CertificateIssuer, name: &str) -> Vec<u8> {
    let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("a CSR for a valid name");
    let der = params.serialize_request(csr_key()).expect("a CSR").der().to_vec();
    let csr = CheckedCsr::parse_der(&der).expect("a valid CSR");
    let request = IssueRequest {
        csr: &csr,
        names: vec![Identifier::dns(name).expect("a DNS name")],
        ttl: time::Duration::hours(1),
        not_before: None,
        requester: "fuzz".into(),
        kind: tessera::storage::CertificateKind::Workload,
        policy: None,
    };
    issuer.issue(&request).await.expect("issuance").serial.as_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
