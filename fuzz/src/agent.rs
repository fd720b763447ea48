//! What `tessera agent` reads from the CA: the certificate chain it
//! downloads (and later reads back from disk) and the renewal information
//! window (RFC 9773).

use instant_acme::RenewalInfo;
use tessera::agent::{CertificateChain, Schedule};
use time::OffsetDateTime;

/// The input is the leaf's DER, sent as the PEM chain a CA answers with,
/// and also tried as PEM text itself.
pub fn certificate(data: &[u8]) {
    let pem = pem::encode(&pem::Pem::new("CERTIFICATE", data.to_vec()));
    chain(&format!("{pem}{pem}"));
    if let Ok(text) = std::str::from_utf8(data) {
        chain(text);
    }
}

/// A chain the agent accepted is installed as `leaf_pem` + `issuers_pem`
/// and read back from those files at the next start: it must be the same.
fn chain(text: &str) {
    let Ok(chain) = CertificateChain::from_pem(text) else { return };
    let _ = (chain.ari_id(), chain.covers(&chain.names), Schedule::from_lifetime(&chain));
    let installed = format!("{}{}", chain.leaf_pem(), chain.issuers_pem());
    let again = CertificateChain::from_pem(&installed).expect("an installed chain reads back");
    assert_eq!(again.leaf, chain.leaf);
    assert_eq!(again.issuers, chain.issuers);
    assert_eq!((again.serial_hex, again.names), (chain.serial_hex, chain.names));
}

/// A renewal information answer, as the agent plans from it.
pub fn renewal_info(data: &[u8]) {
    let Ok(info) = serde_json::from_slice::<RenewalInfo>(data) else { return };
    let window = info.suggested_window;
    let now = OffsetDateTime::now_utc();
    for retry_after in [std::time::Duration::ZERO, std::time::Duration::from_secs(u64::from(u32::MAX))] {
        if let Some(schedule) = Schedule::from_ari(window.start, window.end, retry_after, now, &mut rand::rng()) {
            assert!(window.start <= schedule.renew_at && schedule.renew_at <= window.end, "{schedule:?}");
            let _ = schedule.next_step(now);
        }
    }
}
