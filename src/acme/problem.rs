//! Every ACME error, and its one mapping to a problem document (RFC 8555
//! §6.7, RFC 9457): the type URN, the HTTP status (always equal to the
//! document's `status`, which cert-manager trusts over the HTTP line),
//! subproblems per identifier and `Retry-After`. Internal causes are logged
//! and answered as `serverInternal` without detail.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::jws::{ACCEPTED_ALGORITHMS, JwsError};
use super::nonce::NonceError;
use crate::authority::PolicyError;
use crate::http::listener::{OVERLOADED_RETRY_AFTER_SECONDS, Refusal};
use crate::issuance::{CsrError, Identifier, IssueError};
use crate::secrets::SecretsError;
use crate::storage::StoreError;
use crate::validation::ValidationError;

/// Seconds a client should wait after a 503.
const UNAVAILABLE_RETRY_AFTER: u64 = 5;

/// The ACME error types (RFC 8555 §6.7 and RFC 9773's `alreadyReplaced`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    AccountDoesNotExist,
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
}

impl ProblemType {
    /// The part after `urn:ietf:params:acme:error:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::AccountDoesNotExist => "accountDoesNotExist",
            Self::AlreadyReplaced => "alreadyReplaced",
            Self::AlreadyRevoked => "alreadyRevoked",
            Self::BadCsr => "badCSR",
            Self::BadNonce => "badNonce",
            Self::BadPublicKey => "badPublicKey",
            Self::BadRevocationReason => "badRevocationReason",
            Self::BadSignatureAlgorithm => "badSignatureAlgorithm",
            Self::Connection => "connection",
            Self::Dns => "dns",
            Self::ExternalAccountRequired => "externalAccountRequired",
            Self::IncorrectResponse => "incorrectResponse",
            Self::InvalidContact => "invalidContact",
            Self::Malformed => "malformed",
            Self::OrderNotReady => "orderNotReady",
            Self::RateLimited => "rateLimited",
            Self::RejectedIdentifier => "rejectedIdentifier",
            Self::ServerInternal => "serverInternal",
            Self::Tls => "tls",
            Self::Unauthorized => "unauthorized",
            Self::UnsupportedContact => "unsupportedContact",
            Self::UnsupportedIdentifier => "unsupportedIdentifier",
        }
    }

    pub fn urn(self) -> String {
        format!("urn:ietf:params:acme:error:{}", self.name())
    }

    /// The status each type answers with unless a handler says otherwise.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::OrderNotReady => StatusCode::FORBIDDEN,
            Self::AlreadyReplaced => StatusCode::CONFLICT,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A problem about one identifier of a request (§6.7.1).
#[derive(Debug, Clone)]
pub struct Subproblem {
    pub kind: ProblemType,
    pub detail: String,
    pub identifier: Identifier,
}

#[derive(Debug, Clone)]
pub struct AcmeProblem {
    pub kind: ProblemType,
    pub detail: String,
    pub status: StatusCode,
    pub subproblems: Vec<Subproblem>,
    pub retry_after: Option<u64>,
    /// `Location` of the conflicting account (key change, §7.3.5).
    pub location: Option<String>,
    /// Logged, never sent.
    internal: Option<String>,
}

