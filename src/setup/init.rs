//! `tessera init`: a production hierarchy from the key URIs in the config.

use std::path::PathBuf;
use std::sync::Arc;

use super::{SetupError, create_hierarchy, write_admin_token};
use crate::clock::SharedClock;
use crate::config::{AuthorityConfig, Config, Mode};
use crate::keys::{Signer, open_or_create_signer};
use crate::private_files::create_private_dir;
use crate::secrets::{Sealer, ensure_kek_file};
use crate::storage::Db;
use crate::token::create_admin_token;

/// Creates the root and issuing CA and a first admin token; refuses when
/// the database already holds a hierarchy. The key-encryption key is
/// checked (and a missing KEK file made) before any CA key: a CA that
/// cannot seal its secrets would not start. Returns the admin token path.
pub async fn init_hierarchy(config: &Config, db: &Db, clock: &SharedClock) -> Result<PathBuf, SetupError> {
    if !db.catalog().list_authorities().await?.is_empty() {
        return Err(SetupError::Refused(
            "this database already holds a CA hierarchy; tessera init never overwrites one".into(),
        ));
    }
    let kek_sources = config.kek_sources()?;
    ensure_kek_file(&kek_sources[0])?;
    Sealer::load(&kek_sources, &config.keys.awskms, db.secrets(), clock.clone()).await?;
    if config.keys.file.passphrase_env.is_none() && config.keys.file.passphrase_file.is_none() {
        tracing::warn!("no keys.file passphrase configured: new file: keys are written unencrypted");
    }
    let root = signer_for(config, &config.hierarchy.root).await?;
    let issuing = signer_for(config, &config.hierarchy.issuing).await?;
    create_hierarchy(db, config, clock, Mode::Production, root.as_ref(), issuing.as_ref()).await?;

    create_private_dir(&config.data_dir).map_err(SetupError::io(&config.data_dir))?;
    let token_path = config.data_dir.join("admin-token");
    let secret = create_admin_token(&db.admin(), "admin (init)", "tessera", clock.unix()).await?;
    write_admin_token(&token_path, &secret)?;
    Ok(token_path)
}

/// The authority's key, created in its custodian when it does not exist yet.
async fn signer_for(config: &Config, authority: &AuthorityConfig) -> Result<Arc<dyn Signer>, SetupError> {
    let uri = config.resolve_key_uri(&authority.key_uri)?;
    let algorithm = authority.algorithm;
    Ok(open_or_create_signer(&uri, algorithm, &config.keys).await?)
}
