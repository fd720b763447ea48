//! Every status column's values, each spelled once: the enums the rest of
//! Tessera matches on, their stored form (a SMALLINT code for
//! certificates, RFC 8555's spelling for ACME objects), and the same
//! values as SQL literals for statements' text (`sql`). A statement writes
//! `status = {ORDER_READY}`, never `'ready'`; the literal is written into
//! the text rather than bound, so PostgreSQL's generic plans still match
//! the partial indexes on status (`certificates_heads`, ...).

use std::fmt;

/// A stored status that was none of its kind's values.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} status {value}")]
pub struct UnknownStatus {
    kind: &'static str,
    value: String,
}

/// A status as a literal in a statement's text: a code as a number, a
/// spelling quoted (the spellings hold no quote; a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlLiteral {
    Code(i16),
    Text(&'static str),
}

impl fmt::Display for SqlLiteral {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(code) => write!(f, "{code}"),
            Self::Text(text) => write!(f, "'{text}'"),
        }
    }
}

/// A status enum stored as its spelling: the variants with their spellings,
/// and everything derived from that one table.
macro_rules! text_status {
    ($(#[$doc:meta])* $name:ident ($kind:literal) { $($variant:ident = $spelling:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant,)+];

            /// The spelling, stored and shown alike.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $spelling,)+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.as_str() == text)
            }

            pub(super) const fn sql(self) -> SqlLiteral {
                SqlLiteral::Text(self.as_str())
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownStatus;

            fn try_from(text: String) -> Result<Self, UnknownStatus> {
                Self::parse(&text).ok_or(UnknownStatus { kind: $kind, value: text })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

/// A certificate's place in issuance (`issuance::issuer`): reserved before
/// it is signed, then issued or failed, perhaps later revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateStatus {
    Pending,
    Issued,
    Failed,
    Revoked,
}

impl CertificateStatus {
    pub const ALL: &'static [Self] = &[Self::Pending, Self::Issued, Self::Failed, Self::Revoked];

    /// The stored code (migration 0001); the partial indexes name these.
    pub const fn code(self) -> i16 {
        match self {
            Self::Pending => 0,
            Self::Issued => 1,
            Self::Failed => 2,
            Self::Revoked => 3,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.code() == code)
    }

    /// The name the admin API shows and filters by.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issued => "issued",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == text)
    }

    pub(super) const fn sql(self) -> SqlLiteral {
        SqlLiteral::Code(self.code())
    }
}

impl TryFrom<i16> for CertificateStatus {
    type Error = UnknownStatus;

    fn try_from(code: i16) -> Result<Self, UnknownStatus> {
        Self::from_code(code).ok_or(UnknownStatus { kind: "certificate", value: code.to_string() })
    }
}

/// Whose certificate it is: a workload's, or Tessera's own (its TLS
/// certificate, OCSP responder and CA certificates), which rotation
/// replaces and no operator revokes by hand. Listings and expiry figures
/// keep the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertificateKind {
    Workload,
    Internal,
}

impl CertificateKind {
    pub const ALL: &'static [Self] = &[Self::Workload, Self::Internal];

    /// The stored code (migration 0020).
    pub const fn code(self) -> i16 {
        match self {
            Self::Workload => 0,
            Self::Internal => 1,
        }
    }

    pub fn from_code(code: i16) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.code() == code)
    }

    /// The name the admin API shows and filters by.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Internal => "internal",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == text)
    }

    pub(super) const fn sql(self) -> SqlLiteral {
        SqlLiteral::Code(self.code())
    }
}

impl TryFrom<i16> for CertificateKind {
    type Error = UnknownStatus;

    fn try_from(code: i16) -> Result<Self, UnknownStatus> {
        Self::from_code(code).ok_or(UnknownStatus { kind: "certificate kind", value: code.to_string() })
    }
}

text_status! {
    /// An ACME account's status (RFC 8555 §7.1.2).
    AccountStatus ("account") {
        Valid = "valid",
        Deactivated = "deactivated",
        Revoked = "revoked",
    }
}

