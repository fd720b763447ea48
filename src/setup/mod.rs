//! Bringing a CA into being and loading it: the dev-mode bootstrap,
//! `tessera init`, Tessera's own TLS certificate and the admin token file.
//! Both ways of making a CA make its key-encryption key file when the
//! config names one that does not exist yet (`secrets::ensure_kek_file`).

mod dev;
mod hierarchy;
mod init;
mod load;
mod tls;
mod token_file;

pub use dev::bootstrap_dev;
pub use hierarchy::{
    IssuingParent, ca_subject, certify_issuing, create_hierarchy, new_authority, subject_key_identifier,
};
pub use init::init_hierarchy;
pub use load::{load_signing_authority, open_authority};
pub use tls::{ServerTls, ensure_server_tls};
pub use token_file::write_admin_token;

use crate::clock::SharedClock;
use crate::config::ConfigError;
use crate::issuance::{IssueError, SigningError};
use crate::keys::SignerError;
use crate::secrets::SecretsError;
use crate::storage::{NewAuditEvent, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Issue(#[from] IssueError),
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
}

impl SetupError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io { path: path.display().to_string(), source }
    }
}

/// An audit event for something Tessera did itself.
fn system_event(clock: &SharedClock, action: &'static str, target: &str) -> NewAuditEvent {
    NewAuditEvent {
        at: clock.unix(),
        actor: "tessera".into(),
        action,
        target: target.into(),
        detail: serde_json::json!({}),
    }
}
