//! The ACME account: its key is kept in a file, so every renewal (and every
//! restart) uses the same account and the EAB key is bound only once
//! (RFC 8555 §7.3.4). The first run creates the account with EAB and saves
//! the key; later runs find the account by its key (`onlyReturnExisting`).

use std::path::Path;

use instant_acme::{Account, ExternalAccountKey, Key, NewAccount};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

use super::args::AgentSettings;
use super::atomic_file::{PRIVATE, StagedFile};
use super::error::AgentError;
use super::http_client::AcmeHttp;

const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// Finds the account for the saved key, or creates one and saves its key.
pub async fn open_account(settings: &AgentSettings, http: &AcmeHttp) -> Result<Account, AgentError> {
    let path = settings.account_key.as_path();
    let directory = settings.directory.to_string();
    if let Some(pkcs8) = read_key(path)? {
        let key = Key::from_pkcs8_der(PrivatePkcs8KeyDer::from(pkcs8.clone()))
            .map_err(|e| AgentError::AccountKey { path: path.to_path_buf(), reason: e.to_string() })?;
        let builder = Account::builder_with_http(Box::new(http.clone()));
        match builder.from_key((key, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8))), directory.clone()).await {
            Ok((account, _)) => {
                tracing::debug!(account = account.id(), "using the saved ACME account");
                return Ok(account);
            }
            Err(instant_acme::Error::Api(problem)) if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) => {
                tracing::warn!(
                    account_key = %path.display(),
                    "the CA does not know the saved account key; creating a new account"
                );
            }
            Err(source @ instant_acme::Error::Api(_)) => return Err(AgentError::account(source)),
            Err(source) => return Err(AgentError::Directory { url: directory, source }),
        }
    }
    create_account(settings, http, path, directory).await
}

async fn create_account(
    settings: &AgentSettings,
    http: &AcmeHttp,
    path: &Path,
    directory: String,
) -> Result<Account, AgentError> {
    let eab = match &settings.eab {
        Some(eab) => Some(ExternalAccountKey::new(eab.kid.clone(), &eab.hmac_bytes().map_err(AgentError::EabHmac)?)),
        None => None,
    };
    let builder = Account::builder_with_http(Box::new(http.clone()));
    let new_account = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, credentials) =
        builder.create(&new_account, directory.clone(), eab.as_ref()).await.map_err(|source| match source {
            _ if settings.eab.is_none() && is_problem(&source, "externalAccountRequired") => AgentError::EabMissing,
            instant_acme::Error::Api(_) => AgentError::account(source),
            _ => AgentError::Directory { url: directory, source },
        })?;
    let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", credentials.private_key().secret_pkcs8_der().to_vec()));
    StagedFile::write(path, pem.as_bytes(), PRIVATE)?.commit()?;
    tracing::info!(account = account.id(), account_key = %path.display(), "created the ACME account");
    Ok(account)
}

/// The PKCS#8 DER in the account key file, or None when there is no file.
fn read_key(path: &Path) -> Result<Option<Vec<u8>>, AgentError> {
    let fail = |reason: String| AgentError::AccountKey { path: path.to_path_buf(), reason };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(fail(e.to_string())),
    };
    let block = pem::parse(text).map_err(|e| fail(format!("not PEM: {e}")))?;
    if block.tag() != "PRIVATE KEY" {
        return Err(fail(format!("expected a PKCS#8 PRIVATE KEY, found {}", block.tag())));
    }
    Ok(Some(block.into_contents()))
}

/// Whether an ACME error is the problem `urn:ietf:params:acme:error:{kind}`.
pub fn is_problem(error: &instant_acme::Error, kind: &str) -> bool {
    matches!(error, instant_acme::Error::Api(p)
        if p.r#type.as_deref().and_then(|t| t.strip_prefix("urn:ietf:params:acme:error:")) == Some(kind))
}
