//! Sealed secrets as the database holds them: the data keys that seal
//! them (`sealing_keys`, each wrapped by a key-encryption key that is
//! never stored here), and the rows whose secret is sealed (`eab_keys`'
//! HMAC keys, `acme_secrets`' values, `authority_keys`' software CA keys),
//! each naming its data key in `sealed_with`. Sealing itself is `crate::secrets`'s.

use super::{Db, SecretStore, StoreError, begin_write, with_pool};

/// A data key, wrapped by the key-encryption key `kek` names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SealingKeyRecord {
    pub id: String,
    /// Which key-encryption key wrapped it (`local:<fingerprint>`,
    /// `awskms:<key>`); never the key itself.
    pub kek: String,
    pub wrapped: Vec<u8>,
    pub created_at: i64,
}

/// Where a sealed secret is stored; its seal is bound to this place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRow {
    /// `eab_keys.hmac_key` of the key with this kid.
    EabHmacKey(String),
    /// `acme_secrets.value` of the secret with this name.
    SharedSecret(String),
    /// `authority_keys.pkcs8` of the key with this name (`sealed:<name>`).
    AuthorityKey(String),
}

/// A secret as read: its place, its bytes and the data key that sealed
/// them (None: stored before sealing, still in the clear).
#[derive(Clone)]
pub struct StoredSecret {
    pub row: SecretRow,
    pub value: Vec<u8>,
    pub sealed_with: Option<String>,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("row", &self.row)
            .field("sealed_with", &self.sealed_with)
            .finish_non_exhaustive()
    }
}

/// A secret sealed under the data key `key_id`, ready to be stored.
#[derive(Debug, Clone)]
pub struct SealedValue {
    pub bytes: Vec<u8>,
    pub key_id: String,
}

/// An authority's software key, sealed for [`SecretRow::AuthorityKey`]
/// under its `name`, ready to be stored with the authority.
#[derive(Debug, Clone)]
pub struct SealedKey {
    pub name: String,
    pub value: SealedValue,
}

impl SecretStore {
    /// Every data key, oldest first.
    pub async fn sealing_keys(&self) -> Result<Vec<SealingKeyRecord>, StoreError> {
        const SQL: &str = "SELECT id, kek, wrapped, created_at FROM sealing_keys ORDER BY created_at, id";
        with_pool!(self.db(), pool => sqlx::query_as::<_, SealingKeyRecord>(SQL).fetch_all(pool).await.map_err(StoreError::from))
    }

    pub async fn insert_sealing_key(&self, key: &SealingKeyRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sealing_keys (id, kek, wrapped, created_at) VALUES ($1, $2, $3, $4)";
        with_pool!(self.db(), pool => {
            sqlx::query(SQL).bind(&key.id).bind(&key.kek).bind(&key.wrapped).bind(key.created_at)
                .execute(pool).await?;
            Ok(())
        })
    }

    /// The secrets still in the clear, and with `other_than`, also those
    /// sealed under any data key but that one.
    pub async fn secrets_to_seal(&self, other_than: Option<&str>) -> Result<Vec<StoredSecret>, StoreError> {
        const EAB: &str = "SELECT kid, hmac_key, sealed_with FROM eab_keys \
             WHERE sealed_with IS NULL OR sealed_with <> COALESCE($1, sealed_with) ORDER BY id";
        const SHARED: &str = "SELECT name, value, sealed_with FROM acme_secrets \
             WHERE sealed_with IS NULL OR sealed_with <> COALESCE($1, sealed_with) ORDER BY name";
        const AUTHORITY: &str = "SELECT name, pkcs8, sealed_with FROM authority_keys \
             WHERE sealed_with <> COALESCE($1, sealed_with) ORDER BY name";
        type Row = (String, Vec<u8>, Option<String>);
        let (eab, shared, authority): (Vec<Row>, Vec<Row>, Vec<Row>) = with_pool!(self.db(), pool => (
            sqlx::query_as(EAB).bind(other_than).fetch_all(pool).await?,
            sqlx::query_as(SHARED).bind(other_than).fetch_all(pool).await?,
            sqlx::query_as(AUTHORITY).bind(other_than).fetch_all(pool).await?,
        ));
        let eab = eab.into_iter().map(|(kid, value, sealed_with)| (SecretRow::EabHmacKey(kid), value, sealed_with));
        let shared =
            shared.into_iter().map(|(name, value, sealed_with)| (SecretRow::SharedSecret(name), value, sealed_with));
        let authority =
            authority.into_iter().map(|(name, value, sealed_with)| (SecretRow::AuthorityKey(name), value, sealed_with));
        Ok(eab
            .chain(shared)
            .chain(authority)
            .map(|(row, value, sealed_with)| StoredSecret { row, value, sealed_with })
            .collect())
    }

