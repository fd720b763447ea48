//! What Tessera's server and its workload agent (`tessera-agent`) share:
//! the names a certificate carries ([`Identifier`], with URI and SPIFFE ID
//! parsing) and time as an injected [`clock::Clock`].
//!
//! Architecture invariant: this crate depends on no storage, key custody,
//! HTTP or ACME crate, so the agent, which depends on it, carries none.

pub mod clock;
mod dns_name;
pub mod identifier;
pub mod uri;

pub use identifier::{Identifier, IdentifierError};
pub use uri::{UriError, UriName};
