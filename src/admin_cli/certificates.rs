//! `tessera admin certificates`: list, search, show, revoke, and issue from
//! a CSR or from a key made here that never leaves this machine.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use super::Shown;
use super::client::Client;
use super::confirm::{Yes, confirm};
use super::error::{CliError, file_error};
use super::files;
use super::output::{Body, Cell, Column, View, column, list};
use super::pages::{self, PageArgs};
use super::times;

const PATH: [&str; 3] = ["api", "v1", "certificates"];

const ROWS: &[Column] = &[
    column("serial", "/serial", Cell::Text),
    column("status", "/status", Cell::Text),
    column("names", "/identifiers", Cell::Identifiers),
    column("policy", "/policy", Cell::Text),
    column("authority", "/authority_id", Cell::Text),
    column("not after", "/not_after", Cell::Time),
];

const DETAIL: &[Column] = &[
    column("serial", "/serial", Cell::Text),
    column("status", "/status", Cell::Text),
    column("kind", "/kind", Cell::Text),
    column("subject", "/subject", Cell::Text),
    column("names", "/identifiers", Cell::Identifiers),
    column("policy", "/policy", Cell::Text),
    column("requester", "/requester", Cell::Text),
    column("key type", "/key_type", Cell::Text),
    column("authority", "/authority_id", Cell::Text),
    column("not before", "/not_before", Cell::Time),
    column("not after", "/not_after", Cell::Time),
    column("created", "/created_at", Cell::Time),
    column("revoked", "/revoked_at", Cell::Time),
    column("reason", "/revocation_reason", Cell::Text),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List certificates, soonest expiry first, with the API's filters.
    List(ListArgs),
    /// Every certificate naming an identifier, or matching the search
    /// flags (all pages).
    Search(SearchArgs),
    /// One certificate's details, or with --pem its chain (leaf first).
    Show {
        /// The serial number in hex.
        serial: String,
        /// Print the PEM chain: the leaf, then the issuing CA(s).
        #[arg(long)]
        pem: bool,
    },
    /// Revoke a certificate (asks first unless --yes).
    Revoke {
        /// The serial number in hex.
        serial: String,
        /// The RFC 5280 reason.
        #[arg(long, value_enum, default_value_t = Reason::Unspecified)]
        reason: Reason,
        #[command(flatten)]
        yes: Yes,
    },
    /// Issue a certificate under a policy, from a CSR or from a key made here.
    Issue(IssueArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Pending,
    Issued,
    Failed,
    Revoked,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Issued => "issued",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Workloads' certificates.
    Workload,
    /// Tessera's own: its TLS certificate, OCSP responder and CA certificates.
    Internal,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Workload => "workload",
            Self::Internal => "internal",
        }
    }
}

/// The API's search filters, shared by `list` and `search`.
#[derive(Debug, Args)]
pub struct SearchFlags {
    /// Only certificates naming a DNS name under this domain
    /// (.payments.internal or *.payments.internal).
    #[arg(long, value_name = "DOMAIN")]
    suffix: Option<String>,
    /// Only certificates naming a URI that begins with this
    /// (spiffe://td/ns/prod/).
    #[arg(long, value_name = "PREFIX")]
    spiffe_prefix: Option<String>,
    /// Only certificates with exactly this subject, as shown (CN=api.test).
    #[arg(long)]
    subject: Option<String>,
    /// Only certificates requested by this requester, as shown (token:ci, acme:7).
    #[arg(long)]
    requester: Option<String>,
    /// Only workloads' certificates, or only Tessera's own.
    #[arg(long, value_enum)]
    kind: Option<Kind>,
    /// Only certificates of the authority with this id.
    #[arg(long, value_name = "ID")]
    authority: Option<i64>,
}

impl SearchFlags {
    /// The query parameters of the flags given.
    fn query(self) -> Vec<(&'static str, String)> {
        [
            ("san_suffix", self.suffix),
            ("spiffe_prefix", self.spiffe_prefix),
            ("subject", self.subject),
            ("requester", self.requester),
            ("kind", self.kind.map(|k| k.as_str().to_owned())),
            ("authority", self.authority.map(|id| id.to_string())),
        ]
        .into_iter()
        .filter_map(|(key, value)| Some((key, value?)))
        .collect()
    }
}