text_status! {
    /// An ACME order's status (RFC 8555 §7.1.3, the state machine of §7.1.6).
    OrderStatus ("order") {
        Pending = "pending",
        Ready = "ready",
        Processing = "processing",
        Valid = "valid",
        Invalid = "invalid",
    }
}

text_status! {
    /// An ACME authorization's status (RFC 8555 §7.1.4). `expired` is never
    /// stored: a pending or valid authorization past its expiry shows it.
    AuthzStatus ("authorization") {
        Pending = "pending",
        Valid = "valid",
        Invalid = "invalid",
        Deactivated = "deactivated",
        Expired = "expired",
        Revoked = "revoked",
    }
}

text_status! {
    /// An ACME challenge's status (RFC 8555 §7.1.5).
    ChallengeStatus ("challenge") {
        Pending = "pending",
        Processing = "processing",
        Valid = "valid",
        Invalid = "invalid",
    }
}

text_status! {
    /// An authority's status: the active one signs; a rotation retires its
    /// predecessor, which keeps answering for what it signed.
    AuthorityStatus ("authority") {
        Active = "active",
        Retired = "retired",
    }
}

text_status! {
    /// A webhook delivery's state: pending until delivered, or failed
    /// once its attempts ran out.
    DeliveryState ("webhook delivery") {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
    }
}

/// The statuses as SQL literals, named by kind, for statements' text.
pub(super) mod sql {
    use super::{
        AccountStatus, AuthorityStatus, AuthzStatus, CertificateStatus, ChallengeStatus, DeliveryState, OrderStatus,
        SqlLiteral,
    };

    pub(in crate::storage) const CERT_PENDING: SqlLiteral = CertificateStatus::Pending.sql();
    pub(in crate::storage) const CERT_ISSUED: SqlLiteral = CertificateStatus::Issued.sql();
    pub(in crate::storage) const CERT_FAILED: SqlLiteral = CertificateStatus::Failed.sql();
    pub(in crate::storage) const CERT_REVOKED: SqlLiteral = CertificateStatus::Revoked.sql();

    pub(in crate::storage) const ACCOUNT_VALID: SqlLiteral = AccountStatus::Valid.sql();
    pub(in crate::storage) const ACCOUNT_REVOKED: SqlLiteral = AccountStatus::Revoked.sql();

    pub(in crate::storage) const ORDER_PENDING: SqlLiteral = OrderStatus::Pending.sql();
    pub(in crate::storage) const ORDER_READY: SqlLiteral = OrderStatus::Ready.sql();
    pub(in crate::storage) const ORDER_PROCESSING: SqlLiteral = OrderStatus::Processing.sql();
    pub(in crate::storage) const ORDER_VALID: SqlLiteral = OrderStatus::Valid.sql();
    pub(in crate::storage) const ORDER_INVALID: SqlLiteral = OrderStatus::Invalid.sql();

    pub(in crate::storage) const AUTHZ_PENDING: SqlLiteral = AuthzStatus::Pending.sql();
    pub(in crate::storage) const AUTHZ_VALID: SqlLiteral = AuthzStatus::Valid.sql();
    pub(in crate::storage) const AUTHZ_DEACTIVATED: SqlLiteral = AuthzStatus::Deactivated.sql();

    pub(in crate::storage) const CHALLENGE_PENDING: SqlLiteral = ChallengeStatus::Pending.sql();
    pub(in crate::storage) const CHALLENGE_PROCESSING: SqlLiteral = ChallengeStatus::Processing.sql();
    pub(in crate::storage) const CHALLENGE_INVALID: SqlLiteral = ChallengeStatus::Invalid.sql();

    pub(in crate::storage) const AUTHORITY_ACTIVE: SqlLiteral = AuthorityStatus::Active.sql();
    pub(in crate::storage) const AUTHORITY_RETIRED: SqlLiteral = AuthorityStatus::Retired.sql();

