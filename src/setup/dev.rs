//! Dev mode: on first start, a complete CA with software keys, a `default`
//! policy and an admin token, so `tessera serve` works with nothing else.

use super::{SetupError, create_hierarchy, system_event, write_admin_token};
use crate::authority::{Policy, PolicyRules};
use crate::clock::SharedClock;
use crate::config::{AuthorityConfig, Config, Mode};
use crate::keys::software::SoftwareSigner;
use crate::keys::{KeyUri, redact_pins};
use crate::secrets::ensure_kek_file;
use crate::storage::Db;
use crate::token::create_admin_token;

/// The name of the policy dev mode creates.
pub const DEV_POLICY: &str = "default";

/// Creates what is missing: the key-encryption key file, the hierarchy
/// (with its `default` policy) and the admin token file. A restart finds
/// everything and changes nothing.
/// A database `tessera init` made is refused: dev mode would write a new
/// admin token for a production CA.
pub async fn bootstrap_dev(config: &Config, db: &Db, clock: &SharedClock) -> Result<(), SetupError> {
    if db.catalog().has_production_hierarchy().await? {
        return Err(SetupError::Refused(
            "this database holds a production CA hierarchy (made by tessera init); serve it with \
             mode = \"production\" (TESSERA_MODE=production): dev mode never runs on it"
                .into(),
        ));
    }
    ensure_kek_file(&config.kek_sources()?[0])?;
    if db.catalog().list_authorities().await?.is_empty() {
        tracing::info!(data_dir = %config.data_dir.display(), "dev mode: creating a CA with software keys");
        let root = dev_signer(config, &config.hierarchy.root)?;
        let issuing = dev_signer(config, &config.hierarchy.issuing)?;
        create_hierarchy(db, config, clock, Mode::Dev, &root, &issuing).await?;
        let rules = dev_policy_rules();
        let policy = Policy::new(DEV_POLICY, rules).map_err(|e| SetupError::Refused(e.to_string()))?;
        let text = serde_json::to_string(policy.rules()).map_err(|e| SetupError::Refused(e.to_string()))?;
        db.admin()
            .insert_policy(DEV_POLICY, &text, clock.unix(), &system_event(clock, "policy.create", DEV_POLICY))
            .await?;
    }
    let token_path = config.data_dir.join("admin-token");
    if !token_path.exists() {
        let secret = create_admin_token(&db.admin(), "admin (dev)", "tessera", clock.unix()).await?;
        write_admin_token(&token_path, &secret)?;
        tracing::info!(path = %token_path.display(), "wrote an admin token");
    }
    Ok(())
}

/// Loads the configured software key, creating it (unencrypted) if absent.
fn dev_signer(config: &Config, authority: &AuthorityConfig) -> Result<SoftwareSigner, SetupError> {
    let uri = config.resolve_key_uri(&authority.key_uri)?;
    let KeyUri::File(path) = &uri else {
        return Err(SetupError::Refused(format!(
            "dev mode makes software keys only; {} is not a file: key (use tessera init)",
            redact_pins(&authority.key_uri)
        )));
    };
    let algorithm = authority.algorithm;
    let passphrase = config.keys.file.passphrase()?;
    Ok(SoftwareSigner::load_or_generate(uri.clone(), path, algorithm, passphrase.as_ref())?)
}

/// Names a developer's machine uses: loopback, `.test`, `.internal`, `.local`.
pub fn dev_policy_rules() -> PolicyRules {
    PolicyRules {
        dns: ["localhost", "*.localhost", "*.test", "*.internal", "*.local"].map(String::from).to_vec(),
        ip_ranges: ["127.0.0.0/8", "::1/128"].map(String::from).to_vec(),
        uris: vec!["spiffe://tessera.test/*".into()],
        key_types: vec![],
        max_ttl: "24h".into(),
        default_ttl: "24h".into(),
        require_low_s: false,
    }
}
