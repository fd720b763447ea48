//! CRLReason (RFC 5280 §5.3.1): the codes stored, put in CRLs and OCSP
//! responses, and the names the APIs use.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    Unspecified = 0,
    KeyCompromise = 1,
    CaCompromise = 2,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
    CertificateHold = 6,
    PrivilegeWithdrawn = 9,
    AaCompromise = 10,
}

const ALL: [RevocationReason; 9] = [
    RevocationReason::Unspecified,
    RevocationReason::KeyCompromise,
    RevocationReason::CaCompromise,
    RevocationReason::AffiliationChanged,
    RevocationReason::Superseded,
    RevocationReason::CessationOfOperation,
    RevocationReason::CertificateHold,
    RevocationReason::PrivilegeWithdrawn,
    RevocationReason::AaCompromise,
];

impl RevocationReason {
    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(code: i16) -> Option<Self> {
        ALL.into_iter().find(|r| r.code() == code)
    }

    /// The RFC 5280 name, as the APIs spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// Reasons a subscriber or operator may give for a leaf. Holds are not
    /// supported (a revocation is final) and the CA-compromise reasons
    /// belong to CA certificates.
    pub fn parse_for_leaf(text: &str) -> Option<Self> {
        [
            Self::Unspecified,
            Self::KeyCompromise,
            Self::AffiliationChanged,
            Self::Superseded,
            Self::CessationOfOperation,
            Self::PrivilegeWithdrawn,
        ]
        .into_iter()
        .find(|r| r.as_str() == text)
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Storage blocks a key for the code it calls keyCompromise; it must be this one.
    #[test]
    fn storage_blocks_keys_for_key_compromise() {
        assert_eq!(RevocationReason::KeyCompromise.code(), crate::storage::KEY_COMPROMISE);
    }
}