    pub(in crate::storage) const DELIVERY_PENDING: SqlLiteral = DeliveryState::Pending.sql();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spellings<T: fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(T::to_string).collect()
    }

    /// The stored forms are the database's: a reordered or respelled
    /// variant would misread every row written before, so each is pinned.
    #[test]
    fn stored_forms_are_pinned() {
        let certificates: Vec<_> = CertificateStatus::ALL.iter().map(|s| (s.code(), s.as_str())).collect();
        assert_eq!(certificates, [(0, "pending"), (1, "issued"), (2, "failed"), (3, "revoked")]);
        let kinds: Vec<_> = CertificateKind::ALL.iter().map(|k| (k.code(), k.as_str())).collect();
        assert_eq!(kinds, [(0, "workload"), (1, "internal")]);
        assert_eq!(spellings(AccountStatus::ALL), ["valid", "deactivated", "revoked"]);
        assert_eq!(spellings(OrderStatus::ALL), ["pending", "ready", "processing", "valid", "invalid"]);
        assert_eq!(spellings(AuthzStatus::ALL), ["pending", "valid", "invalid", "deactivated", "expired", "revoked"]);
        assert_eq!(spellings(ChallengeStatus::ALL), ["pending", "processing", "valid", "invalid"]);
        assert_eq!(spellings(AuthorityStatus::ALL), ["active", "retired"]);
        assert_eq!(spellings(DeliveryState::ALL), ["pending", "delivered", "failed"]);
    }

    /// Every stored form reads back as its status; anything else is an error.
    #[test]
    fn stored_forms_read_back() {
        for status in CertificateStatus::ALL {
            assert_eq!(CertificateStatus::try_from(status.code()).ok(), Some(*status));
            assert_eq!(CertificateStatus::parse(status.as_str()), Some(*status));
        }
        assert!(CertificateStatus::try_from(4).is_err());
        for kind in CertificateKind::ALL {
            assert_eq!(CertificateKind::try_from(kind.code()).ok(), Some(*kind));
            assert_eq!(CertificateKind::parse(kind.as_str()), Some(*kind));
        }
        assert!(CertificateKind::try_from(2).is_err());
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::try_from(status.to_string()).ok(), Some(*status));
        }
        for status in AuthzStatus::ALL {
            assert_eq!(AuthzStatus::try_from(status.to_string()).ok(), Some(*status));
        }
        for status in ChallengeStatus::ALL {
            assert_eq!(ChallengeStatus::try_from(status.to_string()).ok(), Some(*status));
        }
        for status in AccountStatus::ALL {
            assert_eq!(AccountStatus::try_from(status.to_string()).ok(), Some(*status));
        }
        for status in AuthorityStatus::ALL {
            assert_eq!(AuthorityStatus::try_from(status.to_string()).ok(), Some(*status));
        }
        for state in DeliveryState::ALL {
            assert_eq!(DeliveryState::try_from(state.to_string()).ok(), Some(*state));
        }
        let unknown = OrderStatus::try_from("Ready".to_string()).map_err(|e| e.to_string());
        assert_eq!(unknown, Err("unknown order status Ready".to_string()));
    }

    /// A validation's outcome is written to the challenge and its
    /// authorization as one value (`AcmeStore::record_acme_validations`).
    #[test]
    fn a_validation_outcome_is_spelled_alike_for_challenge_and_authorization() {
        assert_eq!(ChallengeStatus::Valid.as_str(), AuthzStatus::Valid.as_str());
        assert_eq!(ChallengeStatus::Invalid.as_str(), AuthzStatus::Invalid.as_str());
    }

    /// The SQL literals are the stored forms, quoted where they are text,
    /// and a spelling needs no escaping inside its quotes.
    #[test]
    fn sql_literals_are_the_stored_forms() {
        assert_eq!(sql::CERT_PENDING.to_string(), "0");
        assert_eq!(sql::CERT_REVOKED.to_string(), "3");
        assert_eq!(sql::ORDER_READY.to_string(), "'ready'");
        assert_eq!(sql::AUTHZ_DEACTIVATED.to_string(), "'deactivated'");
        let texts = [
            spellings(AccountStatus::ALL),
            spellings(OrderStatus::ALL),
            spellings(AuthzStatus::ALL),
            spellings(ChallengeStatus::ALL),
            spellings(AuthorityStatus::ALL),
            spellings(DeliveryState::ALL),
        ];
        for text in texts.iter().flatten() {
            assert!(text.bytes().all(|b| b.is_ascii_lowercase()), "{text}");
        }
    }
}
