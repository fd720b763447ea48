//! Secrets at rest. What Tessera must keep and nobody may read from the
//! database (EAB HMAC keys, which bind ACME accounts; the nonce MAC key,
//! which forges nonces) is stored sealed: AES-256-GCM under a data key,
//! with the row it belongs to as associated data, so a sealed value moved
//! to another row does not open. Data keys live in `sealing_keys`, each
//! wrapped by a key-encryption key (KEK, `secrets.kek`) that is never
//! stored there: a file, a variable or a KMS key. Every node unwraps the
//! data keys once and keeps them in memory.
//!
//! New values are sealed under the newest data key. Rows stored before
//! sealing existed are sealed at start ([`Sealer::seal_stored`]);
//! `tessera secrets rotate-kek` makes a data key under a new KEK, seals
//! every row again under it and deletes the old data keys
//! ([`Sealer::rotate`]).

mod aead;
mod kek;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use secrecy::{ExposeSecret, SecretSlice};

use crate::clock::SharedClock;
use crate::keys::{AwsKmsConfig, SignerError};
use crate::storage::{SealedValue, SealingKeyRecord, SecretRow, SecretStore, StoreError, StoredSecret};
use aead::{KEY_LEN, SealingKey, random};
use kek::Kek;
pub use kek::{KekSource, ensure_kek_file};

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The KEK cannot be read (never says what it holds).
    #[error("secrets.kek: {0}")]
    Kek(String),
    /// KMS refused or could not be reached.
    #[error("secrets.kek: {0}")]
    Kms(#[from] SignerError),
    #[error("{0}")]
    Refused(String),
}

impl SecretsError {
    /// Whether trying again later may succeed (the database or KMS is busy).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Kms(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// What [`Sealer::rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    /// The data key every secret is now sealed under.
    pub data_key: String,
    /// The KEK that wraps it.
    pub kek: String,
    pub resealed: usize,
    /// Old data keys deleted.
    pub retired: u64,
}

/// Seals and opens stored secrets with the data keys its KEKs unwrap.
pub struct Sealer {
    db: SecretStore,
    clock: SharedClock,
    /// The current KEK first, then the previous one during a rotation.
    keks: Vec<Kek>,
    /// Unwrapped data keys by id.
    data_keys: RwLock<HashMap<String, Arc<SealingKey>>>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keks: Vec<&str> = self.keks.iter().map(Kek::label).collect();
        f.debug_struct("Sealer").field("keks", &keks).finish_non_exhaustive()
    }
}

/// What a sealed value is bound to: its table, column and row.
fn associated_data(row: &SecretRow) -> Vec<u8> {
    match row {
        SecretRow::EabHmacKey(kid) => format!("tessera/eab_keys/hmac_key/{kid}"),
        SecretRow::SharedSecret(name) => format!("tessera/acme_secrets/value/{name}"),
        SecretRow::AuthorityKey(name) => format!("tessera/authority_keys/pkcs8/{name}"),
    }
    .into_bytes()
}

fn describe(row: &SecretRow) -> String {
    match row {
        SecretRow::EabHmacKey(kid) => format!("the HMAC key of EAB key {kid:?}"),
        SecretRow::SharedSecret(name) => format!("the shared secret {name:?}"),
        SecretRow::AuthorityKey(name) => format!("the authority key {name:?}"),
    }
}

impl Sealer {
    /// Reads the KEKs (the current one first, as `Config::kek_sources`
    /// gives them) and unwraps the database's data keys. A database without
    /// data keys gets one under the current KEK. One whose data keys no
    /// configured KEK unwraps is refused: sealing under a new key there
    /// would leave other nodes unable to open what this one stores.
    pub async fn load(
        kek_sources: &[KekSource],
        kms: &AwsKmsConfig,
        db: SecretStore,
        clock: SharedClock,
    ) -> Result<Arc<Self>, SecretsError> {
        let mut keks = Vec::new();
        for source in kek_sources {
            keks.push(Kek::load(source, kms).await?);
        }
        let sealer = Self { db, clock, keks, data_keys: RwLock::default() };
        let stored = sealer.refresh().await?;
        if stored.is_empty() {
            sealer.new_data_key().await?;
        } else if !stored.iter().any(|k| sealer.has(&k.id)) {
            let labels: Vec<&str> = stored.iter().map(|k| k.kek.as_str()).collect();
            return Err(SecretsError::Refused(format!(
                "the database's secrets are sealed under another key-encryption key ({}); \
                 secrets.kek ({}) does not unwrap their data keys",
                labels.join(", "),
                sealer.keks[0].label()
            )));
        }
        Ok(Arc::new(sealer))
    }

    /// Seals `plaintext` for `row` under the newest data key.
    pub async fn seal(&self, row: &SecretRow, plaintext: &[u8]) -> Result<SealedValue, SecretsError> {
        let stored = self.refresh().await?;
        let newest = stored.last().ok_or_else(|| SecretsError::Refused("the database has no data key".into()))?;
        if !self.has(&newest.id) {
            return Err(SecretsError::Refused(format!(
                "the newest data key {} is wrapped by {}, which this node's secrets.kek does not unwrap",
                newest.id, newest.kek
            )));
        }
        self.seal_under(&newest.id, row, plaintext)
    }

