//! Every Vault API error, and its one mapping to Vault's wire form:
//! `{"errors": ["..."]}` with the status Vault gives. Internal causes are
//! logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::authority::PolicyError;
use crate::issuance::{CsrError, IssueError};
use crate::policy_issuance::{PolicyIssueError, StoredPolicyError};
use crate::storage::StoreError;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "5";

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No token, an unknown, expired or revoked one, or one whose scope or
    /// policies do not reach the path: Vault gives all of these one answer.
    #[error("permission denied")]
    PermissionDenied,
    #[error("unknown role: {0}")]
    UnknownRole(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the CSR's key was revoked as compromised (keyCompromise); certify a new key")]
    KeyBlocked,
    #[error("{0}")]
    NotFound(String),
    #[error("unsupported operation")]
    MethodNotAllowed,
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for VaultError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound("not found".into()),
            StoreError::Unavailable(m) => Self::Unavailable(m),
            StoreError::Conflict(m) | StoreError::Other(m) => Self::Internal(m),
        }
    }
}

impl From<StoredPolicyError> for VaultError {
    fn from(e: StoredPolicyError) -> Self {
        match e {
            // A mount names a role whose policy is gone: the role is unknown.
            StoredPolicyError::NotFound(name) => Self::UnknownRole(name),
            StoredPolicyError::Store(s) => s.into(),
            StoredPolicyError::Invalid { .. } => Self::Internal(e.to_string()),
        }
    }
}

impl From<IssueError> for VaultError {
    fn from(e: IssueError) -> Self {
        if e.is_retryable() {
            return Self::Unavailable(e.to_string());
        }
        match e {
            IssueError::KeyBlocked => Self::KeyBlocked,
            IssueError::StartsTooLate => Self::BadRequest(e.to_string()),
            IssueError::Store(s) => s.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<PolicyIssueError> for VaultError {
    fn from(e: PolicyIssueError) -> Self {
        match e {
            PolicyIssueError::Csr(e) => e.into(),
            PolicyIssueError::Policy(e) => e.into(),
            PolicyIssueError::Issue(e) => e.into(),
        }
    }
}

impl VaultError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::UnknownRole(_) | Self::BadRequest(_) | Self::Csr(_) | Self::Policy(_) | Self::KeyBlocked => {
                StatusCode::BAD_REQUEST
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for VaultError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            Self::Internal(cause) => {
                tracing::error!(cause, "internal error");
                "internal error; the error has been logged".to_owned()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(cause, "dependency unavailable");
                "a dependency of Tessera is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (status, axum::Json(json!({ "errors": [message] }))).into_response();
        if let Self::Unavailable(_) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_the_status_vault_gives() {
        let cases = [
            (VaultError::PermissionDenied, 403),
            (VaultError::UnknownRole("x".into()), 400),
            (VaultError::Policy(PolicyError::NoIdentifiers), 400),
            (VaultError::NotFound("x".into()), 404),
            (VaultError::Unavailable("db".into()), 503),
            (VaultError::Internal("bug".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }
}
