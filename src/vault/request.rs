//! The body of a `sign` or `issue` request, read as Vault reads it: any
//! content type, strings where numbers or booleans could be (cert-manager
//! sends every field as a string), unknown fields ignored with a warning.

use serde_json::{Map, Value};
use time::Duration;

use super::error::VaultError;
use crate::authority::{MAX_TTL, parse_ttl};
use crate::issuance::{CheckedCsr, Identifier};

/// The fields cert-manager and hvac send.
const KNOWN: &[&str] = &[
    "csr",
    "common_name",
    "alt_names",
    "ip_sans",
    "uri_sans",
    "ttl",
    "exclude_cn_from_sans",
    "format",
    "private_key_format",
];

/// How the certificate is written back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pem,
    /// The certificate followed by its issuing CA, in `certificate`.
    PemBundle,
    /// Base64 DER.
    Der,
}

#[derive(Debug)]
pub struct Fields {
    pub csr: Option<String>,
    pub common_name: Option<String>,
    pub alt_names: Vec<String>,
    pub ip_sans: Vec<String>,
    pub uri_sans: Vec<String>,
    pub ttl: Option<Duration>,
    pub format: Format,
    /// Fields this API does not know, named in the answer's warnings.
    pub ignored: Vec<String>,
}

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Self, VaultError> {
        let object: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            serde_json::from_slice(body)
                .map_err(|e| VaultError::BadRequest(format!("failed to parse JSON input: {e}")))?
        };
        let text = |name: &str| -> Result<Option<String>, VaultError> {
            match object.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.trim().is_empty())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(Value::Bool(b)) => Ok(Some(b.to_string())),
                Some(_) => Err(VaultError::BadRequest(format!("{name}: expected a string"))),
            }
        };
        let list = |name: &str| -> Result<Vec<String>, VaultError> {
            match object.get(name) {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.into_iter().filter(|s| !s.trim().is_empty()).collect())
                    .ok_or_else(|| VaultError::BadRequest(format!("{name}: expected strings"))),
                _ => Ok(text(name)?
                    .map(|s| s.split(',').map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect())
                    .unwrap_or_default()),
            }
        };
        let ttl = text("ttl")?.map(|t| vault_duration(&t)).transpose()?;
        // Read and checked, but it changes nothing: Tessera's profile always
        // lists a DNS or IP common name among the SANs, where RFC 6125
        // clients look for it.
        match text("exclude_cn_from_sans")?.as_deref() {
            None | Some("false" | "true") => {}
            Some(other) => {
                return Err(VaultError::BadRequest(format!("exclude_cn_from_sans: {other:?} is not true or false")));
            }
        };
        let format = match text("format")?.as_deref() {
            None | Some("pem") => Format::Pem,
            Some("pem_bundle") => Format::PemBundle,
            Some("der") => Format::Der,
            Some(other) => {
                return Err(VaultError::BadRequest(format!("format: {other:?} is not pem, pem_bundle or der")));
            }
        };
        match text("private_key_format")?.as_deref() {
            None | Some("der" | "pkcs8") => {}
            Some(other) => return Err(VaultError::BadRequest(format!("private_key_format: {other:?} is not pkcs8"))),
        }
        let ignored = object.keys().filter(|k| !KNOWN.contains(&k.as_str())).cloned().collect();
        Ok(Self {
            csr: text("csr")?,
            common_name: text("common_name")?,
            alt_names: list("alt_names")?,
            ip_sans: list("ip_sans")?,
            uri_sans: list("uri_sans")?,
            ttl,
            format,
            ignored,
        })
    }

    /// The names the fields ask for: `alt_names` (DNS names, or IP
    /// addresses as Vault also takes there), `ip_sans`, `uri_sans`, and the
    /// common name when it is a DNS name or IP address. Sorted, unique.
    pub fn names(&self) -> Result<Vec<Identifier>, VaultError> {
        let bad = |field: &str, e: &dyn std::fmt::Display| VaultError::BadRequest(format!("{field}: {e}"));
        let mut names = Vec::new();
        for name in &self.alt_names {
            names.push(Identifier::guess(name).map_err(|e| bad("alt_names", &e))?);
        }
        for ip in &self.ip_sans {
            names.push(Identifier::ip(ip).map_err(|e| bad("ip_sans", &e))?);
        }
        for uri in &self.uri_sans {
            names.push(Identifier::uri(uri).map_err(|e| bad("uri_sans", &e))?);
        }
        if let Some(cn) = &self.common_name
            && let Ok(id @ (Identifier::Dns(_) | Identifier::Ip(_))) = Identifier::guess(cn)
        {
            names.push(id);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// The certificate carries the CSR's names; every name the fields give
    /// must be among them, and a common name given must be the CSR's, so
    /// the requester never gets less, or other, than it asked for.
    pub fn check_against(&self, csr: &CheckedCsr) -> Result<(), VaultError> {
        if let Some(cn) = &self.common_name
            && csr.common_name() != Some(cn.as_str())
            && !csr.subject_alt_names().iter().any(|id| id.value() == *cn)
        {
            return Err(VaultError::BadRequest(format!(
                "common_name {cn:?} is not the CSR's common name or one of its names"
            )));
        }
        let in_csr = csr.requested_names()?;
        if let Some(missing) = self.names()?.into_iter().find(|n| !in_csr.contains(n)) {
            return Err(VaultError::BadRequest(format!(
                "{missing} is asked for in the request fields but not in the CSR; the certificate carries the CSR's names"
            )));
        }
        Ok(())
    }
}

/// A Vault duration: Go's `2160h0m0s`, Tessera's `90d`, or whole seconds.
fn vault_duration(text: &str) -> Result<Duration, VaultError> {
    let text = text.trim();
    let seconds = text.parse::<i64>().ok().filter(|s| *s > 0 && *s <= MAX_TTL.whole_seconds());
    seconds
        .map(Duration::seconds)
        .or_else(|| parse_ttl(text))
        .ok_or_else(|| VaultError::BadRequest(format!("ttl {text:?} is not a duration such as 1h0m0s, 24h or 3600")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_cert_managers_strings() {
        let body = br#"{"common_name":"a.test","alt_names":"a.test,b.test","ip_sans":"","uri_sans":"",
            "ttl":"2160h0m0s","csr":"x","exclude_cn_from_sans":"true","extra":"1"}"#;
        let fields = Fields::parse(body).unwrap();
        assert_eq!(fields.alt_names, ["a.test", "b.test"]);
        assert!(fields.ip_sans.is_empty());
        assert_eq!(fields.ttl, Some(Duration::hours(2160)));
        assert_eq!(fields.ignored, ["extra"]);
        assert_eq!(fields.names().unwrap().len(), 2);
    }

    #[test]
    fn durations_as_vault_takes_them() {
        assert_eq!(vault_duration("1h0m0s").unwrap(), Duration::hours(1));
        assert_eq!(vault_duration("3600").unwrap(), Duration::hours(1));
        assert_eq!(vault_duration("90d").unwrap(), Duration::days(90));
        assert!(vault_duration("soon").is_err());
        assert!(vault_duration("0").is_err());
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(Fields::parse(b"{").is_err());
        assert!(Fields::parse(br#"{"format":"p12"}"#).is_err());
        assert!(Fields::parse(br#"{"exclude_cn_from_sans":"maybe"}"#).is_err());
        assert!(Fields::parse(b"").unwrap().csr.is_none());
    }
}
