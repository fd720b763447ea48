//! Revocation that relying parties can use: CRLs per authority (full and
//! sharded) and the OCSP responder. Every revocation path (admin API, ACME)
//! goes through [`Revocation::revoke`], which also revokes the other
//! certificates of a key revoked as compromised, and ends in
//! [`Revocation::revoked`], which re-signs the OCSP answer at once and wakes
//! the CRL job; a poll catches revocations made on other nodes and finishes
//! the sibling revocations a stopped node left.

pub mod crl;
pub mod ocsp;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;

use self::crl::{CrlContents, sign_crl};
use self::ocsp::{OcspIssuer, OcspResponder, SignatureCounts};
use crate::clock::SharedClock;
use crate::config::{Config, RevocationConfig};
use crate::issuance::{CertificateIssuer, RevocationReason, SigningAuthority, SigningError};
use crate::metrics::Metrics;
use crate::secrets::Sealer;
use crate::setup::open_authority;
use crate::storage::{
    AuthorityRecord, Catalog, CertificateRecord, CertificateStatusRow, FULL_CRL, JobLeases, NewAuditEvent,
    RevocationStore, StoreError, StoredCrl, UnsweptKey,
};

/// How often the CRL job looks for revocations and due CRLs.
const CRL_CHECK: Duration = Duration::from_secs(2);
/// How often other nodes' revocations are looked for.
const REVOCATION_POLL: Duration = Duration::from_secs(1);
/// A blocked key whose other certificates are still live this long after
/// its block is taken to be one a stopped node left: the poll revokes them.
const SWEEP_GRACE_SECONDS: i64 = 10;
/// Blocked keys the poll sweeps per round.
const SWEEP_BATCH: i64 = 16;
/// How often responder keys are checked for rotation.
const ROTATION_CHECK: Duration = Duration::from_secs(60);
/// A CRL job's lease; a node that crashed mid-run frees the job after this.
const CRL_LEASE_SECONDS: i64 = 60;
const CRL_JOB: &str = "crl";
/// OCSP pre-signing runs on every node; its runs are recorded as
/// `ocsp-presign/<node>`.
const OCSP_PRESIGN_JOB: &str = "ocsp-presign";
/// How many pre-signing intervals a node's run may be overdue before its
/// row in the jobs listing is taken for a stopped node's and dropped.
const STOPPED_NODE_AFTER: i64 = 3;

/// An authority whose CRL Tessera signs.
pub struct CrlAuthority {
    pub issuer: CertificateIssuer,
    pub ski: Vec<u8>,
}

impl CrlAuthority {
    fn authority(&self) -> Arc<SigningAuthority> {
        self.issuer.authority()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("no authority {0} signs CRLs on this node")]
    UnknownAuthority(i64),
}

impl RevocationError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Signing(SigningError::Signer(e)) => e.is_retryable(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Revocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocation").field("node", &self.node).finish_non_exhaustive()
    }
}

/// What [`Revocation::revoke`] revoked.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub certificate: CertificateRecord,
    /// Other unexpired certificates of a key revoked as compromised.
    pub siblings: Vec<CertificateRecord>,
}

impl Revoked {
    /// How many certificates were revoked, the asked-for one included.
    pub fn count(&self) -> usize {
        1 + self.siblings.len()
    }
}

pub struct Revocation {
    store: RevocationStore,
    leases: JobLeases,
    /// Makes the issuers of authorities added at runtime (`for_authority`).
    issuer: CertificateIssuer,
    clock: SharedClock,
    config: RevocationConfig,
    /// Grows at runtime when a CA rotation brings in a new authority.
    authorities: RwLock<Vec<Arc<CrlAuthority>>>,
    /// The last CRL read per (authority, shard): served while the database
    /// is away, until its nextUpdate, so relying parties keep a valid CRL.
    served_crls: RwLock<HashMap<(i64, i32), StoredCrl>>,
    pub ocsp: OcspResponder,
    crl_wake: Notify,
    /// This node's name in job leases.
    node: String,
}

