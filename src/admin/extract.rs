//! Request extractors whose rejections are our problem documents, and the
//! bearer-token check with its scope rules.

use std::marker::PhantomData;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AdminState;
use super::problem::ApiError;
use super::refusals::Reason;
use super::source::Source;
use super::throttle::{self, Verdict};
use crate::storage::TokenRecord;
use crate::token::{Scope, hash_token};

/// JSON body; a malformed one is a 400 problem, a missing content type 415.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection @ JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::UnsupportedMediaType(rejection.body_text()))
            }
            Err(rejection) => Err(ApiError::Malformed(rejection.body_text())),
        }
    }
}

/// Path parameters; a value of the wrong type is a 400 problem.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r: PathRejection| ApiError::Malformed(r.body_text()))
    }
}

/// Query parameters; unknown or ill-typed ones are a 400 problem.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r: QueryRejection| ApiError::Malformed(r.body_text()))
    }
}

/// The holder of a valid token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: i64,
    pub name: String,
    pub scope: Scope,
    /// The policies the token is bound to (none for admin and auditor tokens).
    pub policies: Vec<String>,
    pub source: Source,
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
    }

    /// Refuses, and records, an action under a policy the caller is not
    /// bound to. An admin token acts under every policy, and alone on an
    /// object made under none (`None`).
    pub fn require_policy(&self, state: &AdminState, policy: Option<&str>) -> Result<(), ApiError> {
        if self.scope == Scope::Admin || policy.is_some_and(|p| self.policies.iter().any(|bound| bound == p)) {
            return Ok(());
        }
        state.refusals.record(self.source, Reason::PolicyNotBound, Some(&self.name), state.clock.unix());
        Err(ApiError::PolicyNotBound(policy.map(str::to_owned)))
    }
}

/// Which scopes an operation admits.
pub trait Permission {
    const ALLOWED: &'static [Scope];
}

/// Signing certificates.
pub struct Sign;
/// Reading anything but tokens.
pub struct Read;
/// Changing certificates and policies.
pub struct Manage;
/// Managing tokens.
pub struct AdminOnly;
/// Any valid token (metrics, readiness).
pub struct AnyScope;

impl Permission for Sign {
    const ALLOWED: &'static [Scope] = &[Scope::Admin, Scope::Operator, Scope::Issuer];
}
impl Permission for Read {
    const ALLOWED: &'static [Scope] = &[Scope::Admin, Scope::Operator, Scope::Auditor];
}
impl Permission for Manage {
    const ALLOWED: &'static [Scope] = &[Scope::Admin, Scope::Operator];
}
impl Permission for AdminOnly {
    const ALLOWED: &'static [Scope] = &[Scope::Admin];
}
impl Permission for AnyScope {
    const ALLOWED: &'static [Scope] = &[Scope::Admin, Scope::Operator, Scope::Issuer, Scope::Auditor];
}

/// A caller whose token admits permission `P`. A handler that takes it
/// cannot run for anyone else.
pub struct Authorized<P>(pub Caller, pub PhantomData<P>);

impl<P: Permission> FromRequestParts<AdminState> for Authorized<P> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AdminState) -> Result<Self, ApiError> {
        let caller = authenticate(parts, state).await?;
        if !P::ALLOWED.contains(&caller.scope) {
            state.refusals.record(caller.source, Reason::InsufficientScope, Some(&caller.name), state.clock.unix());
            return Err(ApiError::InsufficientScope(caller.scope.as_str()));
        }
        Ok(Self(caller, PhantomData))
    }
}

/// Finds the live token the request presents. Every refusal is recorded;
/// one for a bad token (not a missing one) counts towards its source's throttle, and a blocked
/// source is answered 429 before its token is looked up (see `throttle`).
pub async fn authenticate(parts: &Parts, state: &AdminState) -> Result<Caller, ApiError> {
    let source = Source::of(parts);
    let now = state.clock.unix();
    let hash = bearer_token(parts).map(hash_token);
    if let Some(seconds) = state.throttle.wait(source, hash.as_deref(), now) {
        state.refusals.record(source, Reason::Throttled, None, now);
        return Err(ApiError::Throttled(seconds));
    }
    let refuse = |reason: Reason, token: Option<&str>| {
        if state.throttle.failed(source, hash.as_deref(), now) == Verdict::Blocked {
            tracing::warn!(%source, failures = throttle::FAILURES, "admin API source blocked after repeated failed authentications");
        }
        state.refusals.record(source, reason, token, now);
        ApiError::Unauthorized
    };
    let Some(hash) = &hash else {
        // A request without a token guesses nothing: it is recorded, but
        // only a presented token that fails counts towards the throttle.
        state.refusals.record(source, Reason::NoToken, None, now);
        return Err(ApiError::Unauthorized);
    };
    let Some(record) = state.store.token_by_hash(hash).await? else { return Err(refuse(Reason::UnknownToken, None)) };
    if record.revoked_at.is_some() {
        return Err(refuse(Reason::RevokedToken, Some(&record.name)));
    }
    if !record.is_live(now) {
        return Err(refuse(Reason::ExpiredToken, Some(&record.name)));
    }
    let scope = stored_scope(&record)?;
    state.throttle.succeeded(hash, now);
    Ok(Caller { token_id: record.id, name: record.name, scope, policies: record.policies, source })
}

/// The text of an `Authorization: Bearer` header, if the request has one.
fn bearer_token(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The scope of a stored token (the table admits only the four).
pub(super) fn stored_scope(record: &TokenRecord) -> Result<Scope, ApiError> {
    Scope::parse(&record.scope)
        .ok_or_else(|| ApiError::Internal(format!("token {} has scope {:?}", record.id, record.scope)))
}
