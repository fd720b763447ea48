//! Nothing grows for ever (issue 19.7), on SQLite and PostgreSQL: the
//! retention pass deletes used nonces, ACME orders with their
//! authorizations and challenges, lifecycle notices, finished webhook
//! events with their attempts and idempotency keys past their cut-offs, a
//! small batch at a time; recent rows, pending deliveries, an order whose
//! certificate is live, certificates and the audit log stay.
use crate::common::{Backend, TestCa, csr_for};
use tessera::clock::Clock;
use tessera::storage::{
    IdempotencyKey, NewAcmeAccount, NewAcmeAuthz, NewAcmeOrder, NewAuditEvent, OrderLimits, OrderRequest, Pruned,
    Retention,
};

const TABLES: [&str; 8] = [
    "acme_used_nonces",
    "acme_orders",
    "acme_authorizations",
    "acme_challenges",
    "lifecycle_notices",
    "webhook_events",
    "webhook_deliveries",
    "idempotency_keys",
];

async fn counts(ca: &TestCa) -> Vec<i64> {
    let mut out = Vec::new();
    for table in TABLES.into_iter().chain(["certificates", "audit_events"]) {
        out.push(ca.db.count_rows(table).await.unwrap());
    }
    out
}

on_both_backends!(old_records_go_and_recent_ones_stay, |ca| {
    let now = ca.clock.unix();
    let (old, recent) = (1_000, now);
    let issued = ca.sign(&csr_for(&["live.retention.test"])).await;

    // Orders: four expired long ago (one of them gave a certificate that is
    // still live) and two unexpired, each with an authorization and a
    // challenge.
    let account = NewAcmeAccount {
        directory: "default".into(),
        thumbprint: "retention".into(),
        jwk: "{}".into(),
        contact: "[]".into(),
        policy: "default".into(),
        eab_key_id: None,
        created_at: old,
    };
    let audit = NewAuditEvent {
        at: old,
        actor: "test".into(),
        action: "acme.account.create",
        target: String::new(),
        detail: serde_json::json!({}),
    };
    let account_id = ca.db.acme().insert_acme_account(&account, &audit).await.unwrap().id;
    let order = |n: usize, expires: i64| OrderRequest {
        order: NewAcmeOrder {
            account_id,
            identifiers: "dns:a.retention.test".into(),
            not_before: None,
            not_after: None,
            expires,
            replaces_serial: None,
            replaces: None,
            created_at: expires - 100,
            authorizations: vec![NewAcmeAuthz {
                identifier: "dns:a.retention.test".into(),
                wildcard: false,
                challenges: vec![("http-01".into(), format!("token-{n}"))],
            }],
            by_binding: None,
        },
        limits: OrderLimits::new(3600, 100, 100),
    };
    let requests: Vec<OrderRequest> = (0..6).map(|n| order(n, if n < 4 { old } else { recent + 1_000 })).collect();
    let admitted = ca.db.acme().admit_acme_orders(&requests).await.unwrap();
    let ids: Vec<i64> = admitted.iter().map(|a| a.as_ref().unwrap().0.id).collect();
    let with_live_certificate = ids[0];
    ca.db
        .execute_raw(&format!(
            "UPDATE acme_orders SET status = 'valid', certificate_serial = \
             (SELECT serial FROM certificates WHERE status = 1 ORDER BY created_at DESC LIMIT 1) \
             WHERE id = {with_live_certificate}"
        ))
        .await
        .unwrap();

    // Used nonces, one expired.
    ca.db.acme().spend_nonces(&[(vec![1; 16], old), (vec![2; 16], recent + 600)], &[]).await.unwrap();

    // Notices and their webhook events: an old one given up long ago (with
    // its attempt), an old one still pending (not due, so the delivery job
    // leaves it alone), an old one delivered only now, a recent one
    // delivered. Finished events are kept by when they finished.
    let lifecycle = ca.db.lifecycle();
    let hook = || vec![("http://127.0.0.1:1/retention".to_owned(), "{}".to_owned())];
    for (subject, at) in [(b"gave-up".as_slice(), old), (b"pending", old), (b"late", old), (b"delivered", recent)] {
        assert!(lifecycle.record_notice("test.notice", subject, &hook(), at).await.unwrap());
    }
    let event = |subject: &str| format!("subject = '{}'", hex::encode(subject));
    for sql in [
        format!("UPDATE webhook_events SET next_attempt_at = {} WHERE {}", i64::MAX / 2, event("pending")),
        format!("UPDATE webhook_events SET state = 'failed' WHERE {}", event("gave-up")),
        format!("UPDATE webhook_events SET state = 'delivered' WHERE {}", event("delivered")),
        format!("UPDATE webhook_events SET state = 'delivered', next_attempt_at = {recent} WHERE {}", event("late")),
        format!(
            "INSERT INTO webhook_deliveries (event_id, kind, url, attempt, status_code, at) \
             SELECT id, kind, url, 1, 500, {recent} FROM webhook_events WHERE state <> 'pending'"
        ),
    ] {
        ca.db.execute_raw(&sql).await.unwrap();
    }

    // Idempotency keys, one older than a day.
    for (key, at) in [(b"old-key".as_slice(), old), (b"new-key", recent)] {
        let key = IdempotencyKey { token_id: 1, key_hash: key, body_hash: b"body" };
        ca.db.admin().claim_idempotency_key(&key, at, 0, 0).await.unwrap();
    }

    let before = counts(ca).await;
    let retention = Retention {
        nonces_expired_before: recent,
        order_counts_before: 0,
        orders_expired_before: recent - 60,
        notices_before: recent - 60,
        webhook_events_before: recent - 60,
        idempotency_keys_before: recent - 60,
        batch: 2,
    };
    let pruned = lifecycle.prune(&retention).await.unwrap();
    let expected = Pruned {
        nonces: 1,
        order_counts: 0,
        orders: 3,
        authorizations: 3,
        challenges: 3,
        notices: 3,
        webhook_events: 1,
        webhook_deliveries: 1,
        idempotency_keys: 1,
    };
    assert_eq!(pruned, expected);
    let after = counts(ca).await;
    let gone: Vec<i64> = before.iter().zip(&after).map(|(b, a)| b - a).collect();
    // Certificates and the audit log lose nothing.
    assert_eq!(gone, [1, 3, 3, 3, 3, 1, 1, 1, 0, 0], "{TABLES:?}, certificates, audit_events");

    // What stays: the order with a live certificate, the recent orders.
    let kept = ca.db.acme().acme_orders_with_authz_ids(&[ids[0], ids[1], ids[4], ids[5]]).await.unwrap();
    let kept: Vec<bool> = kept.iter().map(Option::is_some).collect();
    assert_eq!(kept, [true, false, true, true]);
    let serial = hex::decode(issued["serial"].as_str().unwrap()).unwrap();
    assert!(ca.db.catalog().certificate(&serial).await.unwrap().der.is_some());

    // A second pass finds nothing more.
    assert_eq!(lifecycle.prune(&retention).await.unwrap(), Pruned::default());

    // The retention job runs under its lease.
    let (status, jobs) = ca.get("/api/v1/jobs", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{jobs}");
    assert!(jobs["items"].as_array().unwrap().iter().any(|j| j["name"] == "retention"), "{jobs}");
});
