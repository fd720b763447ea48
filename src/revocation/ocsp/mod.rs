//! The OCSP responder (RFC 6960, RFC 5019). Answers come from pre-signed
//! responses kept in memory, signed by a delegated responder key per
//! authority that lives only in memory and signs in microseconds, so no
//! request ever waits on an HSM or KMS. A miss reads the database and signs
//! once; the answer is kept.
//!
//! Requests are unauthenticated, so nothing a request carries makes the
//! responder sign at will. A nonce is ignored by default (the pre-signed
//! answer goes out without it, as RFC 8954 §4 allows); with
//! `revocation.ocsp_nonce = "echo"` it is echoed in an answer signed for
//! the request, within the [`SigningBudget`], and past it the pre-signed
//! answer goes out. A request for several certificates is signed for
//! itself within the same budget, `tryLater` past it. A serial this
//! authority never issued is answered `unknown`, signed once per serial and
//! kept (a bounded number of them), within the budget; past it
//! `unauthorized`, as RFC 5019 §2.2.3 lets a responder answer what it holds
//! no response for.

mod budget;
pub mod request;
pub mod response;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use der_07::asn1::{Null, OctetString};
use prometheus_client::metrics::counter::Counter;
use spki_07::AlgorithmIdentifierOwned;
use x509_cert_02::serial_number::SerialNumber;
use x509_ocsp::{CertId, OcspResponseStatus};

use self::budget::SigningBudget;
use self::request::{CertIdHash, Query};
use self::response::{ResponderKey, Status};
use crate::clock::SharedClock;
use crate::config::{OcspNonce, RevocationConfig};
use crate::issuance::{CertificateIssuer, RevocationReason};
use crate::keys::SigningAlgorithm;
use crate::keys::software::SoftwareSigner;
use crate::metrics::Metrics;
use crate::storage::{Catalog, CertificateStatus, CertificateStatusRow, StoreError};

/// An authority the responder answers for.
pub struct OcspIssuer {
    pub authority_id: i64,
    name: String,
    /// (hash, issuer name hash, issuer key hash) for each CertID hash.
    hashes: Vec<(CertIdHash, Vec<u8>, Vec<u8>)>,
    issuer: CertificateIssuer,
    key: RwLock<Arc<ResponderKey>>,
    generation: AtomicU64,
}

/// One signed response ready to send.
#[derive(Debug)]
pub struct Cached {
    pub der: bytes::Bytes,
    pub this_update: i64,
    pub next_update: i64,
    pub etag: String,
    authority_id: i64,
    status: Status,
    generation: u64,
}

/// What the HTTP layer sends back.
#[derive(Debug)]
pub enum Reply {
    /// A response every cache may keep until its nextUpdate.
    Cacheable(Arc<Cached>),
    /// A response for this request only (its nonce echoed, or several
    /// certificates).
    Fresh(Vec<u8>),
    /// An unsigned error status.
    Error(OcspResponseStatus),
}

/// Signed responses by (serial, CertID hash).
type ResponseCache = HashMap<(Vec<u8>, CertIdHash), Arc<Cached>>;

/// `unknown` answers kept at most; past it, each costs a signature again.
const MAX_UNKNOWN_KEPT: usize = 4096;

/// The signatures the responder makes, counted by why they were made.
#[derive(Debug, Clone)]
pub struct SignatureCounts {
    /// Ahead of requests: the pre-signing job and revocations.
    presign: Counter,
    /// A certificate's first answer, on its first request.
    miss: Counter,
    /// An answer echoing a request's nonce.
    nonce: Counter,
    /// An answer for several certificates at once.
    multiple: Counter,
    /// An `unknown` answer for a serial this authority never issued.
    unknown: Counter,
}

impl SignatureCounts {
    /// The counters behind `tessera_ocsp_signatures_total{reason}`.
    pub fn new(metrics: &Metrics) -> Self {
        Self {
            presign: metrics.ocsp_signatures("presign"),
            miss: metrics.ocsp_signatures("miss"),
            nonce: metrics.ocsp_signatures("nonce"),
            multiple: metrics.ocsp_signatures("multiple"),
            unknown: metrics.ocsp_signatures("unknown"),
        }
    }
}

