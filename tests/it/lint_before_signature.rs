//! Lint before signature (issue 18.3) through the whole pipeline: a leaf
//! whose profile is broken on purpose is never signed; the request gets a
//! 500 problem that says the certificate failed its lint, the reserved
//! serial is marked failed with no certificate, and an audit event lists
//! the findings. The next, unbroken issuance of the same names succeeds.
use serde_json::json;
use tessera::issuance::{ProfileFault, Serial, corrupt_next_issuance_of};
use tessera::storage::{AuditFilter, CertificateStatus};

use crate::common::{Backend, TestCa, csr_for};

on_both_backends!(a_broken_profile_is_refused_before_it_is_signed, |ca| {
    // Unique names: faults are process-wide and backends run side by side.
    let run = &Serial::random().to_hex()[..8];
    for (fault, says) in [
        (ProfileFault::ExtraName, "not the approved"),
        (ProfileFault::CaTrue, "CA:TRUE"),
        (ProfileFault::LongerValidity, "notAfter"),
    ] {
        let name = format!("{fault:?}-{run}.lint.test").to_lowercase();
        let rows = ca.db.count_certificates().await.unwrap();
        corrupt_next_issuance_of(&name, fault);
        let request = json!({"policy": "default", "csr": csr_for(&[&name])});
        let (status, problem) = ca.post("/api/v1/certificates", Some(&ca.admin_token), &request).await;
        assert_eq!(status, 500, "{fault:?}: {problem}");
        assert_eq!(problem["type"], "urn:tessera:problem:certificate-failed-lint", "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains("failed its lint") && detail.contains(says), "{fault:?}: {detail}");

        // One row, failed and without DER, and the audit event that says why.
        assert_eq!(ca.db.count_certificates().await.unwrap(), rows + 1);
        let filter = AuditFilter { action: Some("certificate.lint_failed".into()), ..AuditFilter::default() };
        let events = ca.db.admin().list_audit_events(&filter, 100).await.unwrap();
        let event = events
            .iter()
            .find(|e| e.detail.contains(says) && !e.detail.is_empty())
            .unwrap_or_else(|| panic!("{fault:?}: no lint_failed event among {events:?}"));
        assert!(event.actor.starts_with("token:admin"), "{event:?}");
        let serial = hex::decode(&event.target).unwrap();
        let record = ca.db.catalog().certificate(&serial).await.unwrap();
        assert_eq!(record.status, CertificateStatus::Failed, "{fault:?}");
        assert!(record.der.is_none(), "{fault:?}: a refused certificate has DER");

        // The fault was for one issuance: the same request now succeeds.
        let (status, issued) = ca.post("/api/v1/certificates", Some(&ca.admin_token), &request).await;
        assert_eq!(status, 201, "{fault:?}: {issued}");
    }
});
