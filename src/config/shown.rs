//! The configuration as `tessera config show` prints it. Values that may
//! carry a credential (a database password, a webhook URL's userinfo or
//! query, a PIN source in a key URI) are redacted; references to secrets
//! (file paths, variable names, KMS key ids) stay, since they are what an
//! operator checks.

use super::{Config, ConfigError};

/// What stands in for a redacted part.
const REDACTED: &str = "redacted";

impl Config {
    /// The configuration as TOML, every credential redacted.
    pub fn to_redacted_toml(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.redacted()).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    fn redacted(&self) -> Config {
        let mut shown = self.clone();
        shown.database_url = self.database_url.as_deref().map(crate::storage::redact_password);
        shown.public_base_url = self.public_base_url.as_deref().map(redact_url);
        shown.keys.awskms.endpoint = self.keys.awskms.endpoint.as_deref().map(redact_url);
        for authority in [&mut shown.hierarchy.root, &mut shown.hierarchy.issuing] {
            authority.key_uri = crate::keys::redact_pins(&authority.key_uri).into_owned();
        }
        for hook in &mut shown.lifecycle.webhooks {
            hook.url = redact_url(&hook.url);
        }
        shown
    }
}

/// `text` with its userinfo, query and fragment replaced: each may hold a
/// token. Text that is not a URL is replaced whole.
fn redact_url(text: &str) -> String {
    let Ok(mut url) = url::Url::parse(text) else {
        return format!("[{REDACTED}]");
    };
    if !url.username().is_empty() {
        let _ = url.set_username(REDACTED);
    }
    if url.password().is_some() {
        let _ = url.set_password(Some(REDACTED));
    }
    if url.query().is_some() {
        url.set_query(Some(REDACTED));
    }
    if url.fragment().is_some() {
        url.set_fragment(Some(REDACTED));
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_keeps_its_address_and_loses_its_credentials() {
        let shown = redact_url("https://bot:hook-pass@hooks.internal:8443/x?token=hook-token#frag-secret");
        assert_eq!(shown, "https://redacted:redacted@hooks.internal:8443/x?redacted#redacted");
        assert_eq!(redact_url("http://ca.internal/"), "http://ca.internal/");
        assert_eq!(redact_url("not a url, maybe a secret"), "[redacted]");
    }
}
