//! The storage surface and the issuance pipeline's bookkeeping, on both
//! backends: conflicts, state transitions, and no certificate untracked.
use std::sync::Arc;

use crate::common::{Backend, TestCa, csr_for};
use async_trait::async_trait;
use tessera::clock::{SharedClock, SystemClock};
use tessera::issuance::{CertificateIssuer, CheckedCsr, Identifier, IssueRequest, SigningAuthority};
use tessera::keys::{KeyIdentity, Signer, SignerError};
use tessera::setup::load_signing_authority;
use tessera::storage::{
    AcmeAuthzRecord, AcmeChallengeRecord, Admission, AuthzKey, AuthzStatus, CertificateFilter, CertificateKind,
    CertificateStatus, ChallengeStatus, IssuedRecord, NewAcmeAccount, NewAcmeAuthz, NewAcmeOrder, NewAuditEvent,
    OrderLimits, OrderRequest, OrderStatus, PendingCertificate, RateLimited, Reservation, Reserved, Retention,
    StalledChallenge, StoreError, Succession, ValidationOutcome,
};

fn pending(serial: u8, authority_id: i64, not_after: i64) -> PendingCertificate {
    PendingCertificate {
        serial: vec![0x42, serial],
        authority_id,
        not_before: 0,
        not_after,
        created_at: 0,
        kind: CertificateKind::Workload,
        subject: None,
        sans: " dns:x.test ".into(),
        requester: "test".into(),
        key_type: None,
        policy: None,
        crl_shard: None,
        // A key of its own per serial.
        spki_hash: vec![serial; 32],
    }
}

fn event(action: &'static str) -> NewAuditEvent {
    NewAuditEvent { at: 0, actor: "test".into(), action, target: "t".into(), detail: serde_json::json!({}) }
}