pub struct OcspResponder {
    catalog: Catalog,
    clock: SharedClock,
    validity: i64,
    signer_lifetime: time::Duration,
    nonce: OcspNonce,
    /// Signatures made for one request alone: echoed nonces, several
    /// certificates, serials never issued.
    budget: SigningBudget,
    signatures: SignatureCounts,
    /// Grows at runtime when a CA rotation brings in a new authority.
    issuers: RwLock<Vec<Arc<OcspIssuer>>>,
    cache: RwLock<ResponseCache>,
    /// `unknown` answers, apart: the pre-signing job never refreshes them.
    unknown: RwLock<ResponseCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum OcspError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Encode(#[from] response::EncodeError),
    #[error("OCSP encoding: {0}")]
    Der(#[from] der_07::Error),
    #[error("no authority {0} answers OCSP on this node")]
    UnknownAuthority(i64),
    #[error("issuing the OCSP responder certificate for {authority}: {reason}")]
    Responder { authority: String, reason: String },
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// A kept answer to `query` from this authority, unless it has expired.
fn cached(cache: &RwLock<ResponseCache>, query: &Query, authority_id: i64, now: i64) -> Option<Arc<Cached>> {
    let cache = read(cache);
    let hit = cache.get(&(query.serial.clone(), query.hash))?;
    (hit.authority_id == authority_id && now < hit.next_update).then(|| hit.clone())
}

/// Why a request got an unsigned error status instead of an answer.
#[derive(Debug)]
enum Refused {
    /// The budget of signatures for single requests is spent.
    Budget(OcspResponseStatus),
    Store(StoreError),
    Signing(OcspError),
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<OcspError> for Refused {
    fn from(e: OcspError) -> Self {
        Self::Signing(e)
    }
}

impl Refused {
    fn reply(self) -> Reply {
        match self {
            Self::Budget(status) => Reply::Error(status),
            Self::Store(e) => {
                tracing::warn!(error = %e, "OCSP status lookup failed");
                Reply::Error(OcspResponseStatus::TryLater)
            }
            Self::Signing(e) => {
                tracing::warn!(error = %e, "OCSP signing failed");
                Reply::Error(OcspResponseStatus::InternalError)
            }
        }
    }
}

impl OcspIssuer {
    /// Makes the first responder key for an authority.
    pub async fn new(issuer: CertificateIssuer, lifetime: time::Duration) -> Result<Self, OcspError> {
        let authority = issuer.authority().clone();
        let (_, certificate) = x509_parser::parse_x509_certificate(&authority.certificate_der).map_err(|e| {
            OcspError::Responder { authority: authority.name.clone(), reason: format!("CA certificate: {e}") }
        })?;
        let name = certificate.subject().as_raw();
        let key = &certificate.public_key().subject_public_key.data;
        let hashes =
            [CertIdHash::Sha1, CertIdHash::Sha256].into_iter().map(|h| (h, h.digest(name), h.digest(key))).collect();
        let first = new_responder_key(&issuer, lifetime).await?;
        Ok(Self {
            authority_id: authority.id,
            name: authority.name.clone(),
            hashes,
            issuer,
            key: RwLock::new(Arc::new(first)),
            generation: AtomicU64::new(0),
        })
    }

    fn matches(&self, query: &Query) -> bool {
        self.hashes
            .iter()
            .any(|(h, name, key)| *h == query.hash && *name == query.issuer_name_hash && *key == query.issuer_key_hash)
    }

    fn cert_id(&self, hash: CertIdHash, serial: &[u8]) -> Result<CertId, der_07::Error> {
        let (_, name, key) = self.hashes.iter().find(|(h, _, _)| *h == hash).ok_or(der_07::ErrorKind::Failed)?;
        let oid = match hash {
            CertIdHash::Sha1 => "1.3.14.3.2.26",
            CertIdHash::Sha256 => "2.16.840.1.101.3.4.2.1",
        };
        Ok(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: der_07::asn1::ObjectIdentifier::new_unwrap(oid),
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(name.clone())?,
            issuer_key_hash: OctetString::new(key.clone())?,
            serial_number: SerialNumber::new(serial)?,
        })
    }

    pub fn responder_certificate(&self) -> Vec<u8> {
        read(&self.key).certificate_der.clone()
    }
}

async fn new_responder_key(issuer: &CertificateIssuer, lifetime: time::Duration) -> Result<ResponderKey, OcspError> {
    let authority = issuer.authority();
    let failed = |reason: String| OcspError::Responder { authority: authority.name.clone(), reason };
    let key = SoftwareSigner::ephemeral(&format!("ocsp-{}", authority.name), SigningAlgorithm::EcdsaP256Sha256)
        .map_err(|e| failed(e.to_string()))?;
    let issued = issuer
        .issue_ocsp_signer(crate::keys::Signer::public_key_der(&key), "ecdsa-p256", lifetime)
        .await
        .map_err(|e| failed(e.to_string()))?;
    Ok(ResponderKey::new(key, issued.der, issued.not_after.unix_timestamp())?)
}

fn status_of(row: &CertificateStatusRow, authority_id: i64) -> Status {
    if row.authority_id != authority_id {
        return Status::Unknown;
    }
    match row.status {
        CertificateStatus::Issued => Status::Good,
        CertificateStatus::Revoked => Status::Revoked {
            at: row.revoked_at.unwrap_or_default(),
            reason: row.revocation_reason.and_then(RevocationReason::from_code),
        },
        CertificateStatus::Pending | CertificateStatus::Failed => Status::Unknown,
    }
}

impl OcspResponder {
    pub fn new(catalog: Catalog, clock: SharedClock, config: &RevocationConfig, signatures: SignatureCounts) -> Self {
        Self {
            catalog,
            clock,
            validity: config.ocsp_validity().whole_seconds().max(60),
            signer_lifetime: config.ocsp_signer_lifetime(),
            nonce: config.ocsp_nonce,
            budget: SigningBudget::new(config.ocsp_fresh_signatures_per_second),
            signatures,
            issuers: RwLock::new(Vec::new()),
            cache: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashMap::new()),
        }
    }

    /// Answers for `issuer` from now on; a second issuer for the same
    /// authority is ignored.
    pub fn add_issuer(&self, issuer: OcspIssuer) {
        let mut issuers = write(&self.issuers);
        if !issuers.iter().any(|i| i.authority_id == issuer.authority_id) {
            issuers.push(Arc::new(issuer));
        }
    }

    pub fn issuer(&self, authority_id: i64) -> Option<Arc<OcspIssuer>> {
        read(&self.issuers).iter().find(|i| i.authority_id == authority_id).cloned()
    }

    /// The lifetime of responder certificates this responder makes.
    pub fn signer_lifetime(&self) -> time::Duration {
        self.signer_lifetime
    }

    fn issuer_matching(&self, query: &Query) -> Option<Arc<OcspIssuer>> {
        read(&self.issuers).iter().find(|i| i.matches(query)).cloned()
    }

    fn all_issuers(&self) -> Vec<Arc<OcspIssuer>> {
        read(&self.issuers).clone()
    }

    /// Answers one DER OCSPRequest. Never fails: bad input gets
    /// `malformedRequest`, a database outage `tryLater`, a spent budget
    /// `tryLater` or `unauthorized` (see the module's doc).
    pub async fn answer(&self, der: &[u8]) -> Reply {
        let parsed = match request::parse(der) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Reply::Error(OcspResponseStatus::MalformedRequest);
            }
        };
        // One responder signs the answer, so every CertID must name its issuer.
        let mut issuer = None;
        for query in &parsed.queries {
            match self.issuer_matching(query) {
                Some(found)
                    if issuer.as_ref().is_none_or(|i: &Arc<OcspIssuer>| i.authority_id == found.authority_id) =>
                {
                    issuer = Some(found)
                }
                _ => return Reply::Error(OcspResponseStatus::Unauthorized),
            }
        }
        let Some(issuer) = issuer else { return Reply::Error(OcspResponseStatus::MalformedRequest) };
        let issuer = issuer.as_ref();
        let now = self.clock.unix();
        let nonce = parsed.nonce.as_deref().filter(|_| self.nonce == OcspNonce::Echo);
        let outcome = match parsed.queries.as_slice() {
            [query] => match nonce {
                Some(nonce) if self.budget.try_take() => {
                    self.sign_fresh(issuer, &parsed.queries, Some(nonce), &self.signatures.nonce, now).await
                }
                _ => self.answer_one(issuer, query, now).await,
            },
            queries if self.budget.try_take() => {
                self.sign_fresh(issuer, queries, nonce, &self.signatures.multiple, now).await
            }
            _ => Err(Refused::Budget(OcspResponseStatus::TryLater)),
        };
        outcome.unwrap_or_else(|refused| refused.reply())
    }