impl AcmeProblem {
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            status: kind.status(),
            subproblems: Vec::new(),
            retry_after: None,
            location: None,
            internal: None,
        }
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Malformed, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ProblemType::Unauthorized, detail)
    }

    /// A URL that names nothing: `malformed` with 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::malformed(detail).with_status(StatusCode::NOT_FOUND)
    }

    /// A failure of Tessera itself; the cause goes to the log only.
    pub fn internal(cause: impl Into<String>) -> Self {
        let mut problem = Self::new(ProblemType::ServerInternal, "the server failed; the error has been logged");
        problem.internal = Some(cause.into());
        problem
    }

    /// A dependency (database, signer) is down: 503 with `Retry-After`.
    pub fn unavailable(cause: impl Into<String>) -> Self {
        let mut problem = Self::new(ProblemType::ServerInternal, "a dependency of Tessera is unavailable; retry later")
            .with_status(StatusCode::SERVICE_UNAVAILABLE);
        problem.retry_after = Some(UNAVAILABLE_RETRY_AFTER);
        problem.internal = Some(cause.into());
        problem
    }

    /// The listener is handling as many requests as it may.
    pub fn overloaded() -> Self {
        let mut problem =
            Self::new(ProblemType::ServerInternal, "the server is handling as many requests as it may; retry later")
                .with_status(StatusCode::SERVICE_UNAVAILABLE);
        problem.retry_after = Some(OVERLOADED_RETRY_AFTER_SECONDS);
        problem
    }

    pub fn rate_limited(detail: impl Into<String>, retry_after: u64) -> Self {
        let mut problem = Self::new(ProblemType::RateLimited, detail);
        problem.retry_after = Some(retry_after);
        problem
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub fn with_subproblems(mut self, subproblems: Vec<Subproblem>) -> Self {
        self.subproblems = subproblems;
        self
    }

    /// The problem document, as sent and as stored on orders and challenges.
    pub fn to_json(&self) -> Value {
        let mut body = json!({
            "type": self.kind.urn(),
            "detail": self.detail,
            "status": self.status.as_u16(),
        });
        if self.kind == ProblemType::BadSignatureAlgorithm {
            body["algorithms"] = json!(ACCEPTED_ALGORITHMS);
        }
        if !self.subproblems.is_empty() {
            body["subproblems"] = self
                .subproblems
                .iter()
                .map(|sub| {
                    json!({
                        "type": sub.kind.urn(),
                        "detail": sub.detail,
                        "identifier": {"type": sub.identifier.kind(), "value": sub.identifier.value()},
                    })
                })
                .collect();
        }
        body
    }
}

impl std::fmt::Display for AcmeProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.detail)
    }
}

impl IntoResponse for AcmeProblem {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.internal {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(cause, "ACME request: dependency unavailable");
            } else {
                tracing::error!(cause, "ACME request failed");
            }
        }
        let mut response = (self.status, self.to_json().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(location) = self.location.as_deref().and_then(|l| HeaderValue::from_str(l).ok()) {
            headers.insert(header::LOCATION, location);
        }
        response
    }
}

impl From<JwsError> for AcmeProblem {
    fn from(e: JwsError) -> Self {
        match e {
            JwsError::Malformed(m) => Self::malformed(m),
            JwsError::BadSignatureAlgorithm(m) => Self::new(ProblemType::BadSignatureAlgorithm, m),
            JwsError::BadSignature => Self::malformed("the JWS signature does not verify"),
            JwsError::HighS => Self::malformed(e.to_string()),
            JwsError::BadPublicKey(m) => Self::new(ProblemType::BadPublicKey, m),
        }
    }
}

impl From<NonceError> for AcmeProblem {
    fn from(e: NonceError) -> Self {
        Self::new(ProblemType::BadNonce, e.to_string())
    }
}

impl From<Refusal> for AcmeProblem {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::Overloaded => Self::overloaded(),
            Refusal::BodyTimedOut => {
                Self::malformed("the request body did not arrive in time").with_status(StatusCode::REQUEST_TIMEOUT)
            }
            Refusal::BodyBroken => Self::malformed("the request body broke off"),
        }
    }
}

impl From<ValidationError> for AcmeProblem {
    fn from(e: ValidationError) -> Self {
        let kind = match &e {
            ValidationError::Dns(_) => ProblemType::Dns,
            ValidationError::Connection(_) => ProblemType::Connection,
            ValidationError::Tls(_) => ProblemType::Tls,
            ValidationError::IncorrectResponse(_) => ProblemType::IncorrectResponse,
            ValidationError::Unauthorized(_) => ProblemType::Unauthorized,
        };
        Self::new(kind, e.to_string())
    }
}

impl From<SecretsError> for AcmeProblem {
    fn from(e: SecretsError) -> Self {
        match e {
            SecretsError::Store(s) => s.into(),
            e if e.is_retryable() => Self::unavailable(e.to_string()),
            e => Self::internal(e.to_string()),
        }
    }
}

impl From<StoreError> for AcmeProblem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::unavailable(m),
            StoreError::NotFound => Self::not_found("no such object"),
            StoreError::Conflict(m) => Self::malformed(m).with_status(StatusCode::CONFLICT),
            StoreError::Other(m) => Self::internal(m),
        }
    }
}

impl From<CsrError> for AcmeProblem {
    fn from(e: CsrError) -> Self {
        match e {
            CsrError::WeakKey(m) | CsrError::UnsupportedKey(m) => {
                Self::new(ProblemType::BadCsr, format!("the CSR's key is not accepted: {m}"))
            }
            CsrError::BadIdentifier(_) => Self::new(ProblemType::RejectedIdentifier, e.to_string()),
            other => Self::new(ProblemType::BadCsr, other.to_string()),
        }
    }
}

