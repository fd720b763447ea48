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
use super::token::{Scope, hash_token};

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
}

impl Caller {
    /// How the audit log names this caller.
    pub fn actor(&self) -> String {
        format!("token:{}", self.name)
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
            return Err(ApiError::InsufficientScope(caller.scope.as_str()));
        }
        Ok(Self(caller, PhantomData))
    }
}

/// Finds the live token the request presents.
pub async fn authenticate(parts: &Parts, state: &AdminState) -> Result<Caller, ApiError> {
    let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
    let (scheme, token) = header.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized);
    }
    let record = state.db.active_token_by_hash(&hash_token(token.trim())).await?.ok_or(ApiError::Unauthorized)?;
    let scope = Scope::parse(&record.scope).ok_or_else(|| ApiError::Internal("stored token scope".into()))?;
    Ok(Caller { token_id: record.id, name: record.name, scope })
}