on_both_backends!(certificate_states_move_one_way, |ca| {
    let db = &ca.db;
    let authority = db.catalog().list_authorities().await.unwrap()[1].id;
    db.ledger().reserve_certificate(&pending(1, authority, 100)).await.unwrap();
    assert!(matches!(db.ledger().reserve_certificate(&pending(1, authority, 100)).await, Err(StoreError::Conflict(_))));

    let audits = db.count_audit_events().await.unwrap();
    // Pending cannot be revoked; unknown serials are not found.
    assert!(matches!(
        db.revocation().revoke_certificate(&[0x42, 1], 5, 1, &event("x")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.revocation().revoke_certificate(&[0x42, 99], 5, 1, &event("x")).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(db.count_audit_events().await.unwrap(), audits, "a refused change writes no audit event");

    db.ledger().record_issued(&[0x42, 1], b"der", &event("certificate.issue")).await.unwrap();
    assert!(matches!(db.ledger().record_issued(&[0x42, 1], b"der", &event("x")).await, Err(StoreError::Conflict(_))));
    let revoked =
        db.revocation().revoke_certificate(&[0x42, 1], 5, 1, &event("certificate.revoke")).await.unwrap().record;
    assert_eq!(
        (revoked.status, revoked.revoked_at, revoked.revocation_reason),
        (CertificateStatus::Revoked, Some(5), Some(1))
    );
    assert_eq!(db.count_audit_events().await.unwrap(), audits + 2);

    db.ledger().reserve_certificate(&pending(2, authority, 50)).await.unwrap();
    db.ledger().record_failed(&[0x42, 2]).await.unwrap();
    assert_eq!(db.catalog().certificate(&[0x42, 2]).await.unwrap().status, CertificateStatus::Failed);

    // Filters and ordering by expiry.
    let failed = CertificateFilter { status: Some(CertificateStatus::Failed), ..Default::default() };
    assert_eq!(db.admin().list_certificates(&failed, 10).await.unwrap().len(), 1);
    let soon = CertificateFilter { expires_before: Some(101), ..Default::default() };
    let rows = db.admin().list_certificates(&soon, 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.not_after).collect::<Vec<_>>(), [50, 100]);
    let san = CertificateFilter { san: Some("dns:x.test".into()), expires_before: Some(101), ..Default::default() };
    assert_eq!(db.admin().list_certificates(&san, 10).await.unwrap().len(), 2);
    let wildcard = CertificateFilter { san: Some("dns:%".into()), ..Default::default() };
    assert!(db.admin().list_certificates(&wildcard, 10).await.unwrap().is_empty(), "LIKE metacharacters are escaped");
});

/// A custodian that is down: every signature fails with a retryable error.
#[derive(Debug)]
struct DownSigner(Arc<dyn Signer>);

#[async_trait]
impl Signer for DownSigner {
    fn identity(&self) -> &KeyIdentity {
        self.0.identity()
    }
    async fn sign(&self, _: &[u8]) -> Result<Vec<u8>, SignerError> {
        Err(SignerError::Unavailable { key: self.0.key_uri().to_string(), reason: "HSM session lost".into() })
    }
}

on_both_backends!(a_batch_of_reservations_refuses_only_taken_serials, |ca| {
    let db = &ca.db;
    let authority = db.catalog().list_authorities().await.unwrap()[1].id;
    db.ledger().reserve_certificate(&pending(20, authority, 100)).await.unwrap();
    let reserve = |serial| Reservation { pending: pending(serial, authority, 100), acme_order: None };
    let batch = [reserve(21), reserve(20), reserve(22), reserve(21)];
    assert_eq!(
        db.ledger().reserve_certificates(&batch).await.unwrap(),
        vec![Reserved::Done, Reserved::SerialTaken, Reserved::Done, Reserved::SerialTaken]
    );
    for serial in [20, 21, 22] {
        assert_eq!(db.catalog().certificate(&[0x42, serial]).await.unwrap().status, CertificateStatus::Pending);
    }
    let pending_rows = CertificateFilter { status: Some(CertificateStatus::Pending), ..Default::default() };
    assert_eq!(
        db.admin().list_certificates(&pending_rows, 10).await.unwrap().len(),
        3,
        "a refused reservation stores nothing"
    );
});

on_both_backends!(a_batch_of_issued_certificates_supersedes_in_order, |ca| {
    let db = &ca.db;
    let authority = db.catalog().list_authorities().await.unwrap()[1].id;
    let other_names = |serial| PendingCertificate { sans: " dns:y.test ".into(), ..pending(serial, authority, 100) };
    for reserved in [pending(10, authority, 100), pending(11, authority, 100), pending(12, authority, 100)] {
        db.ledger().reserve_certificate(&reserved).await.unwrap();
    }
    db.ledger().reserve_certificate(&pending(13, authority, 100)).await.unwrap();
    db.ledger().reserve_certificate(&other_names(14)).await.unwrap();
    db.ledger().record_issued(&[0x42, 10], b"der", &event("certificate.issue")).await.unwrap();
    let record = |serial: u8, sans: &str, replaces: Option<u8>| IssuedRecord {
        serial: vec![0x42, serial],
        der: b"der".to_vec(),
        audit: event("certificate.issue"),
        succession: Some(Succession {
            requester: "test".into(),
            sans: sans.into(),
            authority_id: None,
            replaces: replaces.map(|r| vec![0x42, r]),
            acme_order: None,
        }),
    };
    let heads = || async {
        let mut serials: Vec<u8> = db
            .lifecycle()
            .unnoticed_unreplaced("test", 0, 100, None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.serial[1])
            .collect();
        serials.sort();
        serials
    };
    assert_eq!(heads().await, vec![10]);

    let audits = db.count_audit_events().await.unwrap();
    let batch = [
        record(11, " dns:x.test ", None),
        record(12, " dns:x.test ", None),
        record(99, " dns:x.test ", None),
        record(14, " dns:y.test ", None),
    ];
    // The unreserved serial is refused alone; 12 follows 11 within the batch.
    assert_eq!(db.ledger().record_issued_all(&batch).await.unwrap(), vec![true, true, false, true]);
    assert_eq!(heads().await, vec![12, 14]);
    assert_eq!(db.count_audit_events().await.unwrap(), audits + 3, "one audit event per recorded certificate");
    assert_eq!(db.ledger().record_issued_all(&batch[..1]).await.unwrap(), vec![false], "recorded once");

    // A named replacement is superseded whatever its names.
    assert_eq!(db.ledger().record_issued_all(&[record(13, " dns:x.test ", Some(14))]).await.unwrap(), vec![true]);
    assert_eq!(heads().await, vec![13]);
});

on_both_backends!(a_batch_of_nonces_is_spent_once_with_its_accounts, |ca| {
    let db = &ca.db;
    let (a, b, c) = (b"nonce-a".to_vec(), b"nonce-b".to_vec(), b"nonce-c".to_vec());
    // Far in the future: the running CA prunes used nonces past their expiry.
    let later = 4_000_000_000;
    let first = db.acme().spend_nonces(&[(a.clone(), later), (b.clone(), later)], &[]).await.unwrap();
    assert_eq!(first.fresh, [a.clone(), b.clone()].into_iter().collect());
    assert!(first.accounts.is_empty());
    // Spent ones stay spent; an unknown account is simply absent.
    let second = db.acme().spend_nonces(&[(b.clone(), later), (c.clone(), later)], &[987_654]).await.unwrap();
    assert_eq!(second.fresh, [c].into_iter().collect());
    assert!(second.accounts.is_empty());
    assert!(db.acme().spend_nonces(&[], &[]).await.unwrap().fresh.is_empty());
});

on_both_backends!(batched_reads_answer_each_key_in_order, |ca| {
    let db = &ca.db;
    let account = NewAcmeAccount {
        directory: "default".into(),
        thumbprint: "t".into(),
        jwk: "{}".into(),
        contact: "[]".into(),
        policy: "default".into(),
        eab_key_id: None,
        created_at: 0,
    };
    let account = db.acme().insert_acme_account(&account, &event("acme.account.create")).await.unwrap();
    // Both orders in one call, as concurrent newOrders arrive in a batch.
    let mut requests = Vec::new();
    for names in [&["dns:a.test", "dns:b.test"][..], &["dns:c.test"]] {
        let order = NewAcmeOrder {
            account_id: account.id,
            identifiers: names.join(" "),
            not_before: None,
            not_after: None,
            expires: 1000,
            replaces_serial: None,
            replaces: None,
            by_binding: None,
            created_at: 0,
            authorizations: names
                .iter()
                .map(|n| NewAcmeAuthz {
                    identifier: (*n).into(),
                    wildcard: false,
                    challenges: vec![("http-01".into(), format!("{n}-h")), ("dns-01".into(), format!("{n}-d"))],
                })
                .collect(),
        };
        requests.push(OrderRequest { order, limits: OrderLimits::new(3600, 10, 10) });
    }
    let orders: Vec<_> = db
        .acme()
        .admit_acme_orders(&requests)
        .await
        .unwrap()
        .into_iter()
        .map(|admitted| match admitted {
            Ok(created) => created,
            Err(refused) => panic!("refused: {refused:?}"),
        })
        .collect();
    let ((first, first_authzs), (second, second_authzs)) = (&orders[0], &orders[1]);

    let read = db.acme().acme_orders_with_authz_ids(&[second.id, 999_999, first.id, second.id]).await.unwrap();
    let ids: Vec<Option<(i64, Vec<i64>)>> = read.into_iter().map(|o| o.map(|(order, ids)| (order.id, ids))).collect();
    let authz_ids = |authzs: &[AcmeAuthzRecord]| authzs.iter().map(|a| a.id).collect::<Vec<_>>();
    let (first_ids, second_ids) = (authz_ids(first_authzs), authz_ids(second_authzs));
    assert_eq!(
        ids,
        [
            Some((second.id, second_ids.clone())),
            None,
            Some((first.id, first_ids.clone())),
            Some((second.id, second_ids))
        ]
    );

    // An authorization by its id and by one of its challenges, twice in a
    // row (its rows must not merge), an unknown one, another order's.
    let (a, c) = (first_ids[1], second_authzs[0].id);
    let one = db.acme().acme_authzs_with_challenges(&[AuthzKey::Authz(a)]).await.unwrap().remove(0).unwrap();
    assert_eq!(one.1.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(), ["http-01", "dns-01"]);
    let challenge = one.1[1].id;
    let keys = [AuthzKey::Authz(a), AuthzKey::Challenge(challenge), AuthzKey::Authz(999_999), AuthzKey::Authz(c)];
    let read = db.acme().acme_authzs_with_challenges(&keys).await.unwrap();
    let shape: Vec<Option<(i64, usize)>> = read.iter().map(|r| r.as_ref().map(|(a, cs)| (a.id, cs.len()))).collect();
    assert_eq!(shape, [Some((a, 2)), Some((a, 2)), None, Some((c, 2))]);
    let challenge_ids = |cs: &[AcmeChallengeRecord]| cs.iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(challenge_ids(&read[1].as_ref().unwrap().1), challenge_ids(&one.1));

    // Challenge starts, each once.
    let other = read[3].as_ref().unwrap().1[0].id;
    let started = db.acme().start_acme_challenges(&[challenge, 999_999, other, challenge], 1).await.unwrap();
    assert_eq!(started, [true, false, true, false], "a challenge named twice starts once");
    assert_eq!(db.acme().start_acme_challenges(&[other], 1).await.unwrap(), [false], "already started");

    // Started before the cut-off and still processing: stalled. A claim
    // restarts the clock, so a second claim of the same listing fails.
    let ids = |list: &[StalledChallenge]| list.iter().map(|s| s.challenge.id).collect::<Vec<_>>();
    assert!(db.acme().stalled_acme_challenges(1, 0, 10).await.unwrap().is_empty(), "not older than the cut-off");
    let stalled = db.acme().stalled_acme_challenges(2, 0, 10).await.unwrap();
    let mut expected = vec![challenge, other];
    expected.sort_unstable();
    assert_eq!(ids(&stalled), expected);
    assert_eq!(stalled[0].started_at, Some(1));
    assert!(stalled[0].identifier.contains(':') && stalled[0].jwk.starts_with('{'), "{:?}", stalled[0]);
    assert!(db.acme().claim_stalled_acme_challenge(&stalled[0], 2).await.unwrap());
    assert!(!db.acme().claim_stalled_acme_challenge(&stalled[0], 2).await.unwrap(), "claimed once");
    assert_eq!(ids(&db.acme().stalled_acme_challenges(2, 0, 10).await.unwrap()), expected[1..]);

    // Validation results in one batch: both of the first order's
    // authorizations valid (the order becomes ready), the second's invalid
    // (so is its order), and a challenge never started stays as it was.
    let zero =
        db.acme().acme_authzs_with_challenges(&[AuthzKey::Authz(first_ids[0])]).await.unwrap().remove(0).unwrap();
    let (started, idle) = (zero.1[0].id, zero.1[1].id);
    assert_eq!(db.acme().start_acme_challenges(&[started], 1).await.unwrap(), [true]);
    let problem = r#"{"type":"urn:ietf:params:acme:error:incorrectResponse"}"#.to_owned();
    let results = [
        (challenge, ValidationOutcome::Valid, 5),
        (other, ValidationOutcome::Invalid(problem.clone()), 5),
        (idle, ValidationOutcome::Valid, 5),
        (started, ValidationOutcome::Valid, 5),
    ];
    assert_eq!(db.acme().record_acme_validations(&results).await.unwrap().len(), 4);
    let orders = db.acme().acme_orders_with_authz_ids(&[first.id, second.id]).await.unwrap();
    let states: Vec<(OrderStatus, Option<String>)> =
        orders.into_iter().map(|o| o.map(|(o, _)| (o.status, o.error)).unwrap()).collect();
    assert_eq!(states, [(OrderStatus::Ready, None), (OrderStatus::Invalid, Some(problem))]);
    let zero =
        db.acme().acme_authzs_with_challenges(&[AuthzKey::Authz(first_ids[0])]).await.unwrap().remove(0).unwrap();
    assert_eq!(zero.0.status, AuthzStatus::Valid);
    assert_eq!(zero.1.iter().map(|c| c.status).collect::<Vec<_>>(), [ChallengeStatus::Valid, ChallengeStatus::Pending]);
});

on_both_backends!(new_orders_are_admitted_within_their_rate_limits, |ca| {
    let db = &ca.db;
    let mut accounts = Vec::new();
    for thumbprint in ["busy", "failing"] {
        let account = NewAcmeAccount {
            directory: "default".into(),
            thumbprint: thumbprint.into(),
            jwk: "{}".into(),
            contact: "[]".into(),
            policy: "default".into(),
            eab_key_id: None,
            created_at: 0,
        };
        accounts.push(db.acme().insert_acme_account(&account, &event("acme.account.create")).await.unwrap().id);
    }
    let (busy, failing) = (accounts[0], accounts[1]);
    // Two orders an hour, one failed validation an hour.
    let limits = OrderLimits::new(3600, 2, 1);
    let request = |account_id, created_at: i64| OrderRequest {
        order: NewAcmeOrder {
            account_id,
            identifiers: "dns:a.test".into(),
            not_before: None,
            not_after: None,
            expires: created_at + 100,
            replaces_serial: None,
            replaces: None,
            by_binding: None,
            created_at,
            authorizations: vec![NewAcmeAuthz {
                identifier: "dns:a.test".into(),
                wildcard: false,
                challenges: vec![("http-01".into(), format!("token-{account_id}-{created_at}"))],
            }],
        },
        limits,
    };
    let outcome = |admitted: &Admission| match admitted {
        Ok((order, authzs)) => {
            assert_eq!(authzs.len(), 1);
            assert_eq!(authzs[0].order_id, order.id);
            "created"
        }
        Err(RateLimited::TooManyOrders) => "orders",
        Err(RateLimited::TooManyFailures) => "failures",
    };
    let outcomes = |admitted: Vec<Admission>| admitted.iter().map(outcome).collect::<Vec<_>>();
    let t = 100_000;

    // In one call, the busy account's third order is one too many; the
    // other account's order counts apart.
    let batch = [request(busy, t), request(busy, t), request(busy, t), request(failing, t)];
    let admitted = db.acme().admit_acme_orders(&batch).await.unwrap();
    assert_eq!(outcomes(admitted.clone()), ["created", "created", "orders", "created"]);
    // The counts are kept: a later call is refused too, and stores nothing.
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(busy, t + 60)]).await.unwrap()), ["orders"]);
    assert_eq!(db.acme().list_acme_order_ids(busy, None, 10).await.unwrap().len(), 2);
    // Once the window (and the bucket it began in) has passed, orders go through.
    let later = t + 3600 + 3600 / 64 + 1;
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(busy, later)]).await.unwrap()), ["created"]);

    // A failed validation uses up the other account's allowance.
    let (_, authzs) = admitted[3].as_ref().unwrap();
    let authz =
        db.acme().acme_authzs_with_challenges(&[AuthzKey::Authz(authzs[0].id)]).await.unwrap().remove(0).unwrap();
    let challenge = authz.1[0].id;
    assert_eq!(db.acme().start_acme_challenges(&[challenge], t).await.unwrap(), [true]);
    let problem = r#"{"type":"urn:ietf:params:acme:error:incorrectResponse"}"#.to_owned();
    db.acme().record_acme_validations(&[(challenge, ValidationOutcome::Invalid(problem), t + 1)]).await.unwrap();
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(failing, t + 2)]).await.unwrap()), ["failures"]);
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(failing, t + 3602)]).await.unwrap()), ["created"]);

    // Counts no window reaches are pruned; recent ones stay.
    let retention = Retention {
        nonces_expired_before: 0,
        order_counts_before: t + 1,
        orders_expired_before: 0,
        notices_before: 0,
        webhook_events_before: 0,
        idempotency_keys_before: 0,
        batch: 1,
    };
    assert!(db.lifecycle().prune(&retention).await.unwrap().order_counts >= 1);
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(busy, later)]).await.unwrap()), ["created"]);
    assert_eq!(outcomes(db.acme().admit_acme_orders(&[request(busy, later)]).await.unwrap()), ["orders"]);
});