/// The reasons a leaf may be revoked for, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum Reason {
    Unspecified,
    KeyCompromise,
    AffiliationChanged,
    Superseded,
    CessationOfOperation,
    PrivilegeWithdrawn,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only certificates in this state.
    #[arg(long, value_enum)]
    status: Option<Status>,
    #[command(flatten)]
    search: SearchFlags,
    /// Only certificates naming exactly this DNS name, IP address or URI.
    #[arg(long, value_name = "NAME")]
    san: Option<String>,
    /// Only certificates expiring before this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    expires_before: Option<String>,
    /// Only certificates expiring after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    expires_after: Option<String>,
    #[command(flatten)]
    paging: PageArgs,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// A DNS name, IP address or URI, matched exactly.
    name: Option<String>,
    #[command(flatten)]
    search: SearchFlags,
    /// Only those expiring within this long from now (e.g. 7d).
    #[arg(long, value_name = "DURATION")]
    expiring_within: Option<String>,
    /// Only certificates in this state.
    #[arg(long, value_enum)]
    status: Option<Status>,
}

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// The policy to issue under.
    #[arg(long)]
    policy: String,
    /// The lifetime wanted (e.g. 24h); default: the policy's.
    #[arg(long, value_name = "DURATION")]
    ttl: Option<String>,
    /// Sign this CSR (PEM or DER) instead of making a key here.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["names", "key"])]
    csr: Option<PathBuf>,
    /// A DNS name, IP address or URI for a key made here; repeat for more.
    #[arg(long = "name", value_name = "NAME", required_unless_present = "csr", requires = "key")]
    names: Vec<String>,
    /// Where the key made here is written (mode 0600, never overwritten,
    /// never sent: only its CSR is).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The type of the key made here.
    #[arg(long, value_enum, default_value_t = KeyType::EcdsaP256)]
    key_type: KeyType,
    /// Where the chain is written: the leaf, then the issuing CA(s).
    #[arg(long, value_name = "FILE")]
    chain: PathBuf,
    /// Also write the leaf alone here.
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
}

