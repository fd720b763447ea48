//! One conformance suite for every key custodian: software (`file:`),
//! SoftHSM2 (`pkcs11:`) and the KMS emulator (`awskms:`). Each must create a
//! key, reopen it with the same public key, make signatures that verify
//! under that public key, refuse what does not exist with the key's name,
//! and sign under concurrency.
use std::sync::Arc;

use crate::common::custodians::{self, kms_endpoint, softhsm, unique};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P384_SHA384_ASN1, UnparsedPublicKey};
use tessera::config::{Config, KeysConfig, Overrides};
use tessera::keys::{KeyUri, Signer, SignerError, SigningAlgorithm, open_or_create_signer, open_signer};

/// A custodian under test: its settings and a URI for a key not made yet.
struct Custodian {
    keys: KeysConfig,
    new_uri: Box<dyn Fn() -> KeyUri>,
    _dir: tempfile::TempDir,
}

fn keys_from_toml(dir: &std::path::Path, toml: &str) -> KeysConfig {
    let path = dir.join("keys.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &Overrides::default()).unwrap().keys
}

fn software() -> Option<Custodian> {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().to_path_buf();
    Some(Custodian {
        keys: KeysConfig::default(),
        new_uri: Box::new(move || KeyUri::File(base.join(format!("{}.pem", unique("key"))))),
        _dir: dir,
    })
}

fn pkcs11() -> Option<Custodian> {
    let token = softhsm()?;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_from_toml(dir.path(), &token.toml());
    Some(Custodian { keys, new_uri: Box::new(move || token.key_uri(&unique("key")).parse().unwrap()), _dir: dir })
}

fn kms() -> Option<Custodian> {
    let endpoint = kms_endpoint()?;
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_from_toml(dir.path(), &custodians::kms_toml(&endpoint));
    Some(Custodian {
        keys,
        new_uri: Box::new(|| format!("awskms:alias/{}", unique("tessera-test")).parse().unwrap()),
        _dir: dir,
    })
}

fn verify(signer: &dyn Signer, message: &[u8], signature: &[u8]) {
    let (alg, point_len) = match signer.algorithm() {
        SigningAlgorithm::EcdsaP256Sha256 => (&ECDSA_P256_SHA256_ASN1, 65),
        SigningAlgorithm::EcdsaP384Sha384 => (&ECDSA_P384_SHA384_ASN1, 97),
    };
    let spki = signer.public_key_der();
    let point = &spki[spki.len() - point_len..];
    UnparsedPublicKey::new(alg, point).verify(message, signature).unwrap_or_else(|_| {
        panic!("{} made a signature that does not verify", signer.key_uri());
    });
}

async fn conformance(custodian: Custodian) {
    for algorithm in [SigningAlgorithm::EcdsaP256Sha256, SigningAlgorithm::EcdsaP384Sha384] {
        let uri = (custodian.new_uri)();

        // Opening a key that does not exist names the key and fails.
        let missing = open_signer(&uri, &custodian.keys).await.unwrap_err();
        assert!(matches!(missing, SignerError::KeyNotFound { .. }), "{missing}");
        assert!(missing.to_string().contains(&uri.to_string()), "{missing}");

        let created = open_or_create_signer(&uri, algorithm, &custodian.keys).await.unwrap();
        assert_eq!(created.algorithm(), algorithm);
        let reopened = open_signer(&uri, &custodian.keys).await.unwrap();
        assert_eq!(reopened.public_key_der(), created.public_key_der(), "{uri}: reopened key differs");
        assert_eq!(SigningAlgorithm::from_spki(created.public_key_der()), Some(algorithm));

        for message in [&b""[..], b"tessera", &vec![0x5a; 100_000]] {
            let signature = reopened.sign(message).await.unwrap();
            verify(reopened.as_ref(), message, &signature);
        }

        // Concurrent signatures through one signer all succeed and verify.
        let signer: Arc<dyn Signer> = reopened;
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let signer = signer.clone();
                tokio::spawn(async move {
                    let message = format!("message {i}").into_bytes();
                    let signature = signer.sign(&message).await.unwrap();
                    (message, signature)
                })
            })
            .collect();
        for task in tasks {
            let (message, signature) = task.await.unwrap();
            verify(signer.as_ref(), &message, &signature);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn software_keys_conform() {
    conformance(software().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pkcs11_keys_conform() {
    if let Some(custodian) = pkcs11() {
        conformance(custodian).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kms_keys_conform() {
    if let Some(custodian) = kms() {
        conformance(custodian).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pin_is_refused_without_printing_it() {
    let Some(token) = softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let wrong_pin = "98765-not-the-pin";
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, wrong_pin).unwrap();
    let keys =
        keys_from_toml(dir.path(), &format!("[keys.pkcs11]\nmodule = {:?}\npin_file = {pin_file:?}\n", token.module));
    let uri: KeyUri = token.key_uri("any-key").parse().unwrap();
    let error = open_signer(&uri, &keys).await.unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, SignerError::Rejected { .. }), "{text}");
    assert!(text.contains(&uri.to_string()) && text.contains("PIN"), "{text}");
    assert!(!text.contains(wrong_pin), "the PIN leaked: {text}");

    let absent: KeyUri = "pkcs11:token=no-such-token;object=root".parse().unwrap();
    let good = keys_from_toml(dir.path(), &token.toml());
    let error = open_signer(&absent, &good).await.unwrap_err();
    assert!(error.to_string().contains("no-such-token"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kms_key_is_named() {
    let Some(endpoint) = kms_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_from_toml(dir.path(), &custodians::kms_toml(&endpoint));
    for id in ["alias/no-such-key", "1234abcd-12ab-34cd-56ef-1234567890ab"] {
        let uri: KeyUri = format!("awskms:{id}").parse().unwrap();
        let error = open_signer(&uri, &keys).await.unwrap_err();
        assert!(matches!(error, SignerError::KeyNotFound { .. }), "{error}");
        assert!(error.to_string().contains(id), "{error}");
    }
}
