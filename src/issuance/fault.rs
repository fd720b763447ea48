//! Test support (the `test-support` feature only): corrupts the profile of
//! one issuance on purpose, so a test can show that the lint refuses to
//! sign what the corrupted profile makes.

use std::sync::{Mutex, PoisonError};

use rcgen::{CertificateParams, DnType, DnValue, IsCa, KeyUsagePurpose, SanType, SerialNumber};

/// One way to break a leaf's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileFault {
    /// A name nobody approved is added.
    ExtraName,
    /// The certificate lives a day longer than approved.
    LongerValidity,
    /// The leaf says CA:TRUE.
    CaTrue,
    /// The leaf may sign certificates.
    KeyCertSign,
    /// A three-octet serial.
    ShortSerial,
    /// The common name in a BMPString.
    BmpSubject,
}

/// Faults to apply, each to the next issuance naming its name.
static FAULTS: Mutex<Vec<(String, ProfileFault)>> = Mutex::new(Vec::new());

/// Corrupts the next issuance (on any node of this process) whose SANs
/// include `name` with `fault`.
pub fn corrupt_next_issuance_of(name: &str, fault: ProfileFault) {
    FAULTS.lock().unwrap_or_else(PoisonError::into_inner).push((name.to_owned(), fault));
}

/// `params` with the fault a test asked for applied, if any.
pub(super) fn corrupt_if_asked(sans: &str, params: CertificateParams) -> CertificateParams {
    let fault = {
        let mut faults = FAULTS.lock().unwrap_or_else(PoisonError::into_inner);
        let named = |name: &str| sans.split_whitespace().any(|san| san.split_once(':').is_some_and(|(_, n)| n == name));
        let index = faults.iter().position(|(name, _)| named(name));
        index.map(|i| faults.remove(i).1)
    };
    match fault {
        Some(fault) => corrupt(params, fault),
        None => params,
    }
}

/// `params` broken by `fault`.
pub fn corrupt(mut params: CertificateParams, fault: ProfileFault) -> CertificateParams {
    match fault {
        ProfileFault::ExtraName => {
            if let Ok(name) = "unapproved.example".to_owned().try_into() {
                params.subject_alt_names.push(SanType::DnsName(name));
            }
        }
        ProfileFault::LongerValidity => params.not_after += time::Duration::days(1),
        ProfileFault::CaTrue => params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained),
        ProfileFault::KeyCertSign => params.key_usages.push(KeyUsagePurpose::KeyCertSign),
        ProfileFault::ShortSerial => params.serial_number = Some(SerialNumber::from_slice(&[1, 2, 3])),
        ProfileFault::BmpSubject => {
            if let Some(DnValue::Utf8String(cn)) = params.distinguished_name.get(&DnType::CommonName).cloned()
                && let Ok(bmp) = rcgen::string::BmpString::try_from(cn.as_str())
            {
                params.distinguished_name.push(DnType::CommonName, DnValue::BmpString(bmp));
            }
        }
    }
    params
}