impl KeyType {
    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

pub async fn run(command: Command, client: &Client) -> Result<Shown, CliError> {
    match command {
        Command::List(args) => {
            let query = [
                ("status", args.status.map(|s| s.as_str().to_owned())),
                ("san", args.san),
                ("expires_before", args.expires_before),
                ("expires_after", args.expires_after),
            ];
            let mut query: Vec<_> = query.into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
            query.extend(args.search.query());
            Ok(Shown::new(pages::fetch(client, &PATH, query, &args.paging).await?, list(ROWS)))
        }
        Command::Search(args) => {
            let mut query: Vec<_> = args.name.map(|name| ("san", name)).into_iter().collect();
            query.extend(args.search.query());
            if query.is_empty() {
                return Err(CliError::Usage(
                    "search needs a name or a search flag (--suffix, --spiffe-prefix, --subject, --requester, \
                     --kind, --authority); `certificates list` lists everything"
                        .into(),
                ));
            }
            if let Some(within) = &args.expiring_within {
                query.push(("expires_before", times::from_now(times::parse_duration(within)?)?));
            }
            query.extend(args.status.map(|s| ("status", s.as_str().to_owned())));
            let every_page = PageArgs { limit: Some(1000), cursor: None, all: true };
            Ok(Shown::new(pages::fetch(client, &PATH, query, &every_page).await?, list(ROWS)))
        }
        Command::Show { serial, pem } => {
            let segments = [&PATH[..], &[serial.as_str()]].concat();
            if pem {
                return Ok(Shown::new(Body::Answer(client.get_pem(&segments).await?), View::Raw));
            }
            Ok(Shown::new(Body::Answer(client.get(&segments, &[]).await?), View::Object(DETAIL)))
        }
        Command::Revoke { serial, reason, yes } => {
            let reason = reason.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
            confirm(yes, &format!("Revoke certificate {serial} ({reason})"))?;
            let segments = [&PATH[..], &[serial.as_str(), "revoke"]].concat();
            let answer = client.post(&segments, Some(&json!({ "reason": reason }))).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
        }
        Command::Issue(args) => issue(args, client).await,
    }
}

/// What `POST /api/v1/certificates` answers that the CLI writes to files.
#[derive(Deserialize)]
struct Issued {
    serial: String,
    certificate: String,
    chain: String,
}

async fn issue(args: IssueArgs, client: &Client) -> Result<Shown, CliError> {
    for output in std::iter::once(&args.chain).chain(&args.cert) {
        files::ensure_directory(output)?;
    }
    let (csr, made_key) = match (&args.csr, &args.key) {
        (Some(path), _) => (read_csr(path)?, None),
        (None, Some(key_path)) => {
            let (csr, key) = csr_with_new_key(&args.names, args.key_type)?;
            // The key file is taken before the request, so a certificate is
            // never issued for a key that then has nowhere to go.
            files::create(key_path, key.as_bytes(), files::PRIVATE)?;
            (csr, Some(key_path.as_path()))
        }
        (None, None) => return Err(CliError::Usage("give --csr FILE, or --name and --key FILE".into())),
    };
    let mut body = json!({ "policy": args.policy, "csr": csr });
    if let Some(ttl) = &args.ttl {
        body["ttl"] = Value::String(ttl.clone());
    }
    let answer = match client.post(&PATH, Some(&body)).await {
        Ok(answer) => answer,
        Err(e) => {
            // Nothing was issued for the key made for this request.
            if let Some(path) = made_key {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let issued: Issued = answer.parse()?;
    files::replace(&args.chain, issued.chain.as_bytes(), files::PUBLIC)
        .map_err(|e| CliError::Usage(format!("certificate {} was issued, but {e}", issued.serial)))?;
    if let Some(cert) = &args.cert {
        files::replace(cert, issued.certificate.as_bytes(), files::PUBLIC)
            .map_err(|e| CliError::Usage(format!("certificate {} was issued, but {e}", issued.serial)))?;
    }
    let key_note = made_key.map(|k| format!(", key in {} (0600)", k.display())).unwrap_or_default();
    eprintln!("Issued {}: chain in {}{key_note}", issued.serial, args.chain.display());
    Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
}

/// A CSR file as the API takes it: PEM as it is, DER in base64.
fn read_csr(path: &Path) -> Result<String, CliError> {
    let bytes = std::fs::read(path).map_err(|e| file_error(path, e))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) if text.trim_start().starts_with("-----BEGIN") => Ok(text.to_owned()),
        _ => Ok(base64::engine::general_purpose::STANDARD.encode(&bytes)),
    }
}

/// A new key and a CSR for `names` signed by it: (CSR PEM, key PKCS#8 PEM).
fn csr_with_new_key(names: &[String], key_type: KeyType) -> Result<(String, String), CliError> {
    let key = rcgen::KeyPair::generate_for(key_type.algorithm())
        .map_err(|e| CliError::Usage(format!("cannot make a {key_type:?} key: {e}")))?;
    let mut params = rcgen::CertificateParams::default();
    // The server writes the subject from the names; the CSR carries none.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = names.iter().map(|n| san(n)).collect::<Result<_, _>>()?;
    let csr = params
        .serialize_request(&key)
        .and_then(|request| request.pem())
        .map_err(|e| CliError::Usage(format!("cannot make the CSR: {e}")))?;
    Ok((csr, key.serialize_pem()))
}

/// A name as the SAN it is: an IP address, a URI (`scheme://`), else DNS.
fn san(name: &str) -> Result<rcgen::SanType, CliError> {
    let bad = |e: rcgen::Error| CliError::Usage(format!("--name {name:?}: {e}"));
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(rcgen::SanType::IpAddress(ip));
    }
    let text = name.try_into().map_err(bad)?;
    Ok(if name.contains("://") { rcgen::SanType::URI(text) } else { rcgen::SanType::DnsName(text) })
}

#[cfg(test)]
mod tests {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::FromDer;

    use super::*;

    #[test]
    fn a_made_key_signs_a_csr_naming_every_name_and_nothing_else() {
        let names = ["web.test".to_owned(), "10.0.0.7".to_owned(), "spiffe://tessera.test/web".to_owned()];
        let (csr, key) = csr_with_new_key(&names, KeyType::EcdsaP256).expect("made");
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 PEM");
        assert!(!csr.contains("PRIVATE"), "the CSR holds no private key");
        let der = pem::parse(&csr).expect("PEM").into_contents();
        let (_, request) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).expect("DER");
        request.verify_signature().expect("self-signed by the new key");
        assert_eq!(request.certification_request_info.subject.iter().count(), 0, "no subject");
        let key_pair = rcgen::KeyPair::from_pem(&key).expect("key");
        assert_eq!(request.certification_request_info.subject_pki.raw, key_pair.subject_public_key_info());
        let sans = request.requested_extensions().into_iter().flatten().find_map(|e| match e {
            x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) => Some(san.general_names.len()),
            _ => None,
        });
        assert_eq!(sans, Some(3));
    }

    #[test]
    fn der_csrs_are_sent_in_base64() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("web.csr");
        std::fs::write(&path, [0x30, 0x82, 0x01]).expect("written");
        assert_eq!(read_csr(&path).expect("read"), "MIIB");
    }
}
