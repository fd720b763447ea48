//! Test support (the `test-support` feature only): holds one issuance for
//! ever between reserving its serial and signing, so a test can stop the
//! node at the very moment a crash leaves issuance half done.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;

/// Names whose next issuance is held, each with the notice it fires.
static HOLDS: Mutex<Vec<(String, Arc<Notify>)>> = Mutex::new(Vec::new());

/// Holds the next issuance whose SANs include `name` (on any node of this
/// process) once its serial is reserved; the notice fires when it is held.
pub fn hold_next_issuance_of(name: &str) -> Arc<Notify> {
    let held = Arc::new(Notify::new());
    HOLDS.lock().unwrap_or_else(PoisonError::into_inner).push((name.to_owned(), held.clone()));
    held
}

/// Never returns for an issuance a test asked to hold.
pub(super) async fn hold_if_asked(sans: &str) {
    let held = {
        let mut holds = HOLDS.lock().unwrap_or_else(PoisonError::into_inner);
        let named = |name: &str| sans.split_whitespace().any(|san| san.split_once(':').is_some_and(|(_, n)| n == name));
        let index = holds.iter().position(|(name, _)| named(name));
        index.map(|i| holds.remove(i).1)
    };
    if let Some(held) = held {
        held.notify_one();
        std::future::pending::<()>().await;
    }
}