on_both_backends!(a_failed_signature_leaves_a_tracked_serial, |ca| {
    let live = load_signing_authority(&ca.config, &*ca.sealer().await, &ca.db.catalog()).await.unwrap();
    let down = Arc::new(SigningAuthority {
        signer: Arc::new(DownSigner(live.signer.clone())),
        id: live.id,
        name: live.name.clone(),
        certificate_der: live.certificate_der.clone(),
        not_after: live.not_after,
        urls: live.urls.clone(),
        crl_shards: 0,
        chain_pem: live.chain_pem.clone(),
        root_pem: live.root_pem.clone(),
    });
    let clock: SharedClock = Arc::new(SystemClock);
    let issuer = CertificateIssuer::new(ca.db.ledger(), clock, down);
    let csr = CheckedCsr::parse(csr_for(&["down.test"]).as_bytes()).unwrap();
    let before = ca.db.count_audit_events().await.unwrap();
    let request = IssueRequest {
        csr: &csr,
        names: vec![Identifier::dns("down.test").unwrap()],
        ttl: time::Duration::hours(1),
        not_before: None,
        requester: "test".into(),
        policy: None,
        kind: CertificateKind::Workload,
    };
    let err = issuer.issue(&request).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    let failed = CertificateFilter { status: Some(CertificateStatus::Failed), ..Default::default() };
    let rows = ca.db.admin().list_certificates(&failed, 10).await.unwrap();
    assert_eq!(rows.len(), 1, "the reserved serial stays on record");
    assert_eq!(rows[0].der, None);
    assert_eq!(ca.db.count_audit_events().await.unwrap(), before, "nothing was issued, so nothing is audited");
});

