//! ACME end to end with instant-acme, a maintained third-party client:
//! EAB registration, the three challenge types validated on loopback, and
//! certificates that chain to Tessera's root. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::acme::Responders;
use common::{Backend, TestCa, openssl_verify};
use instant_acme::{
    Account, AccountCredentials, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};

async fn account(ca: &TestCa) -> (Account, AccountCredentials) {
    let (kid, hmac) = ca.eab_key(false).await;
    let eab = ExternalAccountKey::new(kid, &URL_SAFE_NO_PAD.decode(hmac).unwrap());
    Account::builder_with_root(ca.root_pem_path())
        .unwrap()
        .create(
            &NewAccount {
                contact: &["mailto:ops@tessera.test"],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            ca.acme_directory(),
            Some(&eab),
        )
        .await
        .unwrap()
}

/// Orders `identifiers`, answers each authorization with `kind` through the
/// responders, finalizes and returns the PEM chain.
async fn issue(
    account: &Account,
    responders: &Responders,
    identifiers: Vec<Identifier>,
    kind: ChallengeType,
) -> String {
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.unwrap();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.unwrap();
        let mut challenge = authz.challenge(kind.clone()).unwrap();
        let key_auth = challenge.key_authorization();
        let name = challenge.identifier().to_string();
        let domain = name.trim_start_matches("*.").to_owned();
        match kind {
            ChallengeType::Http01 => responders.serve_http01(&challenge.token, key_auth.as_str()),
            ChallengeType::Dns01 => responders.set_dns01(&domain, key_auth.as_str()),
            ChallengeType::TlsAlpn01 => responders.serve_tls_alpn01(&domain, key_auth.as_str()),
            _ => unreachable!(),
        }
        challenge.set_ready().await.unwrap();
    }
    let retries = RetryPolicy::new()
        .initial_delay(std::time::Duration::from_millis(100))
        .timeout(std::time::Duration::from_secs(30));
    let status = order.poll_ready(&retries).await.unwrap();
    assert_eq!(status, OrderStatus::Ready, "{:?}", order.state());
    order.finalize().await.unwrap();
    order.poll_certificate(&retries).await.unwrap()
}

fn leaf_and_chain(pem: &str) -> (String, String) {
    let end = "-----END CERTIFICATE-----\n";
    let first = pem.find(end).unwrap() + end.len();
    (pem[..first].to_owned(), pem[first..].to_owned())
}

async fn three_challenges_and_ip_identifiers(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (account, _) = account(&ca).await;

    let http = issue(&account, &responders, vec![Identifier::Dns("web.flow.test".into())], ChallengeType::Http01).await;
    let (leaf, chain) = leaf_and_chain(&http);
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &chain, &leaf).unwrap();

    let dns = issue(
        &account,
        &responders,
        vec![Identifier::Dns("*.wild.flow.test".into()), Identifier::Dns("api.flow.test".into())],
        ChallengeType::Dns01,
    )
    .await;
    let (leaf, chain) = leaf_and_chain(&dns);
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &chain, &leaf).unwrap();
    let der = pem::parse(&leaf).unwrap().contents().to_vec();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value.general_names);
    assert!(san.contains("*.wild.flow.test") && san.contains("api.flow.test"), "{san}");

    let alpn =
        issue(&account, &responders, vec![Identifier::Dns("alpn.flow.test".into())], ChallengeType::TlsAlpn01).await;
    let (leaf, chain) = leaf_and_chain(&alpn);
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &chain, &leaf).unwrap();

    let ip =
        issue(&account, &responders, vec![Identifier::Ip("127.0.0.1".parse().unwrap())], ChallengeType::Http01).await;
    let (leaf, chain) = leaf_and_chain(&ip);
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &chain, &leaf).unwrap();

    // Every certificate went through the issuance pipeline under the policy,
    // with the ACME account as requester.
    let (status, body) = ca.get("/api/v1/certificates?limit=100", Some(&ca.admin_token)).await;
    assert_eq!(status, 200);
    let acme_issued: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["requester"].as_str().unwrap().starts_with("acme:account:"))
        .collect();
    assert_eq!(acme_issued.len(), 4, "{body}");
    assert!(acme_issued.iter().all(|c| c["policy"] == "default"));
    ca.stop().await;
}
on_both_backends!(three_challenges_and_ip_identifiers);