impl Revocation {
    /// Loads every unexpired authority whose key this node can reach: the
    /// active issuing CA (already open in `active`), earlier (retired)
    /// issuing CAs whose leaves may still be checked, and the root. An
    /// authority whose key cannot be opened is logged and left out, so a
    /// root kept offline does not stop the CA.
    pub async fn load(
        config: &Config,
        store: &RevocationStore,
        leases: &JobLeases,
        clock: &SharedClock,
        active: &CertificateIssuer,
        sealer: &Sealer,
        metrics: &Metrics,
    ) -> Result<Arc<Self>, StoreError> {
        let now = clock.unix();
        let mut authorities = Vec::new();
        let ocsp =
            OcspResponder::new(Catalog::clone(store), clock.clone(), &config.revocation, SignatureCounts::new(metrics));
        let records = store.list_authorities().await?;
        for record in &records {
            if record.not_after <= now {
                continue;
            }
            // An issuer of its own: `active` follows rotations, a CRL signer must not.
            let issuer = if record.id == active.authority().id {
                active.for_authority(active.authority())
            } else {
                match open_authority(config, sealer, record, &records).await {
                    Ok(authority) => active.for_authority(Arc::new(authority)),
                    Err(e) => {
                        tracing::warn!(authority = %record.name, error = %e, "no CRL or OCSP for this authority on this node");
                        continue;
                    }
                }
            };
            match OcspIssuer::new(issuer.clone(), config.revocation.ocsp_signer_lifetime()).await {
                Ok(ocsp_issuer) => ocsp.add_issuer(ocsp_issuer),
                Err(e) => {
                    tracing::warn!(authority = %record.name, error = %e, "no OCSP for this authority on this node")
                }
            }
            authorities.push(Arc::new(CrlAuthority { issuer, ski: record.ski.clone() }));
        }
        let node = format!("node-{}", hex::encode(rand::random::<[u8; 6]>()));
        Ok(Arc::new(Self {
            store: store.clone(),
            leases: leases.clone(),
            issuer: active.clone(),
            clock: clock.clone(),
            config: config.revocation.clone(),
            authorities: RwLock::new(authorities),
            served_crls: RwLock::default(),
            ocsp,
            crl_wake: Notify::new(),
            node,
        }))
    }

