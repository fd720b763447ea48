//! Listeners: public HTTPS, public plain HTTP and admin HTTPS, with their
//! limits, TLS and graceful shutdown.

pub mod client_certificate;
pub mod listener;
pub mod public;
pub mod revocation;
pub mod serving;
pub mod tls;
pub mod trust_bundle;

pub use tls::{ClientAuth, rustls_config, server_config};

use crate::clock::SharedClock;
use crate::storage::Catalog;

/// What the public routes read.
#[derive(Debug, Clone)]
pub struct PublicState {
    pub catalog: Catalog,
    pub clock: SharedClock,
}
