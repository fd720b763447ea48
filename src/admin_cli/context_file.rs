//! The contexts file: named admin API targets (server URL, CA bundle, where the
//! token is), kept in `$XDG_CONFIG_HOME/tessera/contexts.toml` (or
//! `~/.config/tessera/contexts.toml`) like kubectl's contexts.
//!
//! The file names where the token is (a file or an environment variable),
//! never the token itself, so no secret is ever a flag value seen in `ps`
//! or a line copied into the file; the file is still written 0600, as it
//! says where the secrets are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::error::{CliError, file_error};
use super::files;

const FILE_NAME: &str = "contexts.toml";

/// Where a context's token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// A file holding the token (e.g. the `admin-token` Tessera writes).
    TokenFile(PathBuf),
    /// An environment variable holding the token.
    TokenEnv(String),
}

impl TokenSource {
    /// `file:/path` or `env:NAME`, for listings.
    pub fn describe(&self) -> String {
        match self {
            Self::TokenFile(path) => format!("file:{}", path.display()),
            Self::TokenEnv(name) => format!("env:{name}"),
        }
    }

    fn read(&self) -> Result<SecretString, CliError> {
        let text = match self {
            Self::TokenFile(path) => {
                warn_if_shared(path);
                std::fs::read_to_string(path).map_err(|e| file_error(path, e))?
            }
            Self::TokenEnv(name) => std::env::var(name)
                .map_err(|_| CliError::Usage(format!("the context's token variable {name} is not set")))?,
        };
        let token = text.trim();
        if token.is_empty() {
            return Err(CliError::Usage(format!("the token in {} is empty", self.describe())));
        }
        Ok(SecretString::from(token.to_owned()))
    }
}

/// Says so on stderr when others than the owner may read a token file, as
/// ssh does for keys: anyone who can read it acts with its scope.
fn warn_if_shared(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "tessera admin: warning: token file {} can be read by others than its owner (chmod 600)",
            path.display()
        );
    }
}

/// One named target as the file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Context {
    pub server: String,
    pub ca_bundle: PathBuf,
    #[serde(flatten)]
    pub token: TokenSource,
}

/// The whole contexts file.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contexts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub contexts: BTreeMap<String, Context>,
}

/// A context made ready to use: its URL checked and its token read.
pub struct Target {
    pub server: url::Url,
    pub ca_bundle: PathBuf,
    pub token: SecretString,
}

/// The contexts file: `$XDG_CONFIG_HOME/tessera/contexts.toml`, else
/// `$HOME/.config/tessera/contexts.toml`.
pub fn default_path() -> Result<PathBuf, CliError> {
    let absolute = |var: &str| std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_CONFIG_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".config")))
        .map(|dir| dir.join("tessera").join(FILE_NAME))
        .ok_or_else(|| CliError::Usage("neither XDG_CONFIG_HOME nor HOME is set: no place for contexts".into()))
}

/// Checks a server URL: HTTPS (a token never crosses the network in clear
/// text), and no credentials, query or fragment.
pub fn parse_server(text: &str) -> Result<url::Url, CliError> {
    let bad = |why: &str| CliError::Usage(format!("server {text:?} {why}"));
    let url = url::Url::parse(text).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    if url.scheme() != "https" {
        return Err(bad("must be an https:// URL: the token would cross the network in clear text"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not carry credentials; the token comes from --token-file or --token-env"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    Ok(url)
}

/// Context names are what people type: letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), CliError> {
    let is_valid = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if is_valid {
        Ok(())
    } else {
        Err(CliError::Usage(format!("context name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'")))
    }
}

impl Contexts {
    /// Reads the file; a missing file is an empty set of contexts.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| file_error(path, e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(file_error(path, e)),
        }
    }

    /// Writes the file (0600, its directory 0700 when made here), replacing
    /// it in one rename.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let text = toml::to_string(self).map_err(|e| file_error(path, e))?;
        if let Some(dir) = path.parent() {
            files::create_private_dir(dir)?;
        }
        files::replace(path, text.as_bytes(), files::PRIVATE)
    }

    /// The context to use: the one named (by `--context` or
    /// `TESSERA_CONTEXT`), else the current one.
    pub fn select(&self, named: Option<&str>) -> Result<(&str, &Context), CliError> {
        let name = named.or(self.current.as_deref()).ok_or_else(|| {
            CliError::Usage(
                "no context chosen: add one with `tessera admin context add`, or pick one with --context".into(),
            )
        })?;
        self.contexts
            .get_key_value(name)
            .map(|(name, context)| (name.as_str(), context))
            .ok_or_else(|| CliError::Usage(format!("no context named {name:?} (see `tessera admin context list`)")))
    }
}

impl Context {
    /// The context ready to use: URL checked, token read.
    pub fn target(&self) -> Result<Target, CliError> {
        Ok(Target { server: parse_server(&self.server)?, ca_bundle: self.ca_bundle.clone(), token: self.token.read()? })
    }
}

/// Turns a path given on the command line into the absolute path the file
/// keeps, so a context works from any directory.
pub fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|e| file_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_round_trips_and_names_the_token_source_not_the_token() {
        let mut contexts = Contexts::default();
        contexts.contexts.insert(
            "dev".into(),
            Context {
                server: "https://localhost:9443".into(),
                ca_bundle: "/ca/root.pem".into(),
                token: TokenSource::TokenFile("/ca/admin-token".into()),
            },
        );
        contexts.contexts.insert(
            "ci".into(),
            Context {
                server: "https://ca.internal:9443".into(),
                ca_bundle: "/ca/root.pem".into(),
                token: TokenSource::TokenEnv("TESSERA_TOKEN".into()),
            },
        );
        contexts.current = Some("dev".into());
        let text = toml::to_string(&contexts).expect("serializes");
        assert!(text.contains("token_file = \"/ca/admin-token\""), "{text}");
        assert!(text.contains("token_env = \"TESSERA_TOKEN\""), "{text}");
        let back: Contexts = toml::from_str(&text).expect("parses");
        assert_eq!(back.contexts, contexts.contexts);
        assert_eq!(back.current.as_deref(), Some("dev"));
    }

    #[test]
    fn a_server_must_be_https_without_credentials() {
        assert!(parse_server("https://ca.internal:9443").is_ok());
        assert!(parse_server("https://ca.internal/tessera/").is_ok());
        for bad in ["http://ca.internal:9443", "https://u:p@ca.internal", "https://ca?x=1", "ca.internal:9443"] {
            assert!(matches!(parse_server(bad), Err(CliError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_named_context_wins_over_the_current_one() {
        let context = |server: &str| Context {
            server: server.into(),
            ca_bundle: "/r.pem".into(),
            token: TokenSource::TokenEnv("T".into()),
        };
        let mut contexts = Contexts { current: Some("a".into()), ..Default::default() };
        contexts.contexts.insert("a".into(), context("https://a"));
        contexts.contexts.insert("b".into(), context("https://b"));
        assert_eq!(contexts.select(None).map(|(n, _)| n).ok(), Some("a"));
        assert_eq!(contexts.select(Some("b")).map(|(n, _)| n).ok(), Some("b"));
        assert!(matches!(contexts.select(Some("c")), Err(CliError::Usage(_))));
        assert!(matches!(Contexts::default().select(None), Err(CliError::Usage(_))));
    }
}
