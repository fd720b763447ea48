//! The checks every ACME POST passes before a handler runs (RFC 8555 §6.2-
//! §6.5), as extractors that state their key rule in their type:
//! [`SignedByKey`] (embedded `jwk`: newAccount, revokeCert by certificate
//! key), [`SignedByAccount`] (`kid`: everything else) and [`SignedByEither`]
//! (revokeCert). In order: known directory; `Content-Type:
//! application/jose+json`; body within [`MAX_BODY`]; flattened JWS; `url`
//! equal to the request URL; accepted algorithm; a nonce this server issued
//! and not expired; the key rule; the signature; then the nonce is consumed
//! (one write), so a refused request stores nothing but may cost a nonce.

use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};

use super::jws::{Jwk, Jws, JwsError, KeyRef};
use super::nonce::{CheckedNonce, NonceError};
use super::nonce_batch::Spend;
use super::problem::{AcmeProblem, ProblemType};
use super::{AcmeState, DirectorySettings, Urls, directory_name, request_host};
use crate::metrics::EcdsaSource;
use crate::storage::{AccountStatus, AcmeAccountRecord};

/// Largest request body accepted; a CSR with an 8192-bit RSA key fits easily.
pub const MAX_BODY: usize = 64 * 1024;
const JOSE_JSON: &str = "application/jose+json";

/// A POST whose JWS parsed and whose url and nonce checked out.
#[derive(Debug)]
pub struct AcmePost {
    pub directory: Arc<DirectorySettings>,
    pub urls: Urls,
    pub jws: Jws,
    nonce: CheckedNonce,
}

impl AcmePost {
    async fn parse(request: Request, state: &AcmeState) -> Result<Self, AcmeProblem> {
        let (parts, body) = request.into_parts();
        let directory = directory_name(parts.uri.path())
            .and_then(|name| state.directory(name))
            .ok_or_else(|| AcmeProblem::not_found("no such ACME directory"))?;
        let host = request_host(&parts).ok_or_else(|| AcmeProblem::malformed("the request has no Host"))?;
        let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let media_type = content_type.split(';').next().unwrap_or("").trim();
        if !media_type.eq_ignore_ascii_case(JOSE_JSON) {
            return Err(AcmeProblem::malformed(format!("the Content-Type must be {JOSE_JSON}"))
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
            AcmeProblem::malformed(format!("the request body exceeds {MAX_BODY} bytes"))
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        })?;
        let jws = Jws::parse(&bytes)?;
        let path = parts.uri.path_and_query().map_or(parts.uri.path(), |p| p.as_str());
        let url = format!("https://{host}{path}");
        if jws.header.url != url {
            return Err(AcmeProblem::unauthorized(format!(
                "the JWS url {:?} is not the request URL {url:?}",
                jws.header.url
            )));
        }
        jws.algorithm()?;
        let nonce = state.inner.nonces.check(jws.header.nonce.as_deref(), state.now())?;
        Ok(Self { urls: Urls::new(&host, &directory.name), directory, jws, nonce })
    }

    /// Verifies the signature with `key` (see [`verify_jws`]).
    fn verify(&self, key: &Jwk, state: &AcmeState) -> Result<(), AcmeProblem> {
        verify_jws(&self.jws, key, &self.directory, state)
    }

    /// This request's nonce to spend, with the account to read along.
    fn spend(&self, account_id: Option<i64>) -> Spend {
        Spend { nonce: self.nonce.id.clone(), expires_at: self.nonce.expires_at, account_id }
    }

    /// Spends the nonce; the last step, after the signature verified.
    async fn consume_nonce(&self, state: &AcmeState) -> Result<(), AcmeProblem> {
        let spent = state.inner.nonce_batch.get(self.spend(None)).await?;
        if spent.fresh { Ok(()) } else { Err(NonceError::Replayed.into()) }
    }

    /// The payload as JSON of type `T`.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, AcmeProblem> {
        Ok(self.jws.payload_json()?)
    }
}

/// An account that signed a request with its key.
#[derive(Debug, Clone)]
pub struct Account {
    pub record: AcmeAccountRecord,
    pub key: Jwk,
}

impl Account {
    pub fn from_record(record: AcmeAccountRecord) -> Result<Self, AcmeProblem> {
        let key = Jwk::from_stored(&record.jwk)
            .map_err(|e| AcmeProblem::internal(format!("stored key of account {}: {e}", record.id)))?;
        Ok(Self { record, key })
    }

    pub fn id(&self) -> i64 {
        self.record.id
    }

    /// How the audit log names this account.
    pub fn actor(&self) -> String {
        format!("acme:account:{}", self.record.id)
    }
}

