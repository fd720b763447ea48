//! Tessera: an internal certificate authority for workload mTLS.
//! See ARCHITECTURE.md for the map of the code.

pub mod acme;
pub mod admin;
pub mod admin_cli;
pub mod authority;
pub mod cli;
pub mod clock;
pub mod config;
pub mod http;
pub mod issuance;
pub mod keys;
pub mod lifecycle;
pub mod metrics;
pub mod policy_issuance;
pub mod private_files;
pub mod revocation;
pub mod rotation;
pub mod secrets;
pub mod setup;
pub mod storage;
pub mod token;
pub mod validation;
pub mod vault;

/// `tessera agent` runs the agent crate; its types keep their old paths.
pub use tessera_agent as agent;
