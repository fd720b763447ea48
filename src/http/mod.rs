//! Listeners: public HTTPS, public plain HTTP and admin HTTPS, with their
//! limits, TLS, metrics and graceful shutdown.

pub mod listener;
pub mod metrics;
pub mod public;
pub mod revocation;
pub mod tls;
pub mod trust_bundle;

pub use tls::{rustls_config, server_config};
