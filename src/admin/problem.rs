//! Every admin API error, and its one mapping to RFC 9457 problem details.
//! Internal causes are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::authority::PolicyError;
use crate::http::listener::{OVERLOADED_RETRY_AFTER_SECONDS, Refusal};
use crate::issuance::{CsrError, IssueError, SigningError};
use crate::policy_issuance::{PolicyIssueError, StoredPolicyError};
use crate::revocation::RevocationError;
use crate::rotation::RotationError;
use crate::secrets::SecretsError;
use crate::storage::{StoreError, TokenError};
use crate::token::BindingError;

/// Seconds a client should wait before retrying after a 503.
pub const RETRY_AFTER_SECONDS: &str = "5";
/// Seconds to wait before retrying a request whose idempotency key is in
/// use: an issuance takes well under that.
const IN_USE_RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid bearer token is required")]
    Unauthorized,
    #[error("this token's scope ({0}) does not allow this operation")]
    InsufficientScope(&'static str),
    #[error("{}", match .0 {
        Some(policy) => format!("this token is not bound to policy {policy:?}"),
        None => "this object was made under no policy; only an admin token may act on it".to_owned(),
    })]
    PolicyNotBound(Option<String>),
    #[error("too many failed authentications from this address; retry in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    AlreadyRevoked(String),
    /// An earlier request with the same `Idempotency-Key` is still being served.
    #[error("a request with this Idempotency-Key is still being served; retry shortly")]
    IdempotencyKeyInUse,
    /// The `Idempotency-Key` came with another request body before.
    #[error("this Idempotency-Key was used with another request body; use a new key for a new request")]
    IdempotencyKeyReused,
    /// The CSR's key was revoked as compromised.
    #[error("the CSR's key was revoked as compromised (keyCompromise); certify a new key")]
    KeyBlocked,
    #[error("{0}")]
    Unavailable(String),
    #[error("the admin listener is handling as many requests as it may; retry later")]
    Overloaded,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    /// The certificate failed its lint (a fault in a profile) and was not signed.
    #[error("{0}; nothing was signed, the serial is marked failed and the findings are audited")]
    LintFailed(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("no such object".into()),
            StoreError::Conflict(m) => Self::Conflict(m),
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Other(m) => Self::Internal(m),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Overloaded => Self::Overloaded,
            Refusal::BodyTimedOut => Self::RequestTimeout,
            Refusal::BodyBroken => Self::Malformed("the request body broke off".into()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::NotFound(_) => Self::NotFound(e.to_string()),
            TokenError::Revoked(_) | TokenError::Expired(_) | TokenError::LastAdmin(_) => Self::Conflict(e.to_string()),
            TokenError::UnknownPolicy(_) => Self::Malformed(e.to_string()),
            TokenError::Store(s) => s.into(),
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Store(s) => s.into(),
            e if e.is_retryable() => Self::Unavailable(e.to_string()),
            e => Self::Internal(e.to_string()),
        }
    }
}

