//! The certificate lifecycle end to end with the real `tessera-agent`, in
//! compressed time (certificates of 100 to 300 seconds, on the real clock,
//! which the agent runs on; deadlines and the overdue point leave room for
//! a busy two-core machine):
//! while the agent runs, its renewals link as successors and nothing shows
//! as overdue; once it is stopped, the expirations API, the metrics and a
//! signed webhook all report its certificate overdue. And an issuing CA
//! rotation as the agent lives it: ARI pulls its renewal forward, and its
//! next certificate chains to the new
//! authority through the trust bundle, while OCSP and the CRL of the retired
//! one still answer for its previous leaf, revoked included. Renewal several
//! times in a row with nobody acting is `tests/agent.rs`.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::acme::ari_cert_id;
use crate::common::agent::{AgentSetup, RunningAgent, certificates, serial, snapshots, split_chain};
use crate::common::relying_party::{LeafFiles, crl_path, crl_until, trust_bundle};
use crate::common::webhook::{Receiver, verify_signature, with_webhook};
use crate::common::{Backend, TestCa, openssl_verify};
use serde_json::{Value, json};

const OVERDUE_SERIES: &str = r#"tessera_certificates_overdue{authority="issuing"}"#;
const HOOK_SECRET: &str = "lifecycle-e2e-hook-secret";
/// The overdue point these runs configure: later than the default 80% so
/// an agent that renews late in ARI's window (which closes at 75%) still
/// has a quarter of a minute before its certificate is overdue.
const OVERDUE_SHARE: f64 = 0.9;

/// One installed certificate, as the agent's reload command saved it.
struct Installed {
    leaf_pem: String,
    issuers_pem: String,
    der: Vec<u8>,
    serial: String,
}

impl Installed {
    fn read(path: &Path) -> Self {
        let full_chain = std::fs::read_to_string(path).unwrap();
        let (leaf_pem, issuers_pem) = split_chain(&full_chain);
        let der = certificates(&full_chain).swap_remove(0);
        let serial = serial(&der);
        Self { leaf_pem, issuers_pem, der, serial }
    }

    /// The PEM of the CA that signed it (the chain's first certificate).
    fn issuer_pem(&self) -> String {
        self.issuers_pem.split_inclusive("-----END CERTIFICATE-----\n").next().unwrap().to_owned()
    }

    /// (not_before, not_after) as Unix seconds.
    fn validity(&self) -> (i64, i64) {
        let (_, cert) = x509_parser::parse_x509_certificate(&self.der).unwrap();
        (cert.validity().not_before.timestamp(), cert.validity().not_after.timestamp())
    }

    /// Whether the CA whose PEM the admin API shows signed it.
    fn is_issued_by(&self, authority: &Value) -> bool {
        let authority_der = pem::parse(authority["certificate"].as_str().unwrap()).unwrap().into_contents();
        pem::parse(self.issuer_pem()).unwrap().into_contents() == authority_der
    }

    /// When it becomes overdue with no successor.
    fn overdue_at(&self) -> i64 {
        let (not_before, not_after) = self.validity();
        not_before + ((not_after - not_before) as f64 * OVERDUE_SHARE) as i64
    }
}

