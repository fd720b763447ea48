//! The key-encryption key (KEK): where it comes from, and how it wraps
//! and unwraps data keys. It is never stored in the database: a local KEK
//! (32 bytes, base64, from a file or a variable) seals data keys with
//! AES-256-GCM here; a KMS KEK never leaves KMS, which `Encrypt`s and
//! `Decrypt`s them.

use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretSlice};

use super::SecretsError;
use super::aead::{KEY_LEN, SealingKey, random};
use crate::keys::AwsKmsConfig;
use crate::keys::awskms::KmsKeyWrapper;
use crate::private_files::{create_private_dir, create_private_file};

/// Where a KEK comes from, as `secrets.kek` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `file:PATH`: base64 of 32 random bytes, one line.
    File(PathBuf),
    /// `env:VAR`: the same, in a variable.
    Env(String),
    /// `awskms:KEY`: a symmetric KMS key (id, ARN or alias).
    AwsKms(String),
}

impl FromStr for KekSource {
    type Err = String;

    /// Never quotes the text: a KEK written here by mistake is a secret.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (scheme, rest) = text.split_once(':').unwrap_or(("", ""));
        match (scheme, rest) {
            ("file", path) if !path.is_empty() => Ok(Self::File(PathBuf::from(path))),
            ("env", var) if !var.is_empty() && var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                Ok(Self::Env(var.to_owned()))
            }
            ("awskms", key) if !key.is_empty() => Ok(Self::AwsKms(key.to_owned())),
            _ => Err("must be file:PATH, env:VAR or awskms:KEY (the KEK's source, never the key itself)".into()),
        }
    }
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "file:{}", path.display()),
            Self::Env(var) => write!(f, "env:{var}"),
            Self::AwsKms(key) => write!(f, "awskms:{key}"),
        }
    }
}

/// Makes the KEK file `source` names when it does not exist (dev mode,
/// `tessera init`): 32 random bytes, base64, mode 0600. True when made.
pub fn ensure_kek_file(source: &KekSource) -> Result<bool, SecretsError> {
    let KekSource::File(path) = source else { return Ok(false) };
    if path.exists() {
        return Ok(false);
    }
    let failed = |e: std::io::Error| SecretsError::Kek(format!("{source}: {e}"));
    if let Some(parent) = path.parent() {
        create_private_dir(parent).map_err(failed)?;
    }
    let key = SecretSlice::from(random::<KEY_LEN>()?.to_vec());
    let mut file = create_private_file(path).map_err(failed)?;
    std::io::Write::write_all(&mut file, format!("{}\n", STANDARD.encode(key.expose_secret())).as_bytes())
        .map_err(failed)?;
    file.sync_all().map_err(failed)?;
    tracing::info!(kek = %source, "made a key-encryption key");
    Ok(true)
}

/// A KEK ready to wrap and unwrap data keys.
#[derive(Debug)]
pub(super) enum Kek {
    Local { label: String, key: SealingKey },
    Kms { label: String, wrapper: KmsKeyWrapper },
}

impl Kek {
    /// Reads a local KEK or makes a KMS client (KMS is first called when a
    /// data key is wrapped or unwrapped).
    pub(super) async fn load(source: &KekSource, kms: &AwsKmsConfig) -> Result<Self, SecretsError> {
        let text = match source {
            KekSource::AwsKms(key) => {
                return Ok(Self::Kms { label: source.to_string(), wrapper: KmsKeyWrapper::new(key, kms).await });
            }
            KekSource::File(path) => {
                warn_if_readable_by_others(source, path);
                std::fs::read_to_string(path).map_err(|e| SecretsError::Kek(format!("{source}: {e}")))?
            }
            KekSource::Env(var) => {
                std::env::var(var).map_err(|_| SecretsError::Kek(format!("{source}: the variable is not set")))?
            }
        };
        let bytes = SecretSlice::from(STANDARD.decode(text.trim()).unwrap_or_default());
        if bytes.expose_secret().len() != KEY_LEN {
            return Err(SecretsError::Kek(format!(
                "{source} does not hold {KEY_LEN} bytes in base64 (make one with `openssl rand -base64 32`)"
            )));
        }
        Ok(Self::Local { label: local_label(bytes.expose_secret()), key: SealingKey::new(bytes.expose_secret())? })
    }

