//! Which listeners are serving, for readiness: a listener whose task ended
//! (its socket failed) makes the node unready, so a load balancer takes it
//! out rather than sending it requests nobody answers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The listeners by name, and whether each is serving. Clones share them.
#[derive(Debug, Clone, Default)]
pub struct ServingListeners(Arc<Mutex<BTreeMap<&'static str, bool>>>);

impl ServingListeners {
    pub fn set(&self, listener: &'static str, serving: bool) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(listener, serving);
    }

    /// The listeners serving and those that stopped, by name.
    pub fn report(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let listeners = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (serving, stopped): (Vec<_>, Vec<_>) = listeners.iter().partition(|(_, serving)| **serving);
        (serving.into_iter().map(|(name, _)| *name).collect(), stopped.into_iter().map(|(name, _)| *name).collect())
    }
}