fn installed(dir: &Path) -> Vec<Installed> {
    snapshots(dir).iter().map(|p| Installed::read(p)).collect()
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The issuing authority's line of `GET /api/v1/expirations`.
async fn issuing_line(ca: &TestCa) -> Value {
    let (status, body) = ca.get("/api/v1/expirations", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["authorities"].as_array().unwrap().iter().find(|a| a["name"] == "issuing").unwrap().clone()
}

/// The agent's certificate as the admin API shows it.
async fn certificate_view(ca: &TestCa, serial: &str) -> Value {
    let (status, body) = ca.get(&format!("/api/v1/certificates/{serial}"), Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Under a policy of 100-second certificates (90% reached 30 s after
/// issue; ARI says renew 6 to 15 s after issue) the running agent keeps
/// every certificate from going overdue; stopped, its last one goes
/// overdue and the API, the metrics and the webhook receiver all say so.
async fn a_stopped_agent_goes_overdue(backend: Backend) {
    let hook = Receiver::start(0).await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_path = secrets.path().join("hook-secret");
    std::fs::write(&secret_path, format!("{HOOK_SECRET}\n")).unwrap();
    let overdue_late = |c: &mut tessera::config::Config| {
        with_webhook(c, &hook.url, secret_path);
        c.lifecycle.overdue_share = OVERDUE_SHARE;
    };
    let Some(s) = AgentSetup::start_with(backend, overdue_late).await else { return };
    let (kid, hmac) = s.short_lived_eab_key().await;
    let reloads = s.path("reloads");
    let mut args = s.args(&kid, &hmac, &["overdue.agent.test"]);
    args.extend(s.http01());
    args.extend(s.snapshotting_reload(&reloads));
    let agent = RunningAgent::start(&args, s.path("agent.log"));

    // Watch until the agent has renewed twice and its first certificate's
    // 80% point lies well behind: at no poll is anything overdue.
    let started = Instant::now();
    let mut polls = 0;
    loop {
        let certs = installed(&reloads);
        if certs.len() >= 3 && unix_now() > certs[0].overdue_at() + 2 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(180), "two renewals in 180 s:\n{}", agent.log());
        let line = issuing_line(&s.ca).await;
        assert_eq!(line["overdue"], 0, "overdue while the agent runs: {line}\n{}", agent.log());
        assert_eq!(s.ca.metric(OVERDUE_SERIES).await, Some(0.0));
        assert!(hook.requests().is_empty(), "a webhook while the agent runs: {:?}", hook.requests());
        polls += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    drop(agent);
    assert!(polls >= 20, "only {polls} polls");

    // Each renewal linked to its predecessor: same requester (the ACME
    // account) and identifiers, and the order named it in `replaces`.
    let certs = installed(&reloads);
    let first = certificate_view(&s.ca, &certs[0].serial).await;
    assert!(first["requester"].as_str().unwrap().starts_with("acme:"), "{first}");
    for pair in certs.windows(2) {
        let view = certificate_view(&s.ca, &pair[1].serial).await;
        assert_eq!((&view["requester"], &view["identifiers"]), (&first["requester"], &first["identifiers"]));
        let replaced_by = s.ca.db.acme().acme_replacements(&hex::decode(&pair[0].serial).unwrap()).await.unwrap();
        assert_eq!(replaced_by.len(), 1, "{} was not replaced by one order", pair[0].serial);
    }

    // Stopped: the last certificate goes overdue at its 90% point, not before.
    let last = certs.last().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = issuing_line(&s.ca).await;
        let now = unix_now();
        if line["overdue"] == 1 {
            assert!(now >= last.overdue_at(), "overdue at {now}, before {}", last.overdue_at());
            break;
        }
        assert_eq!(line["overdue"], 0, "{line}");
        assert!(Instant::now() < deadline, "never overdue: {line}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(s.ca.metric(OVERDUE_SERIES).await, Some(1.0));

    // One signed notice, for the stopped agent's last certificate only.
    let deadline = Instant::now() + Duration::from_secs(60);
    while hook.requests().is_empty() {
        assert!(Instant::now() < deadline, "no webhook for the overdue certificate");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let requests = hook.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (headers, body) = &requests[0];
    verify_signature(headers, body, HOOK_SECRET.as_bytes());
    assert_eq!(headers["tessera-event"], "certificate.overdue");
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["type"], "certificate.overdue", "{event}");
    assert_eq!(event["data"]["serial"], last.serial.as_str(), "{event}");
    assert_eq!(event["data"]["identifiers"][0]["value"], "overdue.agent.test", "{event}");
    s.ca.stop().await;
}
on_both_backends!(a_stopped_agent_goes_overdue);

/// The active issuing authority as the admin API lists it.
async fn active_issuing(ca: &TestCa) -> Value {
    let (status, body) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "issuing" && a["status"] == "active")
        .unwrap()
        .clone()
}

/// ARI's suggested window of a leaf, as Unix seconds.
async fn ari_window(ca: &TestCa, der: &[u8]) -> (i64, i64) {
    let url =
        format!("https://localhost:{}/acme/default/renewal-info/{}", ca.running().https_addr.port(), ari_cert_id(der));
    let body: Value = ca.client.get(url).send().await.unwrap().json().await.unwrap();
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    (parse(&body["suggestedWindow"]["start"]), parse(&body["suggestedWindow"]["end"]))
}

/// The agent holds a certificate of the first issuing CA; the CA rotates
/// (the admin route); at its next ARI check the agent hears "renew now" and
/// its next certificate comes from the successor and verifies with the
/// trust bundle, while the retired CA's OCSP responder and CRL still answer
/// for the previous leaf.
async fn the_agent_follows_a_rotation(backend: Backend) {
    let Some(s) = AgentSetup::start(backend).await else { return };
    // 300-second certificates: ARI's window opens 140 s after issue, and
    // asks the agent to check again after 60 s (a tenth of the life, at
    // least a minute).
    let (kid, hmac) = s.eab_key_for_ttl("rotation", "4m").await;
    let reloads = s.path("reloads");
    let mut args = s.args(&kid, &hmac, &["rotate.agent.test"]);
    args.extend(s.http01());
    args.extend(s.snapshotting_reload(&reloads));
    let agent = RunningAgent::start(&args, s.path("agent.log"));

    let started = Instant::now();
    while snapshots(&reloads).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(90), "no certificate:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = active_issuing(&s.ca).await;
    let previous = Installed::read(&snapshots(&reloads)[0]);
    assert!(previous.is_issued_by(&first));
    let (start, _) = ari_window(&s.ca, &previous.der).await;
    let previous_issued = previous.validity().0 + 60;
    assert!(start >= previous_issued + 140, "before the rotation the window is minutes away");

    let path = format!("/api/v1/authorities/{}/rotate", first["id"]);
    let (status, successor) = s.ca.post(&path, Some(&s.ca.admin_token), &json!({})).await;
    assert_eq!(status, 201, "{successor}");
    let rotated_at = unix_now();
    // The retired CA's leaves are told to renew now (RFC 9773).
    let (_, end) = ari_window(&s.ca, &previous.der).await;
    assert!(end <= unix_now(), "ARI says renew now for the retired CA's leaf");

    // The agent's next certificate, from the successor.
    let deadline = Instant::now() + Duration::from_secs(240);
    let next = loop {
        if let Some(found) = installed(&reloads).into_iter().find(|c| c.serial != previous.serial) {
            break found;
        }
        assert!(Instant::now() < deadline, "no renewal after the rotation:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let log = agent.log();
    drop(agent);
    assert!(next.is_issued_by(&successor), "not from the successor:\n{log}");
    assert!(!next.is_issued_by(&first));
    // ARI brought the renewal forward: issued at the agent's next check
    // (a minute after it installed the previous leaf), long before the
    // window it had been given.
    let next_issued = next.validity().0 + 60;
    assert!(next_issued >= rotated_at, "issued after the rotation");
    assert!(next_issued < start - 30, "renewed at {next_issued}, not before the old window at {start}:\n{log}");
    assert!(log.contains("asking the CA again"), "{log}");
    let replaced_by = s.ca.db.acme().acme_replacements(&hex::decode(&previous.serial).unwrap()).await.unwrap();
    assert_eq!(replaced_by.len(), 1, "the renewal named the retired CA's leaf in `replaces`");

    // A relying party with the trust bundle accepts it; with the retired
    // CA alone it does not.
    let bundle = trust_bundle(&s.ca).await;
    assert!(bundle.contains(first["certificate"].as_str().unwrap()));
    assert!(bundle.contains(successor["certificate"].as_str().unwrap()));
    let dir = s.work.path();
    openssl_verify(dir, &s.ca.root_pem_path(), &bundle, &next.leaf_pem).unwrap_or_else(|e| panic!("{e}"));
    openssl_verify(dir, &s.ca.root_pem_path(), &bundle, &previous.leaf_pem).unwrap_or_else(|e| panic!("{e}"));
    assert!(openssl_verify(dir, &s.ca.root_pem_path(), &previous.issuer_pem(), &next.leaf_pem).is_err());

    // The retired CA still answers for the previous leaf: good, then revoked.
    let root_pem = std::fs::read_to_string(s.ca.root_pem_path()).unwrap();
    let leaf = LeafFiles::from_pems(&s.ca, "previous", &previous.leaf_pem, &previous.issuer_pem(), &root_pem);
    let ocsp = s.ca.http_url("/ocsp");
    let out = leaf.ocsp_post(&ocsp, &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    let crl = reqwest::get(s.ca.http_url(&crl_path(&leaf))).await.unwrap().bytes().await.unwrap().to_vec();
    let out = leaf.verify_with_crls(&[&crl], false);
    assert!(out.contains(": OK"), "{out}");

    let revoke = format!("/api/v1/certificates/{}/revoke", previous.serial);
    let (status, body) = s.ca.post(&revoke, Some(&s.ca.admin_token), &json!({"reason": "superseded"})).await;
    assert_eq!(status, 200, "{body}");
    let out = leaf.ocsp_post(&ocsp, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
    let serial_line = format!("Serial Number: {}", previous.serial.to_uppercase());
    let crl = crl_until(&s.ca, &crl_path(&leaf), |text| text.contains(&serial_line)).await;
    let out = leaf.verify_with_crls(&[&crl], false);
    assert!(out.contains("certificate revoked"), "{out}");

    // The successor's leaf is untouched by it.
    let next_leaf = LeafFiles::from_pems(&s.ca, "next", &next.leaf_pem, &next.issuer_pem(), &root_pem);
    let out = next_leaf.ocsp_post(&ocsp, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    s.ca.stop().await;
}
on_both_backends!(the_agent_follows_a_rotation);
