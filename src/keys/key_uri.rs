//! Key URIs, as the PKI world writes them:
//! `file:/path/key.pem`, `pkcs11:token=ca;object=root` (RFC 7512) and
//! `awskms:alias/tessera-root` (a key id, ARN or alias), and Tessera's own
//! `sealed:issuing-2`: a software key sealed in the database (a CA
//! rotation's successor of a software key, which every node must open).
//!
//! A PIN is never taken from a URI and never printed: every message that
//! quotes a URI as it was written quotes [`redact_pins`] text.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUri {
    File(PathBuf),
    Pkcs11(Pkcs11Uri),
    AwsKms(String),
    /// A software key kept sealed in the database under this name, opened
    /// through the key-encryption key (`crate::secrets`), not by `keys`.
    Sealed(String),
    /// A key that lives only in this process's memory (delegated OCSP
    /// signers); never parsed from config.
    Memory(String),
}

/// The attributes of an RFC 7512 URI that select a key. The PIN never lives
/// here: it comes from the configured PIN source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub object: Option<String>,
    /// CKA_ID, raw bytes (written percent-encoded in the URI).
    pub id: Option<Vec<u8>>,
}

/// Why a key URI was refused. The URI it quotes is [`redact_pins`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyUriError {
    #[error("key URI {0:?} has no known scheme (use file:, pkcs11:, awskms: or sealed:)")]
    UnknownScheme(String),
    #[error("key URI {uri:?}: {reason}")]
    Invalid { uri: String, reason: String },
}

impl FromStr for KeyUri {
    type Err = KeyUriError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| KeyUriError::Invalid {
            uri: redact_pins(s).into_owned(),
            reason: redact_pins(reason).into_owned(),
        };
        if let Some(rest) = s.strip_prefix("file:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if path.is_empty() {
                return Err(invalid("a file: URI needs a path"));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("pkcs11:") {
            return parse_pkcs11(rest).map(Self::Pkcs11).map_err(|r| invalid(&r));
        }
        if let Some(rest) = s.strip_prefix("awskms:") {
            let id = rest.strip_prefix("key-id=").unwrap_or(rest);
            if id.is_empty() {
                return Err(invalid("an awskms: URI needs a key id, ARN or alias"));
            }
            return Ok(Self::AwsKms(id.to_string()));
        }
        if let Some(name) = s.strip_prefix("sealed:") {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)) {
                return Err(invalid("a sealed: URI needs a name of letters, digits, '-', '.' and '_'"));
            }
            return Ok(Self::Sealed(name.to_owned()));
        }
        Err(KeyUriError::UnknownScheme(redact_pins(s).into_owned()))
    }
}

/// Attributes whose value is a PIN or says where one is kept (RFC 7512
/// §2.4); their values are never shown.
const SECRET_ATTRIBUTES: [&str; 2] = ["pin-value", "pin-source"];

/// `text` as it may be shown in a message or a log: the value of every
/// `pin-value` or `pin-source` attribute (in any case, in the path or the
/// query) replaced by `[redacted]`. Other text is returned as it is.
pub fn redact_pins(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let mut out = String::new();
    let mut copied = 0;
    let mut at = 0;
    while let Some((start, name)) = SECRET_ATTRIBUTES
        .iter()
        .filter_map(|name| lower[at..].find(name).map(|i| (at + i, name)))
        .min_by_key(|(i, _)| *i)
    {
        let value_start = start + name.len();
        let value_end = lower[value_start..].find([';', '&', '?', '"']).map_or(text.len(), |i| value_start + i);
        out.push_str(&text[copied..value_start]);
        out.push_str("=[redacted]");
        copied = value_end;
        at = value_end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

fn parse_pkcs11(rest: &str) -> Result<Pkcs11Uri, String> {
    // Path attributes come before '?'; query attributes (pin-source, module-path)
    // are not ours to take: secrets and modules are configured, not named here.
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if query.split('&').any(|a| a.starts_with("pin-value")) {
        return Err("pin-value is not accepted in a key URI; configure a PIN file or environment variable".into());
    }
    let mut uri = Pkcs11Uri::default();
    for attr in path.split(';').filter(|a| !a.is_empty()) {
        let (name, value) = attr.split_once('=').ok_or_else(|| format!("attribute {attr:?} has no value"))?;
        let value = percent_decode(value)?;
        match name {
            "token" => uri.token = Some(utf8(value)?),
            "object" => uri.object = Some(utf8(value)?),
            "id" => uri.id = Some(value),
            "type"
            | "manufacturer"
            | "model"
            | "serial"
            | "library-description"
            | "library-manufacturer"
            | "library-version"
            | "slot-description"
            | "slot-id"
            | "slot-manufacturer" => {}
            other => return Err(format!("unknown attribute {other:?}")),
        }
    }
    if uri.object.is_none() && uri.id.is_none() {
        return Err("a pkcs11: URI needs object= or id=".into());
    }
    Ok(uri)
}

fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|_| "attribute is not UTF-8".to_string())
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| "truncated percent escape".to_string())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape".to_string())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Written back as `from_str` reads it, since a CA rotation stores its
/// successor's key URI in this form: a `file:` path that itself starts
/// with `//` keeps the `//` that parsing drops, an AWS KMS id that starts
/// with `key-id=` keeps the prefix, and PKCS#11 values are percent-encoded
/// (RFC 7512 §2.3).
impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => {
                let path = path.display().to_string();
                let authority = if path.starts_with("//") { "//" } else { "" };
                write!(f, "file:{authority}{path}")
            }
            Self::AwsKms(id) => {
                let prefix = if id.starts_with("key-id=") { "key-id=" } else { "" };
                write!(f, "awskms:{prefix}{id}")
            }
            Self::Sealed(name) => write!(f, "sealed:{name}"),
            Self::Memory(name) => write!(f, "memory:{name}"),
            Self::Pkcs11(p) => {
                write!(f, "pkcs11:")?;
                let mut parts = Vec::new();
                if let Some(t) = &p.token {
                    parts.push(format!("token={}", percent_encode(t.as_bytes())));
                }
                if let Some(o) = &p.object {
                    parts.push(format!("object={}", percent_encode(o.as_bytes())));
                }
                if let Some(id) = &p.id {
                    let enc: String = id.iter().map(|b| format!("%{b:02x}")).collect();
                    parts.push(format!("id={enc}"));
                }
                f.write_str(&parts.join(";"))
            }
        }
    }
}