    /// How the database names this KEK: a fingerprint of a local key, the
    /// key a KMS KEK was configured as.
    pub(super) fn label(&self) -> &str {
        match self {
            Self::Local { label, .. } | Self::Kms { label, .. } => label,
        }
    }

    /// Whether a data key the database says `label` wrapped may be this
    /// KEK's to unwrap (KMS knows a key by id, ARN and aliases: it decides).
    pub(super) fn may_have_wrapped(&self, label: &str) -> bool {
        match self {
            Self::Local { label: own, .. } => own == label,
            Self::Kms { .. } => label.starts_with("awskms:"),
        }
    }

    /// Wraps the data key `id`.
    pub(super) async fn wrap(&self, id: &str, data_key: &[u8]) -> Result<Vec<u8>, SecretsError> {
        match self {
            Self::Local { key, .. } => key.seal(&wrap_context(id), data_key),
            Self::Kms { wrapper, .. } => Ok(wrapper.encrypt(data_key, id).await?),
        }
    }

    /// Unwraps the data key `id`; None when this KEK did not wrap it.
    pub(super) async fn unwrap(&self, id: &str, wrapped: &[u8]) -> Result<Option<SecretSlice<u8>>, SecretsError> {
        match self {
            Self::Local { key, .. } => Ok(key.open(&wrap_context(id), wrapped).map(SecretSlice::from)),
            Self::Kms { wrapper, .. } => Ok(wrapper.decrypt(wrapped, id).await?.map(SecretSlice::from)),
        }
    }
}

/// What a local KEK binds a wrapped data key to: its id.
fn wrap_context(id: &str) -> Vec<u8> {
    format!("tessera/sealing_keys/{id}").into_bytes()
}

/// `local:` and 16 hex digits of an HMAC of a fixed text under the key:
/// names the key without revealing anything of it.
fn local_label(key: &[u8]) -> String {
    let mac = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key),
        b"tessera key-encryption key fingerprint",
    );
    format!("local:{}", hex::encode(&mac.as_ref()[..8]))
}

fn warn_if_readable_by_others(source: &KekSource, path: &std::path::Path) {
    #[cfg(unix)]
    if let Ok(metadata) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o077 != 0 {
            tracing::warn!(kek = %source, "the key-encryption key file can be read by others than its owner");
        }
    }
    #[cfg(not(unix))]
    let _ = (source, path);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn sources_parse_without_quoting_what_they_refuse() {
        assert_eq!("file:secrets.kek".parse(), Ok(KekSource::File("secrets.kek".into())));
        assert_eq!("env:TESSERA_KEK".parse(), Ok(KekSource::Env("TESSERA_KEK".into())));
        assert_eq!("awskms:alias/tessera-kek".parse(), Ok(KekSource::AwsKms("alias/tessera-kek".into())));
        let key = "q3m0sKZrj2hPo0Kz3Y0Xyv+9a7xGm2cQ8nJ1lFvT4aE=";
        assert!(!key.parse::<KekSource>().unwrap_err().contains(key));
        for text in ["file:", "env:A-B", "vault:x", ""] {
            assert!(text.parse::<KekSource>().is_err(), "{text}");
        }
    }

    #[tokio::test]
    async fn a_local_kek_wraps_for_one_id_only() {
        let dir = tempfile::tempdir().unwrap();
        let source = KekSource::File(dir.path().join("sub/kek"));
        assert!(ensure_kek_file(&source).unwrap());
        assert!(!ensure_kek_file(&source).unwrap(), "an existing KEK is kept");
        let kek = Kek::load(&source, &AwsKmsConfig::default()).await.unwrap();
        assert!(kek.label().starts_with("local:") && kek.may_have_wrapped(kek.label()));
        let wrapped = kek.wrap("a", &[5; KEY_LEN]).await.unwrap();
        assert_eq!(kek.unwrap("a", &wrapped).await.unwrap().unwrap().expose_secret(), &[5; KEY_LEN]);
        assert!(kek.unwrap("b", &wrapped).await.unwrap().is_none());

        std::fs::write(dir.path().join("short"), "c2hvcnQ=\n").unwrap();
        let short = KekSource::File(dir.path().join("short"));
        let refused = Kek::load(&short, &AwsKmsConfig::default()).await.unwrap_err().to_string();
        assert!(refused.contains("32 bytes") && !refused.contains("c2hvcnQ"), "{refused}");
    }
}
