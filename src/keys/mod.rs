//! Key custody. Every signature Tessera makes (certificates, CRLs, OCSP
//! responses) goes through the [`Signer`] trait; the custodian behind it is
//! chosen by a [`KeyUri`]: `file:` software keys, `pkcs11:` HSM keys (RFC 7512)
//! or `awskms:` keys.
//!
//! Architecture invariant: only this module talks to a key store.

mod algorithm;
pub mod awskms;
mod config;
mod ecdsa;
mod key_uri;
pub mod pkcs11;
mod signer;
pub mod software;

pub use algorithm::SigningAlgorithm;
pub use config::{AwsKmsConfig, FileKeysConfig, KeysConfig, Pkcs11Config, read_secret};
pub use key_uri::{KeyUri, KeyUriError, Pkcs11Uri, redact_pins};
pub use signer::{KeyIdentity, Signer, SignerError};

use std::sync::Arc;

/// Opens the signer a key URI names, with the custodian settings from config.
pub async fn open_signer(uri: &KeyUri, config: &KeysConfig) -> Result<Arc<dyn Signer>, SignerError> {
    match uri {
        KeyUri::File(path) => {
            let signer = software::SoftwareSigner::load(uri.clone(), path, config.file.passphrase()?.as_ref())?;
            Ok(Arc::new(signer))
        }
        KeyUri::Pkcs11(selector) => {
            Ok(Arc::new(pkcs11::Pkcs11Signer::open(uri.clone(), selector.clone(), &config.pkcs11).await?))
        }
        KeyUri::AwsKms(key_id) => Ok(Arc::new(awskms::KmsSigner::open(uri.clone(), key_id, &config.awskms).await?)),
        KeyUri::Sealed(_) => Err(sealed_key(uri)),
        KeyUri::Memory(_) => Err(memory_key(uri)),
    }
}

/// Opens the key, or creates it in its custodian when it does not exist yet
/// (for `tessera init`): a new file, a key pair generated on the token, or a
/// new KMS key under the URI's alias.
pub async fn open_or_create_signer(
    uri: &KeyUri,
    algorithm: SigningAlgorithm,
    config: &KeysConfig,
) -> Result<Arc<dyn Signer>, SignerError> {
    match uri {
        KeyUri::File(path) => {
            let passphrase = config.file.passphrase()?;
            Ok(Arc::new(software::SoftwareSigner::load_or_generate(uri.clone(), path, algorithm, passphrase.as_ref())?))
        }
        KeyUri::Pkcs11(selector) => Ok(Arc::new(
            pkcs11::Pkcs11Signer::open_or_generate(uri.clone(), selector.clone(), &config.pkcs11, Some(algorithm))
                .await?,
        )),
        KeyUri::AwsKms(key_id) => {
            Ok(Arc::new(awskms::KmsSigner::open_or_create(uri.clone(), key_id, &config.awskms, Some(algorithm)).await?))
        }
        KeyUri::Sealed(_) => Err(sealed_key(uri)),
        KeyUri::Memory(_) => Err(memory_key(uri)),
    }
}

/// A sealed key is in the database, which `keys` does not read: its
/// PKCS#8 is opened by `secrets` and given to [`software::SoftwareSigner::from_pkcs8`].
fn sealed_key(uri: &KeyUri) -> SignerError {
    SignerError::Unsupported { key: uri.to_string(), reason: "a sealed key is opened from the database".into() }
}

fn memory_key(uri: &KeyUri) -> SignerError {
    SignerError::Unsupported { key: uri.to_string(), reason: "in-memory keys cannot be opened again".into() }
}