    /// The sealed key of the authority key URI `sealed:<name>`.
    pub async fn authority_key(&self, name: &str) -> Result<StoredSecret, StoreError> {
        const SQL: &str = "SELECT pkcs8, sealed_with FROM authority_keys WHERE name = $1";
        let (value, sealed_with): (Vec<u8>, String) =
            with_pool!(self.db(), pool => sqlx::query_as(SQL).bind(name).fetch_one(pool).await?);
        Ok(StoredSecret { row: SecretRow::AuthorityKey(name.to_owned()), value, sealed_with: Some(sealed_with) })
    }

    /// Replaces a stored secret by its new seal, only if the row still
    /// holds what was read (a concurrent re-seal wins); true when replaced.
    pub async fn reseal_secret(&self, old: &StoredSecret, new: &SealedValue) -> Result<bool, StoreError> {
        const EAB: &str = "UPDATE eab_keys SET hmac_key = $3, sealed_with = $4 WHERE kid = $1 AND hmac_key = $2";
        const SHARED: &str = "UPDATE acme_secrets SET value = $3, sealed_with = $4 WHERE name = $1 AND value = $2";
        const AUTHORITY: &str = "UPDATE authority_keys SET pkcs8 = $3, sealed_with = $4 WHERE name = $1 AND pkcs8 = $2";
        let (sql, key) = match &old.row {
            SecretRow::EabHmacKey(kid) => (EAB, kid),
            SecretRow::SharedSecret(name) => (SHARED, name),
            SecretRow::AuthorityKey(name) => (AUTHORITY, name),
        };
        with_pool!(self.db(), pool => {
            let done = sqlx::query(sql).bind(key).bind(&old.value).bind(&new.bytes).bind(&new.key_id)
                .execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// After secrets were sealed in place: on SQLite, the write-ahead log
    /// (which still holds the pages as they were) is written back into the
    /// database and emptied. PostgreSQL keeps old row versions until
    /// VACUUM, and its WAL as configured: docs/operations.md, "Secrets at rest", says what to do.
    pub async fn forget_replaced_values(&self) -> Result<(), StoreError> {
        if let Db::Sqlite(pool) = self.db() {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(pool).await?;
        }
        Ok(())
    }

    /// Deletes the data keys other than `keep` that seal nothing any more;
    /// returns how many went. A key still in use stays (and the foreign
    /// keys refuse a seal under a key deleted meanwhile).
    pub async fn delete_unused_sealing_keys(&self, keep: &str) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sealing_keys WHERE id <> $1 \
             AND NOT EXISTS (SELECT 1 FROM eab_keys WHERE sealed_with = sealing_keys.id) \
             AND NOT EXISTS (SELECT 1 FROM acme_secrets WHERE sealed_with = sealing_keys.id) \
             AND NOT EXISTS (SELECT 1 FROM authority_keys WHERE sealed_with = sealing_keys.id)";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let done = sqlx::query(SQL).bind(keep).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected())
        })
    }
}