    /// One certificate's kept answer, signed and kept on its first request.
    async fn answer_one(&self, issuer: &OcspIssuer, query: &Query, now: i64) -> Result<Reply, Refused> {
        if let Some(hit) = cached(&self.cache, query, issuer.authority_id, now) {
            return Ok(Reply::Cacheable(hit));
        }
        let status = self.status(issuer, &query.serial).await?;
        if status != Status::Unknown {
            let answer = self.sign_single(issuer, &query.cert_id, status, now)?;
            self.signatures.miss.inc();
            write(&self.cache).insert((query.serial.clone(), query.hash), answer.clone());
            return Ok(Reply::Cacheable(answer));
        }
        if let Some(hit) = cached(&self.unknown, query, issuer.authority_id, now) {
            return Ok(Reply::Cacheable(hit));
        }
        if !self.budget.try_take() {
            return Err(Refused::Budget(OcspResponseStatus::Unauthorized));
        }
        let answer = self.sign_single(issuer, &query.cert_id, status, now)?;
        self.signatures.unknown.inc();
        let mut unknown = write(&self.unknown);
        if unknown.len() < MAX_UNKNOWN_KEPT {
            unknown.insert((query.serial.clone(), query.hash), answer.clone());
        }
        Ok(Reply::Cacheable(answer))
    }

