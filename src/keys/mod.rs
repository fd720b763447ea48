//! Key custody. Every signature Tessera makes (certificates, CRLs, OCSP
//! responses) goes through the [`Signer`] trait; the custodian behind it is
//! chosen by a [`KeyUri`]: `file:` software keys, `pkcs11:` HSM keys (RFC 7512)
//! or `awskms:` keys.
//!
//! Architecture invariant: only this module talks to a key store.

mod algorithm;
mod key_uri;
mod signer;
pub mod software;

pub use algorithm::SigningAlgorithm;
pub use key_uri::{KeyUri, KeyUriError};
pub use signer::{Signer, SignerError};

use std::sync::Arc;

use crate::config::KeysConfig;

/// Opens the signer a key URI names, with the custodian settings from config.
pub async fn open_signer(uri: &KeyUri, config: &KeysConfig) -> Result<Arc<dyn Signer>, SignerError> {
    match uri {
        KeyUri::File(path) => {
            let signer = software::SoftwareSigner::load(uri.clone(), path, config.file.passphrase()?.as_ref())?;
            Ok(Arc::new(signer))
        }
        KeyUri::Pkcs11(_) | KeyUri::AwsKms(_) => Err(SignerError::Unsupported {
            key: uri.to_string(),
            reason: "this custodian is not built into this version".into(),
        }),
    }
}