on_both_backends!(concurrent_issuance_gives_unique_tracked_serials, |ca| {
    let authority = load_signing_authority(&ca.config, &*ca.sealer().await, &ca.db.catalog()).await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let issuer = CertificateIssuer::new(ca.db.ledger(), clock, authority);
    let csr = CheckedCsr::parse(csr_for(&["many.test"]).as_bytes()).unwrap();
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let (issuer, csr) = (issuer.clone(), csr.clone());
        tasks.push(tokio::spawn(async move {
            let request = IssueRequest {
                csr: &csr,
                names: vec![Identifier::dns("many.test").unwrap()],
                ttl: time::Duration::hours(1),
                not_before: None,
                requester: "test".into(),
                policy: None,
                kind: CertificateKind::Workload,
            };
            issuer.issue(&request).await.unwrap().serial
        }));
    }
    let mut serials = std::collections::HashSet::new();
    for task in tasks {
        let serial = task.await.unwrap();
        let stored = ca.db.catalog().certificate(serial.as_bytes()).await.unwrap();
        assert_eq!(stored.status, CertificateStatus::Issued);
        assert!(stored.der.is_some());
        assert!(serials.insert(serial));
    }
    assert_eq!(serials.len(), 40);
});

/// Migration 0007 rewrites the certificates table: rows written under the
/// older schema keep their subject (dropped only where the identifiers give
/// it back), their key type and whether they were superseded.
#[tokio::test]
async fn slim_migration_keeps_what_the_rows_said() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("old.db").display())];
    urls.extend(crate::common::fresh_postgres_url().await);
    for url in urls {
        let db = tessera::storage::Db::connect(&tessera::storage::DbOptions::new(&url)).await.unwrap();
        db.migrate_until(6).await.unwrap();
        let sqlite = url.starts_with("sqlite");
        let blob = |hex: &str| if sqlite { format!("X'{hex}'") } else { format!("decode('{hex}', 'hex')") };
        db.execute_raw(&format!(
            "INSERT INTO authorities (name, kind, key_uri, algorithm, certificate_der, serial, ski, subject, \
             not_before, not_after, created_at) VALUES ('ca', 'root', 'file:k', 'ecdsa-p256-sha256', {}, {}, {}, \
             'CN=ca', 0, 9000, 0)",
            blob("00"),
            blob("01"),
            blob("02")
        ))
        .await
        .unwrap();
        // A leaf whose CN is its first DNS name, an IP-only leaf, a leaf
        // whose CN is past an over-long name, a CA certificate, and a row
        // whose subject the identifiers do not give.
        let long = format!("{}.{}.test", "l".repeat(40), "m".repeat(40));
        let rows = [
            ("10", "CN=a.test", " dns:a.test dns:b.test ".to_owned(), "'ecdsa-p256'", blob("10")),
            ("11", "", " ip:127.0.0.1 ".to_owned(), "'rsa'", "NULL".to_owned()),
            ("12", "CN=c.test", format!(" ip:127.0.0.1 dns:{long} dns:c.test "), "'ed25519'", "NULL".to_owned()),
            ("13", "CN=Tessera Issuing CA", " ".to_owned(), "'ecdsa-p384-sha384'", "NULL".to_owned()),
            ("14", "CN=other", " dns:d.test ".to_owned(), "NULL", "NULL".to_owned()),
        ];
        for (serial, subject, sans, key_type, superseded_by) in &rows {
            db.execute_raw(&format!(
                "INSERT INTO certificates (serial, authority_id, not_before, not_after, created_at, status, subject, \
                 sans, requester, key_type, policy, superseded_by) VALUES ({}, 1, 0, 100, 0, 1, \
                 '{subject}', '{sans}', 'r', {key_type}, 'default', {superseded_by})",
                blob(serial)
            ))
            .await
            .unwrap();
        }
        db.migrate().await.unwrap();

        let stored = |serial: u8| {
            let db = db.clone();
            async move { db.catalog().certificate(&[serial]).await.unwrap() }
        };
        // SQLite's migration, without regular expressions, drops the subject
        // only when the first identifier gives it, and keeps it otherwise.
        let past_long = sqlite.then(|| "CN=c.test".to_owned());
        let subjects = [None, None, past_long, Some("CN=Tessera Issuing CA".to_owned()), Some("CN=other".to_owned())];
        let key_types = [Some("ecdsa-p256"), Some("rsa"), Some("ed25519"), Some("ecdsa-p384-sha384"), None];
        for (i, (subject, key_type)) in subjects.into_iter().zip(key_types).enumerate() {
            let record = stored(0x10 + i as u8).await;
            assert_eq!(record.subject, subject, "{url} row {i}");
            assert_eq!(record.key_type.as_deref(), key_type, "{url} row {i}");
            assert_eq!(record.sans, rows[i].2, "{url} row {i}");
        }
        // Only the superseded row is missing from the unreplaced ones.
        let heads = db.lifecycle().unnoticed_unreplaced("test", 0, 100, None, 10).await.unwrap();
        let mut serials: Vec<Vec<u8>> = heads.into_iter().map(|c| c.serial).collect();
        serials.sort();
        assert_eq!(serials, vec![vec![0x11], vec![0x12], vec![0x13], vec![0x14]], "{url}");
        db.close().await;
    }
}

