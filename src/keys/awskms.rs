//! `awskms:` keys: asymmetric ECC keys in AWS KMS, through `aws-sdk-kms`.
//! Tessera hashes locally and asks KMS to sign the digest
//! (`MessageType=DIGEST`), so a CRL of any size costs one small call.
//! Throttling, timeouts and 5xx answers are retried by the SDK's standard
//! retry strategy (exponential backoff with jitter); what is still failing
//! after the last attempt surfaces as a retryable [`SignerError`].
//!
//! A symmetric KMS key can also be the key-encryption key of secrets at
//! rest ([`KmsKeyWrapper`]: `Encrypt` and `Decrypt` of Tessera's data keys).

use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_kms::Client;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use tokio::sync::Semaphore;

use super::{KeyIdentity, KeyUri, Signer, SignerError, SigningAlgorithm};
use crate::keys::AwsKmsConfig;

/// A KMS key that signs, with a cap on calls in flight.
pub struct KmsSigner {
    identity: KeyIdentity,
    name: String,
    key_id: String,
    client: Client,
    in_flight: Semaphore,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsSigner")
            .field("uri", &self.name)
            .field("algorithm", &self.identity.algorithm)
            .finish_non_exhaustive()
    }
}

/// A KMS client from the standard AWS chain plus Tessera's settings.
pub async fn client(config: &AwsKmsConfig) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(config.max_attempts.max(1))
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_millis(config.attempt_timeout_ms))
                .operation_attempt_timeout(Duration::from_millis(config.attempt_timeout_ms))
                .build(),
        );
    if let Some(region) = &config.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let shared = loader.load().await;
    let mut builder = aws_sdk_kms::config::Builder::from(&shared);
    if shared.region().is_none() {
        // Without a region the SDK cannot build a request; an emulator does
        // not care which, real KMS needs the configured one.
        builder = builder.region(Region::new("us-east-1"));
    }
    Client::from_conf(builder.build())
}

impl KmsSigner {
    /// Reads the key's public key and checks that it is an ECC signing key.
    pub async fn open(uri: KeyUri, key_id: &str, config: &AwsKmsConfig) -> Result<Self, SignerError> {
        Self::open_or_create(uri, key_id, config, None).await
    }

    /// As [`open`](Self::open); when `create` is given and the URI names an
    /// alias that does not exist yet, creates the key and the alias.
    pub async fn open_or_create(
        uri: KeyUri,
        key_id: &str,
        config: &AwsKmsConfig,
        create: Option<SigningAlgorithm>,
    ) -> Result<Self, SignerError> {
        let name = uri.to_string();
        let client = client(config).await;
        let public = match client.get_public_key().key_id(key_id).send().await {
            Err(e)
                if create.is_some() && key_id.starts_with("alias/") && error_code(&e) == Some("NotFoundException") =>
            {
                let algorithm = create.unwrap_or(SigningAlgorithm::EcdsaP256Sha256);
                create_key(&client, &name, key_id, algorithm).await?;
                client.get_public_key().key_id(key_id).send().await
            }
            other => other,
        }
        .map_err(|e| kms_error(&name, "GetPublicKey", &e))?;

        if public.key_usage() != Some(&KeyUsageType::SignVerify) {
            return Err(SignerError::Rejected { key: name, reason: "the key's usage is not SIGN_VERIFY".into() });
        }
        let algorithm = match public.key_spec() {
            Some(KeySpec::EccNistP256) => SigningAlgorithm::EcdsaP256Sha256,
            Some(KeySpec::EccNistP384) => SigningAlgorithm::EcdsaP384Sha384,
            other => {
                return Err(SignerError::Unsupported {
                    key: name,
                    reason: format!("key spec {other:?}; Tessera signs with ECC_NIST_P256 or ECC_NIST_P384"),
                });
            }
        };
        let spki = public.public_key().map(|b| b.as_ref().to_vec()).unwrap_or_default();
        if SigningAlgorithm::from_spki(&spki) != Some(algorithm) {
            return Err(SignerError::Rejected { key: name, reason: "KMS returned an unreadable public key".into() });
        }
        Ok(Self {
            identity: KeyIdentity { uri, algorithm, spki },
            name,
            key_id: key_id.to_owned(),
            client,
            in_flight: Semaphore::new(config.max_concurrency.max(1)),
        })
    }
}

async fn create_key(client: &Client, name: &str, alias: &str, algorithm: SigningAlgorithm) -> Result<(), SignerError> {
    let spec = match algorithm {
        SigningAlgorithm::EcdsaP256Sha256 => KeySpec::EccNistP256,
        SigningAlgorithm::EcdsaP384Sha384 => KeySpec::EccNistP384,
    };
    let created = client
        .create_key()
        .key_spec(spec)
        .key_usage(KeyUsageType::SignVerify)
        .description("Tessera CA key")
        .send()
        .await
        .map_err(|e| kms_error(name, "CreateKey", &e))?;
    let key_id = created.key_metadata().map(|m| m.key_id().to_owned()).unwrap_or_default();
    client
        .create_alias()
        .alias_name(alias)
        .target_key_id(&key_id)
        .send()
        .await
        .map_err(|e| kms_error(name, "CreateAlias", &e))?;
    tracing::info!(key = name, kms_key_id = %key_id, algorithm = %algorithm, "created a KMS key");
    Ok(())
}

fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    match error {
        SdkError::ServiceError(e) => e.err().code(),
        _ => None,
    }
}

/// Maps a KMS failure: busy or unreachable is retryable, a key that is
/// missing, disabled or of the wrong kind is not.
fn kms_error<E, R>(name: &str, call: &str, error: &SdkError<E, R>) -> SignerError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let key = name.to_owned();
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("unknown");
            let message = service.err().message().unwrap_or_default();
            let reason = format!("{call}: {code}: {message}");
            match code {
                "ThrottlingException" | "TooManyRequestsException" | "RequestLimitExceeded" => {
                    SignerError::Throttled { key }
                }
                "NotFoundException" => SignerError::KeyNotFound { key, reason },
                "KMSInternalException"
                | "DependencyTimeoutException"
                | "KeyUnavailableException"
                | "ServiceUnavailableException"
                | "InternalFailure" => SignerError::Unavailable { key, reason },
                _ => SignerError::Rejected { key, reason },
            }
        }
        SdkError::TimeoutError(_) => SignerError::Unavailable { key, reason: format!("{call}: timed out") },
        SdkError::DispatchFailure(e) => SignerError::Unavailable { key, reason: format!("{call}: {e:?}") },
        SdkError::ResponseError(_) => SignerError::Unavailable { key, reason: format!("{call}: unreadable response") },
        other => SignerError::Unavailable { key, reason: format!("{call}: {other}") },
    }
}

/// A symmetric KMS key that wraps Tessera's data keys (`crate::secrets`):
/// the key material never leaves KMS, so the database's wrapped data keys
/// are of no use without a call KMS can refuse. Each call names what it
/// wraps in the encryption context, so a blob cannot be unwrapped as
/// another.
pub struct KmsKeyWrapper {
    name: String,
    key_id: String,
    client: Client,
}

impl std::fmt::Debug for KmsKeyWrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsKeyWrapper").field("key", &self.name).finish_non_exhaustive()
    }
}

/// The encryption context entry every wrapped data key carries.
const CONTEXT_KEY: &str = "tessera-sealing-key";

impl KmsKeyWrapper {
    /// A client for the key `key_id` (id, ARN or alias); nothing is called yet.
    pub async fn new(key_id: &str, config: &AwsKmsConfig) -> Self {
        Self { name: format!("awskms:{key_id}"), key_id: key_id.to_owned(), client: client(config).await }
    }

    /// `Encrypt` of `plaintext` (at most 4 KB), bound to `context`.
    pub async fn encrypt(&self, plaintext: &[u8], context: &str) -> Result<Vec<u8>, SignerError> {
        let done = self
            .client
            .encrypt()
            .key_id(&self.key_id)
            .plaintext(Blob::new(plaintext))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
            .map_err(|e| kms_error(&self.name, "Encrypt", &e))?;
        done.ciphertext_blob().map(|b| b.as_ref().to_vec()).ok_or_else(|| SignerError::Rejected {
            key: self.name.clone(),
            reason: "Encrypt returned no ciphertext".into(),
        })
    }

    /// `Decrypt` of what [`encrypt`](Self::encrypt) made for the same
    /// `context` under this key. None when the blob is not that (another
    /// key's, or made for another context); a key KMS cannot use now
    /// (disabled, pending deletion, access denied) is an error.
    pub async fn decrypt(&self, blob: &[u8], context: &str) -> Result<Option<Vec<u8>>, SignerError> {
        let done = match self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, context)
            .send()
            .await
        {
            Ok(done) => done,
            Err(e) if matches!(error_code(&e), Some("IncorrectKeyException" | "InvalidCiphertextException")) => {
                return Ok(None);
            }
            Err(e) => return Err(kms_error(&self.name, "Decrypt", &e)),
        };
        let plaintext = done.plaintext().map(|b| b.as_ref().to_vec()).ok_or_else(|| SignerError::Rejected {
            key: self.name.clone(),
            reason: "Decrypt returned no plaintext".into(),
        })?;
        Ok(Some(plaintext))
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn identity(&self) -> &KeyIdentity {
        &self.identity
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let algorithm = self.identity.algorithm;
        let digest = algorithm.digest(message);
        let spec = match algorithm {
            SigningAlgorithm::EcdsaP256Sha256 => SigningAlgorithmSpec::EcdsaSha256,
            SigningAlgorithm::EcdsaP384Sha384 => SigningAlgorithmSpec::EcdsaSha384,
        };
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| SignerError::Unavailable { key: self.name.clone(), reason: "shutting down".into() })?;
        let signed = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(digest))
            .message_type(MessageType::Digest)
            .signing_algorithm(spec)
            .send()
            .await
            .map_err(|e| kms_error(&self.name, "Sign", &e))?;
        signed.signature().map(|b| b.as_ref().to_vec()).ok_or_else(|| SignerError::Rejected {
            key: self.name.clone(),
            reason: "Sign returned no signature".into(),
        })
    }
}