    /// An answer for this request alone: its certificates, its nonce.
    async fn sign_fresh(
        &self,
        issuer: &OcspIssuer,
        queries: &[Query],
        nonce: Option<&[u8]>,
        count: &Counter,
        now: i64,
    ) -> Result<Reply, Refused> {
        let mut answers = Vec::with_capacity(queries.len());
        for query in queries {
            let status = match cached(&self.cache, query, issuer.authority_id, now) {
                Some(hit) => hit.status,
                None => self.status(issuer, &query.serial).await?,
            };
            answers.push((&query.cert_id, status));
        }
        let key = read(&issuer.key).clone();
        let der = key.sign(&answers, now, now, self.next_update(&key, now), nonce).map_err(OcspError::from)?;
        count.inc();
        Ok(Reply::Fresh(der))
    }

    async fn status(&self, issuer: &OcspIssuer, serial: &[u8]) -> Result<Status, StoreError> {
        match self.catalog.certificate_status(serial).await {
            Ok(row) => Ok(status_of(&row, issuer.authority_id)),
            Err(StoreError::NotFound) => Ok(Status::Unknown),
            Err(e) => Err(e),
        }
    }

    /// Never promises beyond the responder certificate's own life.
    fn next_update(&self, key: &ResponderKey, now: i64) -> i64 {
        (now + self.validity).min(key.not_after)
    }