    /// Seals `plaintext` for `row` under the data key `key_id`, unwrapped.
    fn seal_under(&self, key_id: &str, row: &SecretRow, plaintext: &[u8]) -> Result<SealedValue, SecretsError> {
        let key = self.data_key(key_id).ok_or_else(|| SecretsError::Refused(format!("no data key {key_id}")))?;
        Ok(SealedValue { bytes: key.seal(&associated_data(row), plaintext)?, key_id: key_id.to_owned() })
    }

    /// The plaintext of a stored secret. A row still in the clear, sealed
    /// for another row, altered, or sealed under a data key no configured
    /// KEK unwraps is refused.
    pub async fn open(&self, stored: &StoredSecret) -> Result<SecretSlice<u8>, SecretsError> {
        let Some(key_id) = &stored.sealed_with else {
            return Err(SecretsError::Refused(format!(
                "{} is not sealed (stored secrets are sealed when Tessera starts)",
                describe(&stored.row)
            )));
        };
        if !self.has(key_id) {
            self.refresh().await?;
        }
        let key = self.data_key(key_id).ok_or_else(|| {
            SecretsError::Refused(format!(
                "{} is sealed under data key {key_id}, which is not unwrapped here",
                describe(&stored.row)
            ))
        })?;
        key.open(&associated_data(&stored.row), &stored.value).map(SecretSlice::from).ok_or_else(|| {
            SecretsError::Refused(format!(
                "{} does not open: it was altered or belongs to another row",
                describe(&stored.row)
            ))
        })
    }

    /// The PKCS#8 of the authority key `sealed:<name>`, read from the
    /// database and opened (`StoreError::NotFound` when it is not there).
    pub async fn open_authority_key(&self, name: &str) -> Result<SecretSlice<u8>, SecretsError> {
        self.open(&self.db.authority_key(name).await?).await
    }

    /// Seals the secrets stored before sealing existed (at every start;
    /// a second run finds none). Returns how many it sealed.
    pub async fn seal_stored(&self) -> Result<usize, SecretsError> {
        let mut sealed = 0;
        for stored in self.db.secrets_to_seal(None).await? {
            let fresh = self.seal(&stored.row, &stored.value).await?;
            if self.db.reseal_secret(&stored, &fresh).await? {
                sealed += 1;
            }
        }
        if sealed > 0 {
            self.db.forget_replaced_values().await?;
            tracing::info!(sealed, "sealed secrets stored in the clear by an earlier version");
        }
        Ok(sealed)
    }

    /// Makes a data key under the current KEK, seals every stored secret
    /// again under it (until none is left under another: nodes keep
    /// storing meanwhile) and deletes the data keys that seal nothing any
    /// more (one a node used meanwhile stays, for the next rotation). Every node must be able to unwrap the new data key first:
    /// give them the new KEK as `secrets.kek` and the old one as
    /// `secrets.previous_kek`.
    pub async fn rotate(&self) -> Result<Rotation, SecretsError> {
        let data_key = self.new_data_key().await?;
        let mut resealed = 0;
        loop {
            let left = self.db.secrets_to_seal(Some(&data_key)).await?;
            if left.is_empty() {
                break;
            }
            for stored in left {
                let plaintext = match stored.sealed_with {
                    Some(_) => self.open(&stored).await?,
                    None => SecretSlice::from(stored.value.clone()),
                };
                let fresh = self.seal_under(&data_key, &stored.row, plaintext.expose_secret())?;
                if self.db.reseal_secret(&stored, &fresh).await? {
                    resealed += 1;
                }
            }
        }
        let retired = self.db.delete_unused_sealing_keys(&data_key).await?;
        self.db.forget_replaced_values().await?;
        Ok(Rotation { data_key, kek: self.keks[0].label().to_owned(), resealed, retired })
    }

    /// A fresh data key, wrapped by the current KEK and stored; its id.
    async fn new_data_key(&self) -> Result<String, SecretsError> {
        let id = hex::encode(random::<8>()?);
        let bytes = SecretSlice::from(random::<KEY_LEN>()?.to_vec());
        let kek = &self.keks[0];
        let wrapped = kek.wrap(&id, bytes.expose_secret()).await?;
        let record =
            SealingKeyRecord { id: id.clone(), kek: kek.label().to_owned(), wrapped, created_at: self.clock.unix() };
        self.db.insert_sealing_key(&record).await?;
        self.remember(&id, SealingKey::new(bytes.expose_secret())?);
        tracing::info!(data_key = %id, kek = %kek.label(), "made a data key for secrets at rest");
        Ok(id)
    }

    /// Reads every data key and unwraps those not unwrapped yet that a
    /// configured KEK can; returns them all, oldest first.
    async fn refresh(&self) -> Result<Vec<SealingKeyRecord>, SecretsError> {
        let stored = self.db.sealing_keys().await?;
        for record in stored.iter().filter(|k| !self.has(&k.id)) {
            for kek in self.keks.iter().filter(|kek| kek.may_have_wrapped(&record.kek)) {
                if let Some(bytes) = kek.unwrap(&record.id, &record.wrapped).await? {
                    self.remember(&record.id, SealingKey::new(bytes.expose_secret())?);
                    break;
                }
            }
        }
        Ok(stored)
    }

    fn has(&self, id: &str) -> bool {
        self.data_key(id).is_some()
    }

    fn data_key(&self, id: &str) -> Option<Arc<SealingKey>> {
        self.data_keys.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    fn remember(&self, id: &str, key: SealingKey) {
        self.data_keys.write().unwrap_or_else(|e| e.into_inner()).insert(id.to_owned(), Arc::new(key));
    }
}