/// A request signed by the key in its `jwk` header.
#[derive(Debug)]
pub struct SignedByKey {
    pub post: AcmePost,
    pub key: Jwk,
}

impl FromRequest<AcmeState> for SignedByKey {
    type Rejection = AcmeProblem;

    async fn from_request(request: Request, state: &AcmeState) -> Result<Self, AcmeProblem> {
        let post = AcmePost::parse(request, state).await?;
        let KeyRef::Jwk(key) = post.jws.header.key.clone() else {
            return Err(AcmeProblem::malformed("this request must carry a jwk header, not a kid"));
        };
        post.verify(&key, state)?;
        post.consume_nonce(state).await?;
        Ok(Self { post, key })
    }
}

/// A request signed by a valid account's key, named by `kid`.
#[derive(Debug)]
pub struct SignedByAccount {
    pub post: AcmePost,
    pub account: Account,
}

impl FromRequest<AcmeState> for SignedByAccount {
    type Rejection = AcmeProblem;

    async fn from_request(request: Request, state: &AcmeState) -> Result<Self, AcmeProblem> {
        let post = AcmePost::parse(request, state).await?;
        let KeyRef::Kid(kid) = &post.jws.header.key else {
            return Err(AcmeProblem::malformed("this request must carry a kid header, not a jwk"));
        };
        // The nonce is spent in the same statement as the account is read
        // (the busiest path); a request refused after this costs its nonce.
        let missing = || AcmeProblem::new(ProblemType::AccountDoesNotExist, format!("no account is known by {kid:?}"));
        let id = post.urls.account_id(kid).ok_or_else(missing)?;
        let spent = state.inner.nonce_batch.get(post.spend(Some(id))).await?;
        let (fresh, record) = (spent.fresh, spent.account);
        let record = record.filter(|r| r.directory == post.directory.name).ok_or_else(missing)?;
        let account = Account::from_record(record)?;
        post.verify(&account.key, state)?;
        if !fresh {
            return Err(NonceError::Replayed.into());
        }
        require_valid(&account)?;
        Ok(Self { post, account })
    }
}

/// Who signed a request that admits either rule (revokeCert, §7.6).
#[derive(Debug)]
pub enum Signer {
    Account(Account),
    Key(Jwk),
}

#[derive(Debug)]
pub struct SignedByEither {
    pub post: AcmePost,
    pub signer: Signer,
}

impl FromRequest<AcmeState> for SignedByEither {
    type Rejection = AcmeProblem;

    async fn from_request(request: Request, state: &AcmeState) -> Result<Self, AcmeProblem> {
        let post = AcmePost::parse(request, state).await?;
        let signer = match post.jws.header.key.clone() {
            KeyRef::Jwk(key) => {
                post.verify(&key, state)?;
                Signer::Key(key)
            }
            KeyRef::Kid(kid) => {
                let account = find_account(state, &post, &kid).await?;
                post.verify(&account.key, state)?;
                Signer::Account(account)
            }
        };
        post.consume_nonce(state).await?;
        if let Signer::Account(account) = &signer {
            require_valid(account)?;
        }
        Ok(Self { post, signer })
    }
}

async fn find_account(state: &AcmeState, post: &AcmePost, kid: &str) -> Result<Account, AcmeProblem> {
    let missing = || AcmeProblem::new(ProblemType::AccountDoesNotExist, format!("no account is known by {kid:?}"));
    let id = post.urls.account_id(kid).ok_or_else(missing)?;
    let record = state.store().acme_account(id).await?.ok_or_else(missing)?;
    if record.directory != post.directory.name {
        return Err(missing());
    }
    Account::from_record(record)
}

/// Verifies `jws` (a request, or the inner JWS of a key change) with `key`.
/// A valid ECDSA signature with a high S is counted, and refused where the
/// directory sets `require_low_s`.
pub fn verify_jws(jws: &Jws, key: &Jwk, directory: &DirectorySettings, state: &AcmeState) -> Result<(), AcmeProblem> {
    jws.verify(key)?;
    if let Some(high_s) = jws.high_s() {
        state.inner.metrics.ecdsa_signature(EcdsaSource::AcmeJws, &directory.name, high_s);
        if high_s && directory.require_low_s {
            return Err(JwsError::HighS.into());
        }
    }
    Ok(())
}

fn require_valid(account: &Account) -> Result<(), AcmeProblem> {
    if account.record.status == AccountStatus::Valid {
        Ok(())
    } else {
        Err(AcmeProblem::unauthorized(format!("the account is {}", account.record.status)))
    }
}