impl From<BindingError> for ApiError {
    fn from(e: BindingError) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl From<RevocationError> for ApiError {
    fn from(e: RevocationError) -> Self {
        if e.is_retryable() {
            return Self::Unavailable(e.to_string());
        }
        match e {
            RevocationError::Store(s) => s.into(),
            RevocationError::UnknownAuthority(_) => Self::Conflict(e.to_string()),
            RevocationError::Signing(s) => Self::Internal(s.to_string()),
        }
    }
}

impl From<RotationError> for ApiError {
    fn from(e: RotationError) -> Self {
        if e.is_retryable() {
            return Self::Unavailable(e.to_string());
        }
        match e {
            RotationError::UnknownAuthority(_) => Self::NotFound(e.to_string()),
            RotationError::NotIssuing(_) | RotationError::NotActive(_) | RotationError::Busy => {
                Self::Conflict(e.to_string())
            }
            RotationError::Store(s) => s.into(),
            RotationError::Revocation(r) => r.into(),
            RotationError::Setup(_) | RotationError::Signer(_) | RotationError::Refused(_) => {
                Self::Internal(e.to_string())
            }
        }
    }
}

impl From<StoredPolicyError> for ApiError {
    fn from(e: StoredPolicyError) -> Self {
        match e {
            StoredPolicyError::NotFound(_) => Self::NotFound(e.to_string()),
            StoredPolicyError::Store(s) => s.into(),
            StoredPolicyError::Invalid { .. } => Self::Internal(e.to_string()),
        }
    }
}

impl From<PolicyIssueError> for ApiError {
    fn from(e: PolicyIssueError) -> Self {
        match e {
            PolicyIssueError::Csr(e) => e.into(),
            PolicyIssueError::Policy(e) => e.into(),
            PolicyIssueError::Issue(e) => e.into(),
        }
    }
}

impl From<IssueError> for ApiError {
    fn from(e: IssueError) -> Self {
        if e.is_retryable() {
            return Self::Unavailable(e.to_string());
        }
        match e {
            IssueError::Store(s) => s.into(),
            IssueError::Signing(SigningError::Encoding(m)) => Self::Internal(m),
            IssueError::Signing(SigningError::Signer(s)) => Self::Internal(s.to_string()),
            IssueError::Signing(SigningError::Lint(l)) => Self::LintFailed(l.to_string()),
            IssueError::StartsTooLate => Self::Malformed(e.to_string()),
            IssueError::OrderNotReady => Self::Conflict(e.to_string()),
            IssueError::KeyBlocked => Self::KeyBlocked,
            IssueError::Suspended(m) => Self::Unavailable(m),
        }
    }
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use CsrError as C;
        use PolicyError as P;
        match self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient-scope", "Insufficient scope"),
            Self::PolicyNotBound(_) => (StatusCode::FORBIDDEN, "policy-not-bound", "Policy not bound to this token"),
            Self::Throttled(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too-many-failed-authentications", "Too many failed authentications")
            }
            Self::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed-request", "Malformed request"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "malformed-request", "Unsupported media type")
            }
            Self::Csr(C::NotPemOrDer | C::Malformed(_) | C::UnsupportedName(_)) => {
                (StatusCode::BAD_REQUEST, "bad-csr", "Bad certificate request")
            }
            Self::Csr(C::BadIdentifier(_)) => (StatusCode::BAD_REQUEST, "bad-identifier", "Invalid identifier"),
            Self::Csr(C::BadSignature | C::WeakSignatureAlgorithm(_)) | Self::Policy(P::HighSSignature) => {
                (StatusCode::BAD_REQUEST, "bad-csr-signature", "Bad CSR signature")
            }
            Self::Csr(C::WeakKey(_)) => (StatusCode::BAD_REQUEST, "weak-key", "Weak key"),
            Self::Csr(C::UnsupportedKey(_)) => (StatusCode::BAD_REQUEST, "unsupported-key", "Unsupported key"),
            Self::Policy(P::IdentifierNotAllowed(_) | P::NoIdentifiers) => {
                (StatusCode::FORBIDDEN, "identifier-not-allowed", "Identifier not allowed")
            }
            Self::Policy(P::KeyTypeNotAllowed(_)) => {
                (StatusCode::FORBIDDEN, "key-type-not-allowed", "Key type not allowed")
            }
            Self::Policy(P::TtlTooLong { .. }) => (StatusCode::BAD_REQUEST, "ttl-too-long", "Lifetime too long"),
            Self::Policy(P::BadName(_) | P::BadRule { .. }) => {
                (StatusCode::BAD_REQUEST, "malformed-request", "Invalid policy")
            }
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Self::AlreadyRevoked(_) => (StatusCode::CONFLICT, "already-revoked", "Already revoked"),
            Self::IdempotencyKeyInUse => (StatusCode::CONFLICT, "idempotency-key-in-use", "Idempotency key in use"),
            Self::IdempotencyKeyReused => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency key reused")
            }
            Self::KeyBlocked => (StatusCode::BAD_REQUEST, "blocked-key", "Blocked key"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Temporarily unavailable"),
            Self::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded", "Overloaded"),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request-timeout", "Request timeout"),
            Self::LintFailed(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "certificate-failed-lint", "The certificate failed its lint")
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.parts();
        let detail = match &self {
            Self::Internal(cause) => {
                tracing::error!(cause, "internal error");
                "the server failed; the error has been logged".to_owned()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(cause, "dependency unavailable");
                "a dependency of Tessera is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({
            "type": format!("urn:tessera:problem:{slug}"),
            "title": title,
            "status": status.as_u16(),
            "detail": detail,
        });
        if let Self::Policy(PolicyError::IdentifierNotAllowed(id)) = &self {
            body["identifier"] = json!({ "type": id.kind(), "value": id.value() });
        }
        if let Self::PolicyNotBound(Some(policy)) = &self {
            body["policy"] = json!(policy);
        }
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"tessera\""));
            }
            Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Self::IdempotencyKeyInUse => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static(IN_USE_RETRY_AFTER_SECONDS));
            }
            Self::Overloaded => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(OVERLOADED_RETRY_AFTER_SECONDS));
            }
            Self::Throttled(seconds) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            _ => {}
        }
        response
    }
}
