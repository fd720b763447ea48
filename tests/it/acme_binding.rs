//! ACME that trusts its binding (`authorization_mode = "binding"`): the
//! policy of the account's EAB key is the authorization, so instant-acme
//! gets a ready order with valid authorizations and answers no challenge;
//! a name outside the key's policy is still refused, and a directory that
//! does not require EAB may not use the mode.
use crate::common::{Backend, TestCa, openssl_verify};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, AuthorizationStatus, Error, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use serde_json::json;
use tessera::config::{AcmeOverrides, AuthorizationMode, Config, Overrides};

/// An account bound to a new EAB key for `policy`; returns the key's kid too.
async fn bound_account(ca: &TestCa, policy: &str) -> (Account, String) {
    let (status, key) = ca.post("/api/v1/eab-keys", Some(&ca.admin_token), &json!({"policy": policy})).await;
    assert_eq!(status, 201, "{key}");
    let kid = key["kid"].as_str().unwrap().to_owned();
    let hmac = URL_SAFE_NO_PAD.decode(key["hmac_key"].as_str().unwrap()).unwrap();
    let eab = ExternalAccountKey::new(kid.clone(), &hmac);
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _) = Account::builder_with_root(ca.root_pem_path())
        .unwrap()
        .create(&new, ca.acme_directory(), Some(&eab))
        .await
        .unwrap();
    (account, kid)
}

async fn orders_are_authorized_by_the_eab_keys_policy(backend: Backend) {
    let Some(ca) = TestCa::start_acme_with(backend, AcmeOverrides::default(), |config| {
        config.acme.directories[0].authorization_mode = AuthorizationMode::Binding;
    })
    .await
    else {
        return;
    };
    let partner = json!({"name": "partner", "dns": ["*.partner.test"], "max_ttl": "24h"});
    let (status, body) = ca.post("/api/v1/policies", Some(&ca.admin_token), &partner).await;
    assert_eq!(status, 201, "{body}");
    let (account, kid) = bound_account(&ca, "partner").await;

    // Ready at once: every authorization valid, with no challenge to answer.
    let names = ["a.partner.test", "*.partner.test"];
    let identifiers: Vec<_> = names.iter().map(|n| Identifier::Dns((*n).into())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.unwrap();
    let state = order.state();
    assert_eq!(state.status, OrderStatus::Ready, "{state:?}");
    let mut authorizations = order.authorizations();
    let mut seen = 0;
    while let Some(authz) = authorizations.next().await {
        let authz = authz.unwrap();
        assert_eq!(authz.status, AuthorizationStatus::Valid);
        assert!(authz.challenges.is_empty(), "{:?}", authz.challenges);
        seen += 1;
    }
    assert_eq!(seen, names.len());
    let retries = RetryPolicy::new()
        .initial_delay(std::time::Duration::from_millis(100))
        .timeout(std::time::Duration::from_secs(30));
    order.finalize().await.unwrap();
    let pem = order.poll_certificate(&retries).await.unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let (leaf, chain) = pem.split_at(pem.find(end).unwrap() + end.len());
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), chain, leaf).unwrap();

    // The audit says the binding granted it: which key, which policy.
    let (_, audit) = ca.get("/api/v1/audit-events?action=acme.order.authorize_by_binding", Some(&ca.admin_token)).await;
    let events = audit["items"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{audit}");
    let detail = &events[0]["detail"];
    assert_eq!((&detail["policy"], &detail["directory"]), (&json!("partner"), &json!("default")), "{audit}");
    assert_eq!(detail["eab_kid"], kid.as_str(), "{audit}");
    assert!(events[0]["target"].as_str().unwrap().starts_with("acme:order:"), "{audit}");

    // A name the key's policy does not allow (the directory's does) is
    // refused as before, and nothing is audited for it.
    let outside = [Identifier::Dns("other.test".into())];
    match account.new_order(&NewOrder::new(&outside)).await {
        Err(Error::Api(problem)) => {
            assert_eq!(problem.r#type.as_deref(), Some("urn:ietf:params:acme:error:rejectedIdentifier"), "{problem:?}")
        }
        other => panic!("expected rejectedIdentifier, got {:?}", other.map(|_| ())),
    }
    let (_, audit) = ca.get("/api/v1/audit-events?action=acme.order.authorize_by_binding", Some(&ca.admin_token)).await;
    assert_eq!(audit["items"].as_array().unwrap().len(), 1, "{audit}");
    ca.stop().await;
}

on_both_backends!(orders_are_authorized_by_the_eab_keys_policy);

/// The mode on a directory that does not require EAB fails the config,
/// naming the directory; with EAB required it loads.
#[test]
fn binding_requires_eab() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.toml");
    let directory =
        "[[acme.directories]]\nname = \"partners\"\npolicy = \"default\"\nauthorization_mode = \"binding\"\n";
    std::fs::write(&path, format!("{directory}eab_required = false\n")).unwrap();
    let err = Config::load(Some(&path), &Overrides::default()).expect_err("binding without EAB must fail").to_string();
    assert!(err.contains("acme.directories[0].authorization_mode") && err.contains("\"partners\""), "{err}");
    std::fs::write(&path, directory).unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    assert_eq!(config.acme.directories[0].authorization_mode, AuthorizationMode::Binding);
}