    /// Starts answering CRL and OCSP for an authority opened at runtime (a
    /// CA rotation's successor, here or on another node): certifies its
    /// OCSP responder, and signs its first CRL unless one is stored already.
    pub async fn add_authority(
        &self,
        record: &AuthorityRecord,
        authority: Arc<SigningAuthority>,
    ) -> Result<(), RevocationError> {
        if self.has_authority(record.id) {
            return Ok(());
        }
        let issuer = self.issuer.for_authority(authority);
        let ocsp_issuer = OcspIssuer::new(issuer.clone(), self.ocsp.signer_lifetime())
            .await
            .map_err(|e| RevocationError::Signing(SigningError::Encoding(e.to_string())))?;
        self.ocsp.add_issuer(ocsp_issuer);
        let added = Arc::new(CrlAuthority { issuer, ski: record.ski.clone() });
        {
            let mut authorities = self.authorities.write().unwrap_or_else(|p| p.into_inner());
            if authorities.iter().any(|a| a.authority().id == record.id) {
                return Ok(());
            }
            authorities.push(added.clone());
        }
        match self.store.crl(record.id, FULL_CRL).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                let shards = added.authority().crl_shards as i32;
                for scope in std::iter::once(FULL_CRL).chain(0..shards) {
                    self.publish_crl(&added, scope).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        if let Err(e) = self.ocsp.presign().await {
            tracing::warn!(error = %e, "OCSP pre-signing for a new authority failed; the OCSP job retries");
        }
        tracing::info!(authority = %record.name, "serving CRLs and OCSP for a new authority");
        Ok(())
    }

    /// Whether this node signs CRLs and OCSP answers for the authority.
    pub fn has_authority(&self, authority_id: i64) -> bool {
        self.snapshot().iter().any(|a| a.authority().id == authority_id)
    }

    fn snapshot(&self) -> Vec<Arc<CrlAuthority>> {
        self.authorities.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The newest stored CRL of a scope, as the HTTP layer serves it; while
    /// the database cannot be reached, the last one read, until its nextUpdate.
    pub async fn stored_crl(&self, authority_id: i64, shard: i32) -> Result<StoredCrl, StoreError> {
        let key = (authority_id, shard);
        match self.store.crl(authority_id, shard).await {
            Ok(crl) => {
                let mut served = self.served_crls.write().unwrap_or_else(PoisonError::into_inner);
                if served.get(&key).is_none_or(|kept| kept.crl_number != crl.crl_number) {
                    served.insert(key, crl.clone());
                }
                Ok(crl)
            }
            Err(e) if e.is_retryable() => {
                let served = self.served_crls.read().unwrap_or_else(PoisonError::into_inner);
                match served.get(&key) {
                    Some(kept) if kept.next_update > self.clock.unix() => Ok(kept.clone()),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    pub fn now(&self) -> i64 {
        self.clock.unix()
    }

    /// This node's name in job leases.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Revokes a certificate, the one way every front end does. With reason
    /// keyCompromise the key is blocked in the revocation's commit, and its
    /// other unexpired certificates are revoked right after it, each with an
    /// audit event naming this one (a failure there is logged: the
    /// revocation poll finishes the work). OCSP and the CRL job hear of
    /// every certificate revoked. Errors are those of
    /// [`RevocationStore::revoke_certificate`].
    pub async fn revoke(
        &self,
        serial: &[u8],
        reason: RevocationReason,
        audit: &NewAuditEvent,
    ) -> Result<Revoked, StoreError> {
        let revoked = self.store.revoke_certificate(serial, audit.at, reason.code(), audit).await?;
        self.revoked(&revoked.record);
        let mut siblings = Vec::new();
        if let Some(spki_hash) = revoked.blocked_key {
            let key = UnsweptKey { spki_hash, serial: serial.to_vec() };
            match self.store.revoke_key_siblings(&key, audit.at, &audit.actor).await {
                Ok(found) => siblings = found,
                Err(e) => tracing::warn!(
                    serial = %hex::encode(serial), error = %e,
                    "could not revoke the other certificates of a compromised key yet; the revocation poll will"
                ),
            }
        }
        for sibling in &siblings {
            self.revoked(sibling);
        }
        Ok(Revoked { certificate: revoked.record, siblings })
    }

    /// Revokes the other certificates of keys blocked a while ago whose
    /// revocation stopped before it could (a node stopped between the two
    /// commits), or whose block came from the key-hash backfill at start.
    /// The poll that runs it re-signs their OCSP answers next.
    async fn sweep_blocked_keys(&self) -> Result<(), StoreError> {
        let now = self.clock.unix();
        for key in self.store.unswept_blocked_keys(now - SWEEP_GRACE_SECONDS, SWEEP_BATCH).await? {
            let revoked = self.store.revoke_key_siblings(&key, now, "tessera").await?;
            if !revoked.is_empty() {
                tracing::info!(
                    same_key_as = %hex::encode(&key.serial), certificates = revoked.len(),
                    "revoked the other certificates of a compromised key"
                );
            }
        }
        Ok(())
    }

    /// Called by every revocation path once the database says revoked.
    pub fn revoked(&self, record: &CertificateRecord) {
        let row = CertificateStatusRow {
            serial: record.serial.clone(),
            authority_id: record.authority_id,
            status: record.status,
            not_after: record.not_after,
            revoked_at: record.revoked_at,
            revocation_reason: record.revocation_reason,
        };
        if let Err(e) = self.ocsp.on_revoked(&row) {
            tracing::warn!(error = %e, "could not re-sign the OCSP response of a revoked certificate");
        }
        self.crl_wake.notify_one();
    }

    /// Signs and stores every CRL of one authority (or of all), each with
    /// a new CRL number. Returns what was stored.
    pub async fn publish_crls(&self, only: Option<i64>) -> Result<Vec<StoredCrl>, RevocationError> {
        if let Some(id) = only
            && !self.has_authority(id)
        {
            return Err(RevocationError::UnknownAuthority(id));
        }
        let mut published = Vec::new();
        for authority in self.snapshot().iter().filter(|a| only.is_none_or(|id| a.authority().id == id)) {
            let shards = authority.authority().crl_shards as i32;
            for scope in std::iter::once(FULL_CRL).chain(0..shards) {
                published.push(self.publish_crl(authority, scope).await?);
            }
        }
        Ok(published)
    }

    async fn publish_crl(&self, authority: &CrlAuthority, scope: i32) -> Result<StoredCrl, RevocationError> {
        let signing = authority.authority();
        let now = self.clock.now();
        let shard = (scope != FULL_CRL).then_some(scope);
        let started = std::time::Instant::now();
        let entries = self.store.revoked_entries(signing.id, shard, now.unix_timestamp()).await?;
        let read = started.elapsed();
        let previous_number = self.store.crl_number(signing.id, scope).await?;
        let number = self.store.next_crl_number(signing.id).await?;
        let next_update = now + self.config.crl_validity();
        let contents = CrlContents {
            number,
            previous_number,
            this_update: now,
            next_update,
            entries: &entries,
            distribution_point: shard.map(|s| signing.urls.crl_shard(s as u32)),
        };
        let der = sign_crl(&contents, &signing.certificate_der, &authority.ski, signing.signer.as_ref()).await?;
        let signed = started.elapsed();
        let stored = StoredCrl {
            authority_id: signing.id,
            shard: scope,
            crl_number: number,
            this_update: now.unix_timestamp(),
            next_update: next_update.unix_timestamp(),
            entries: entries.len() as i64,
            der,
        };
        self.store.store_crl(&stored).await?;
        tracing::debug!(
            authority = %signing.name,
            scope,
            number,
            entries = stored.entries,
            bytes = stored.der.len(),
            read_ms = read.as_millis() as u64,
            sign_ms = (signed - read).as_millis() as u64,
            store_ms = (started.elapsed() - signed).as_millis() as u64,
            "CRL published"
        );
        Ok(stored)
    }

    /// Publishes the CRLs and pre-signs OCSP responses once, so a new CA
    /// answers from its first request, then starts the background jobs:
    /// CRLs, OCSP pre-signing and key rotation, and the revocation poll.
    pub async fn start_jobs(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        let now = self.clock.unix();
        let published = match self.publish_crls(None).await {
            Ok(_) => Some(now),
            Err(e) => {
                tracing::warn!(error = %e, "CRL generation at start failed; the CRL job retries");
                None
            }
        };
        let presigned = self.ocsp.presign().await;
        if let Err(e) = &presigned {
            tracing::warn!(error = %e, "OCSP pre-signing at start failed; the OCSP job retries");
        }
        self.record_presign(presigned.err().map(|e| e.to_string()), self.presign_interval()).await;
        tasks.spawn(self.clone().crl_job(published));
        tasks.spawn(self.clone().ocsp_job());
        tasks.spawn(self.clone().revocation_poll());
    }

    /// Regenerates CRLs when one is due (its refresh interval passed) or a
    /// revocation happened since the last run, under a lease so several
    /// nodes never sign the same CRLs at once.
    async fn crl_job(self: Arc<Self>, mut last_run: Option<i64>) {
        let refresh = self.config.crl_refresh().whole_seconds();
        loop {
            let now = self.clock.unix();
            let due = match last_run {
                None => true,
                Some(at) => {
                    now - at >= refresh
                        || self.store.last_revocation_at().await.ok().flatten().is_some_and(|revoked| revoked >= at)
                }
            };
            if due && self.leases.take_lease(CRL_JOB, &self.node, now, now + CRL_LEASE_SECONDS).await.unwrap_or(false) {
                let outcome = self.publish_crls(None).await;
                let error = outcome.as_ref().err().map(ToString::to_string);
                if let Some(e) = &error {
                    tracing::warn!(error = %e, "CRL generation failed; retrying");
                } else {
                    last_run = Some(now);
                }
                let _ = self.leases.finish_job_run(CRL_JOB, now, now + refresh, error.as_deref()).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(CRL_CHECK) => {}
                _ = self.crl_wake.notified() => {}
            }
        }
    }

    /// Replaces one authority's OCSP responder key now (after a suspected
    /// compromise, say); answers stay valid throughout.
    pub async fn rotate_ocsp_key(&self, authority_id: i64) -> Result<(), RevocationError> {
        self.ocsp.rotate_key(authority_id).await.map_err(|e| match e {
            ocsp::OcspError::Store(s) => RevocationError::Store(s),
            ocsp::OcspError::UnknownAuthority(id) => RevocationError::UnknownAuthority(id),
            other => RevocationError::Signing(SigningError::Encoding(other.to_string())),
        })?;
        if let Err(e) = self.ocsp.presign().await {
            tracing::warn!(error = %e, "OCSP pre-signing after rotation failed; the OCSP job retries");
        }
        Ok(())
    }

    /// Keeps pre-signed OCSP responses fresh and rotates responder keys.
    async fn ocsp_job(self: Arc<Self>) {
        let interval = self.presign_interval();
        let mut last_presign = tokio::time::Instant::now();
        loop {
            match self.ocsp.rotate_due_keys().await {
                Ok(0) => {}
                Ok(_) => last_presign = tokio::time::Instant::now() - interval,
                Err(e) => tracing::warn!(error = %e, "OCSP responder key rotation failed; retrying"),
            }
            if last_presign.elapsed() >= interval {
                let error = match self.ocsp.presign().await {
                    Ok(signed) => {
                        tracing::debug!(signed, "OCSP responses pre-signed");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "OCSP pre-signing failed; retrying");
                        Some(e.to_string())
                    }
                };
                last_presign = tokio::time::Instant::now();
                self.record_presign(error, interval).await;
            }
            tokio::time::sleep(ROTATION_CHECK.min(interval)).await;
        }
    }

    /// How often pre-signed OCSP responses are refreshed.
    fn presign_interval(&self) -> Duration {
        Duration::from_secs((self.config.ocsp_validity().whole_seconds() / 4).max(10) as u64)
    }

    /// Every node pre-signs for itself (responses live in its memory), so
    /// each records its own runs, as `ocsp-presign/<node>`; a node whose
    /// run is overdue by [`STOPPED_NODE_AFTER`] intervals (at least an
    /// hour) has stopped, and its row is dropped.
    async fn record_presign(&self, error: Option<String>, next_in: Duration) {
        let now = self.clock.unix();
        let next = now + next_in.as_secs() as i64;
        let forget_before = now - (STOPPED_NODE_AFTER * next_in.as_secs() as i64).max(3600);
        let run = (now, next, error.as_deref());
        match self.leases.record_node_job_run(OCSP_PRESIGN_JOB, &self.node, run, forget_before).await {
            Ok(0) => {}
            Ok(forgotten) => tracing::info!(forgotten, "dropped the OCSP pre-signing rows of stopped nodes"),
            Err(e) => tracing::debug!(error = %e, "could not record the OCSP pre-signing run"),
        }
    }

    /// Notices revocations made by other nodes (or any path that did not
    /// call [`Revocation::revoked`]) and re-signs their OCSP responses.
    async fn revocation_poll(self: Arc<Self>) {
        let mut since = self.clock.unix();
        // Rows of the last second are read again (revocation times are whole
        // seconds); these are the ones already handled.
        let mut handled = std::collections::HashSet::new();
        loop {
            tokio::time::sleep(REVOCATION_POLL).await;
            match self.sweep_blocked_keys().await {
                // The database is away: the poll below fails quietly too.
                Err(e) if e.is_retryable() => tracing::debug!(error = %e, "blocked-key sweep deferred"),
                Err(e) => tracing::warn!(error = %e, "could not revoke the other certificates of a compromised key"),
                Ok(()) => {}
            }
            let Ok(rows) = self.store.revoked_since(since - 1).await else { continue };
            let mut news = false;
            for row in &rows {
                if !handled.insert(row.serial.clone()) {
                    continue;
                }
                news = true;
                if let Err(e) = self.ocsp.on_revoked(row) {
                    tracing::warn!(error = %e, "could not re-sign the OCSP response of a revoked certificate");
                }
            }
            since = rows.iter().filter_map(|r| r.revoked_at).max().unwrap_or(since).max(since);
            handled.retain(|serial| rows.iter().any(|r| &r.serial == serial));
            if news {
                self.crl_wake.notify_one();
            }
        }
    }
}