/// A small deterministic generator, so a failing run's batches can be
/// replayed from the seed it prints.
struct Draws(u64);

impl Draws {
    fn below(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }

    /// A batch of 1 to 8 draws below `n`, repeats likely.
    fn batch(&mut self, n: u64) -> Vec<u8> {
        let len = 1 + self.below(8);
        (0..len).map(|_| self.below(n) as u8).collect()
    }
}

/// The same random batches of serial reservations, issued records and
/// nonce spends go through PostgreSQL's one-statement paths and SQLite's
/// statement-per-row paths, and every answer agrees.
#[tokio::test]
async fn batched_statements_answer_alike_on_both_backends() {
    let Some(postgres) = TestCa::start(Backend::Postgres).await else { return };
    let sqlite = TestCa::start(Backend::Sqlite).await.unwrap();
    let seed = rand::random::<u64>() | 1;
    let mut draws = Draws(seed);
    let authority = |ca: &TestCa| {
        let catalog = ca.db.catalog();
        async move { catalog.list_authorities().await.unwrap()[1].id }
    };
    let (pg_authority, lite_authority) = (authority(&postgres).await, authority(&sqlite).await);
    for round in 0..40 {
        let serials = draws.batch(24);
        let context = format!("seed {seed}, round {round}, serials {serials:?}");
        if draws.below(2) == 0 {
            let batch =
                |id| serials.iter().map(|&s| Reservation { pending: pending(s, id, 100), acme_order: None }).collect();
            let pg: Vec<Reservation> = batch(pg_authority);
            let lite: Vec<Reservation> = batch(lite_authority);
            let (a, b) = (
                postgres.db.ledger().reserve_certificates(&pg).await.unwrap(),
                sqlite.db.ledger().reserve_certificates(&lite).await.unwrap(),
            );
            assert_eq!(a, b, "reservations, {context}");
        } else {
            let records: Vec<IssuedRecord> = serials
                .iter()
                .map(|&s| IssuedRecord {
                    serial: vec![0x42, s],
                    der: b"der".to_vec(),
                    audit: event("certificate.issue"),
                    succession: None,
                })
                .collect();
            let (a, b) = (
                postgres.db.ledger().record_issued_all(&records).await.unwrap(),
                sqlite.db.ledger().record_issued_all(&records).await.unwrap(),
            );
            assert_eq!(a, b, "issued records, {context}");
        }
        let nonces: Vec<(Vec<u8>, i64)> = draws.batch(16).into_iter().map(|n| (vec![n], 4_000_000_000)).collect();
        let (a, b) = (
            postgres.db.acme().spend_nonces(&nonces, &[]).await.unwrap(),
            sqlite.db.acme().spend_nonces(&nonces, &[]).await.unwrap(),
        );
        assert_eq!(a.fresh, b.fresh, "nonces {nonces:?}, seed {seed}, round {round}");
    }
    for serial in 0..24 {
        let status = |ca: &TestCa| {
            let catalog = ca.db.catalog();
            async move { catalog.certificate(&[0x42, serial]).await.ok().map(|c| c.status) }
        };
        assert_eq!(status(&postgres).await, status(&sqlite).await, "serial {serial}, seed {seed}");
    }
}

// Issue 22.6: the per-node row of a node that stopped stayed in the jobs
// listing for ever; a node's run now drops the rows of the same job whose
// next run is long overdue, and no row of another job (a `_` in the name is
// no wildcard).
on_both_backends!(a_stopped_nodes_job_row_is_forgotten, |ca| {
    let leases = ca.db.leases();
    assert_eq!(leases.record_node_job_run("presign_t", "gone", (100, 200, None), 0).await.unwrap(), 0);
    leases.record_node_job_run("presignxt", "other", (100, 200, None), 0).await.unwrap();
    leases.record_node_job_run("presign_t", "late", (5_000, 9_000, Some("slow")), 0).await.unwrap();
    let forgotten = leases.record_node_job_run("presign_t", "live", (10_000, 10_600, None), 6_400).await.unwrap();
    assert_eq!(forgotten, 1);
    let names: Vec<String> =
        ca.db.admin().jobs().await.unwrap().into_iter().map(|j| j.name).filter(|n| n.starts_with("presign")).collect();
    assert_eq!(names, ["presign_t/late", "presign_t/live", "presignxt/other"]);
});