    /// Signs a single response, to be kept.
    fn sign_single(
        &self,
        issuer: &OcspIssuer,
        cert_id: &CertId,
        status: Status,
        now: i64,
    ) -> Result<Arc<Cached>, OcspError> {
        let generation = issuer.generation.load(Ordering::Acquire);
        let key = read(&issuer.key).clone();
        let next_update = self.next_update(&key, now);
        let der = key.sign(&[(cert_id, status)], now, now, next_update, None)?;
        let etag =
            format!("\"{}\"", hex::encode(&aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der).as_ref()[..12]));
        Ok(Arc::new(Cached {
            der: der.into(),
            this_update: now,
            next_update,
            etag,
            authority_id: issuer.authority_id,
            status,
            generation,
        }))
    }

    /// Signs (or re-signs) the SHA-1 response of every live certificate
    /// whose response is missing, half-way to its nextUpdate, signed by an
    /// older responder key, or out of date with the database. Drops
    /// responses past their nextUpdate.
    pub async fn presign(&self) -> Result<usize, OcspError> {
        const PAGE: i64 = 1000;
        let mut signed = 0;
        let now = self.clock.unix();
        write(&self.cache).retain(|_, c| c.next_update > now);
        write(&self.unknown).retain(|_, c| c.next_update > now);
        for issuer in &self.all_issuers() {
            let mut after = Vec::new();
            loop {
                let rows = self.catalog.live_certificates(issuer.authority_id, now, &after, PAGE).await?;
                let Some(last) = rows.last() else { break };
                after = last.serial.clone();
                signed += self.refresh_rows(issuer, &rows, now)?;
                tokio::task::yield_now().await;
                if (rows.len() as i64) < PAGE {
                    break;
                }
            }
        }
        Ok(signed)
    }

    fn refresh_rows(&self, issuer: &OcspIssuer, rows: &[CertificateStatusRow], now: i64) -> Result<usize, OcspError> {
        let generation = issuer.generation.load(Ordering::Acquire);
        let mut signed = 0;
        for row in rows {
            let status = status_of(row, issuer.authority_id);
            for hash in [CertIdHash::Sha1, CertIdHash::Sha256] {
                let existing = read(&self.cache).get(&(row.serial.clone(), hash)).cloned();
                let fresh = existing.as_ref().is_some_and(|c| {
                    c.status == status && c.generation == generation && c.this_update + self.validity / 2 > now
                });
                // SHA-256 responses are kept only once someone asked for one.
                if fresh || (hash == CertIdHash::Sha256 && existing.is_none()) {
                    continue;
                }
                let cert_id = issuer.cert_id(hash, &row.serial)?;
                let answer = self.sign_single(issuer, &cert_id, status, now)?;
                self.signatures.presign.inc();
                if status != Status::Unknown {
                    write(&self.cache).insert((row.serial.clone(), hash), answer);
                }
                signed += 1;
            }
        }
        Ok(signed)
    }

    /// A certificate was revoked (here or on another node): its responses
    /// are signed again at once.
    pub fn on_revoked(&self, row: &CertificateStatusRow) -> Result<(), OcspError> {
        let Some(issuer) = self.issuer(row.authority_id) else { return Ok(()) };
        self.refresh_rows(&issuer, std::slice::from_ref(row), self.clock.unix())?;
        Ok(())
    }

    /// Replaces each responder key whose certificate has a third of its
    /// life left. Returns how many rotated.
    pub async fn rotate_due_keys(&self) -> Result<usize, OcspError> {
        let now = self.clock.unix();
        let threshold = self.signer_lifetime.whole_seconds() / 3;
        let mut rotated = 0;
        for issuer in &self.all_issuers() {
            if read(&issuer.key).not_after - now <= threshold {
                self.replace_key(issuer).await?;
                rotated += 1;
            }
        }
        Ok(rotated)
    }

    /// Replaces one authority's responder key now.
    pub async fn rotate_key(&self, authority_id: i64) -> Result<(), OcspError> {
        let issuer = self.issuer(authority_id).ok_or(OcspError::UnknownAuthority(authority_id))?;
        self.replace_key(&issuer).await
    }

    /// Responses signed by the old key stay valid: its certificate outlives
    /// them, and the next pre-signing pass re-signs them with the new one.
    async fn replace_key(&self, issuer: &OcspIssuer) -> Result<(), OcspError> {
        let key = new_responder_key(&issuer.issuer, self.signer_lifetime).await?;
        *write(&issuer.key) = Arc::new(key);
        issuer.generation.fetch_add(1, Ordering::AcqRel);
        tracing::info!(authority = %issuer.name, "rotated the delegated OCSP responder key");
        Ok(())
    }
}
