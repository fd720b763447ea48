//! The `[keys]` section of the configuration: how to reach each key
//! custodian. It lives with the custodians so that `keys` depends on no
//! other part of Tessera's configuration.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::SignerError;

/// Settings for the key custodians.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    pub file: FileKeysConfig,
    pub pkcs11: Pkcs11Config,
    pub awskms: AwsKmsConfig,
}

/// The PKCS#11 module that holds `pkcs11:` keys. Nothing here is specific to
/// one vendor: SoftHSM2, a network HSM or CloudHSM differ only in `module`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// Path of the vendor's PKCS#11 library.
    pub module: Option<PathBuf>,
    /// Variable holding the user PIN.
    pub pin_env: Option<String>,
    /// File holding the user PIN (trailing newline ignored).
    pub pin_file: Option<PathBuf>,
    /// Sessions kept open per key; also the number of signatures in flight.
    pub sessions: usize,
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Self { module: None, pin_env: None, pin_file: None, sessions: 8 }
    }
}

impl Pkcs11Config {
    /// The user PIN from its configured source, never from the key URI.
    pub fn pin(&self, key: &str) -> Result<SecretString, SignerError> {
        read_secret(key, "keys.pkcs11.pin_env", &self.pin_env, "keys.pkcs11.pin_file", &self.pin_file)?.ok_or_else(
            || SignerError::Unavailable {
                key: key.into(),
                reason: "no PIN source: set keys.pkcs11.pin_env or keys.pkcs11.pin_file".into(),
            },
        )
    }
}

/// AWS KMS settings for `awskms:` keys. Credentials come from the standard AWS
/// chain (environment, profile, instance role); `endpoint` is for emulators.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsKmsConfig {
    pub region: Option<String>,
    pub endpoint: Option<String>,
    /// Signatures in flight at once, per key.
    pub max_concurrency: usize,
    /// Time allowed for one attempt of one KMS call.
    pub attempt_timeout_ms: u64,
    /// Attempts per call, with exponential backoff between them (throttling,
    /// timeouts and 5xx are retried).
    pub max_attempts: u32,
}

impl Default for AwsKmsConfig {
    fn default() -> Self {
        Self { region: None, endpoint: None, max_concurrency: 32, attempt_timeout_ms: 3000, max_attempts: 4 }
    }
}

/// Where the passphrase of encrypted `file:` keys comes from; never the
/// passphrase itself, so a config file can be shared.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileKeysConfig {
    pub passphrase_env: Option<String>,
    pub passphrase_file: Option<PathBuf>,
}

impl FileKeysConfig {
    pub fn passphrase(&self) -> Result<Option<SecretString>, SignerError> {
        read_secret(
            "file:",
            "keys.file.passphrase_env",
            &self.passphrase_env,
            "keys.file.passphrase_file",
            &self.passphrase_file,
        )
    }
}

/// Reads a secret from the variable or file a config field names.
pub fn read_secret(
    key: &str,
    env_field: &str,
    env: &Option<String>,
    file_field: &str,
    file: &Option<PathBuf>,
) -> Result<Option<SecretString>, SignerError> {
    let unavailable = |reason: String| SignerError::Unavailable { key: key.into(), reason };
    if let Some(var) = env {
        let value = std::env::var(var).map_err(|_| unavailable(format!("{env_field}: variable {var} is not set")))?;
        return Ok(Some(SecretString::from(value)));
    }
    if let Some(path) = file {
        let value =
            std::fs::read_to_string(path).map_err(|e| unavailable(format!("{file_field} {}: {e}", path.display())))?;
        return Ok(Some(SecretString::from(value.trim_end_matches(['\r', '\n']).to_owned())));
    }
    Ok(None)
}