impl From<PolicyError> for AcmeProblem {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::IdentifierNotAllowed(id) => {
                let detail = format!("the policy does not allow {id}");
                Self::new(ProblemType::RejectedIdentifier, detail.clone()).with_subproblems(vec![Subproblem {
                    kind: ProblemType::RejectedIdentifier,
                    detail,
                    identifier: id,
                }])
            }
            PolicyError::KeyTypeNotAllowed(key) => {
                Self::new(ProblemType::BadCsr, format!("the policy does not allow {key} keys"))
            }
            PolicyError::TtlTooLong { requested, max } => {
                Self::malformed(format!("the requested lifetime {requested} exceeds the policy's maximum {max}"))
            }
            PolicyError::NoIdentifiers => Self::malformed("the request names no identifier"),
            PolicyError::HighSSignature => Self::new(ProblemType::BadCsr, e.to_string()),
            PolicyError::BadName(_) | PolicyError::BadRule { .. } => Self::internal(e.to_string()),
        }
    }
}

impl From<IssueError> for AcmeProblem {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::StartsTooLate => Self::malformed(e.to_string()),
            IssueError::OrderNotReady => Self::new(ProblemType::OrderNotReady, "the order is being finalized already"),
            IssueError::KeyBlocked => Self::new(
                ProblemType::BadPublicKey,
                "the CSR's key was revoked as compromised (keyCompromise); make a new key",
            ),
            e if e.is_retryable() => Self::unavailable(e.to_string()),
            e => Self::internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_type_has_its_urn_and_status() {
        let table = [
            (ProblemType::AccountDoesNotExist, "accountDoesNotExist", 400),
            (ProblemType::AlreadyReplaced, "alreadyReplaced", 409),
            (ProblemType::AlreadyRevoked, "alreadyRevoked", 400),
            (ProblemType::BadCsr, "badCSR", 400),
            (ProblemType::BadNonce, "badNonce", 400),
            (ProblemType::BadPublicKey, "badPublicKey", 400),
            (ProblemType::BadRevocationReason, "badRevocationReason", 400),
            (ProblemType::BadSignatureAlgorithm, "badSignatureAlgorithm", 400),
            (ProblemType::Connection, "connection", 400),
            (ProblemType::Dns, "dns", 400),
            (ProblemType::ExternalAccountRequired, "externalAccountRequired", 400),
            (ProblemType::IncorrectResponse, "incorrectResponse", 400),
            (ProblemType::InvalidContact, "invalidContact", 400),
            (ProblemType::Malformed, "malformed", 400),
            (ProblemType::OrderNotReady, "orderNotReady", 403),
            (ProblemType::RateLimited, "rateLimited", 429),
            (ProblemType::RejectedIdentifier, "rejectedIdentifier", 400),
            (ProblemType::ServerInternal, "serverInternal", 500),
            (ProblemType::Tls, "tls", 400),
            (ProblemType::Unauthorized, "unauthorized", 403),
            (ProblemType::UnsupportedContact, "unsupportedContact", 400),
            (ProblemType::UnsupportedIdentifier, "unsupportedIdentifier", 400),
        ];
        for (kind, name, status) in table {
            assert_eq!(kind.urn(), format!("urn:ietf:params:acme:error:{name}"));
            let problem = AcmeProblem::new(kind, "x");
            assert_eq!(problem.status.as_u16(), status, "{name}");
            assert_eq!(problem.to_json()["status"], status, "{name}");
        }
    }

    #[test]
    fn a_node_that_stopped_issuing_answers_server_internal_with_retry_after() {
        let problem = AcmeProblem::from(IssueError::Suspended("no key for issuing-2".into()));
        assert_eq!(problem.kind, ProblemType::ServerInternal);
        assert_eq!(problem.status.as_u16(), 503);
        assert!(problem.retry_after.is_some());
    }

    #[test]
    fn bad_signature_algorithm_lists_the_accepted_ones() {
        let body = AcmeProblem::new(ProblemType::BadSignatureAlgorithm, "no").to_json();
        assert_eq!(body["algorithms"], json!(["RS256", "ES256", "ES384", "EdDSA"]));
    }
}