/// Escapes all but the characters an RFC 7512 path attribute value may
/// hold as they are (`p11-pchar` without `%`).
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,=&".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "file:/var/lib/tessera/root.pem".parse::<KeyUri>(),
            Ok(KeyUri::File("/var/lib/tessera/root.pem".into()))
        );
        let KeyUri::Pkcs11(p) = "pkcs11:token=ca;object=root%20key;id=%01%02".parse::<KeyUri>().expect("valid") else {
            panic!("not pkcs11")
        };
        assert_eq!(p.token.as_deref(), Some("ca"));
        assert_eq!(p.object.as_deref(), Some("root key"));
        assert_eq!(p.id, Some(vec![1, 2]));
        assert_eq!("awskms:alias/tessera-root".parse::<KeyUri>(), Ok(KeyUri::AwsKms("alias/tessera-root".into())));
    }

    #[test]
    fn refuses_pins_and_unknown_schemes() {
        assert!("pkcs11:object=root?pin-value=1234".parse::<KeyUri>().is_err());
        assert!(matches!("vault:foo".parse::<KeyUri>(), Err(KeyUriError::UnknownScheme(_))));
        assert!("pkcs11:token=ca".parse::<KeyUri>().is_err());
    }

    #[test]
    fn a_pin_is_never_shown() {
        let pin = "4711-secret";
        for text in [
            format!("pkcs11:object=root?pin-value={pin}"),
            format!("pkcs11:object=root?module-name=softhsm2&PIN-VALUE={pin}&x=1"),
            format!("pkcs11:object=root;pin-value={pin}"),
            format!("pkcs11:token=ca;pin-value:{pin}"),
            format!("pkcs11x:object=root?pin-value={pin}"),
            format!("pkcs11:object=root?pin-source=file:/run/{pin}"),
        ] {
            let shown = redact_pins(&text);
            assert!(!shown.contains(pin) && shown.contains("[redacted]"), "{shown}");
            if let Err(e) = text.parse::<KeyUri>() {
                for message in [e.to_string(), format!("{e:?}")] {
                    assert!(!message.contains(pin), "{message}");
                }
            }
        }
        assert_eq!(redact_pins("pkcs11:object=root?pin-value=1&x=2"), "pkcs11:object=root?pin-value=[redacted]&x=2");
        assert!(matches!(redact_pins("pkcs11:token=ca;object=root"), Cow::Borrowed(_)));
    }

    #[test]
    fn display_round_trips() {
        for s in ["file:/k.pem", "pkcs11:token=ca;object=root;id=%0a", "awskms:arn:aws:kms:eu-west-1:1:key/x"] {
            let uri: KeyUri = s.parse().expect("valid");
            assert_eq!(uri.to_string().parse::<KeyUri>(), Ok(uri));
        }
    }

    /// Found by fuzzing (fuzz/ key_uri): a value with an escaped `%` was
    /// written back unescaped. Reading the same code: so were `;` and `?`,
    /// and a `file:` path starting with `//` and an AWS KMS id starting
    /// with `key-id=` lost their prefix. Each named another key, or none.
    #[test]
    fn display_round_trips_escaped_values_and_prefixes() {
        for s in [
            "pkcs11:token=ca;object=root%25keawskms:1%02",
            "pkcs11:token=a%3Bb;object=c%25d%3Fe",
            "pkcs11:object=root%20key%0A",
            "file:////srv/k.pem",
            "awskms:key-id=key-id=x",
        ] {
            let uri: KeyUri = s.parse().expect("valid");
            assert_eq!(uri.to_string().parse::<KeyUri>(), Ok(uri), "{s}");
        }
        assert_eq!(
            "pkcs11:object=root%20key".parse::<KeyUri>().expect("valid").to_string(),
            "pkcs11:object=root%20key"
        );
    }
}
