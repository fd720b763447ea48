//! The PKI secrets engine's paths under a mount: sign a CSR or issue a key
//! and certificate under a role, read the CA, its chain, a certificate and
//! the CRL, and revoke. Roles are Tessera policies; issuance goes through
//! [`issue_under_policy`] as REST issuance does.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{CertificateParams, DnType, KeyPair, PKCS_ECDSA_P256_SHA256, SanType};
use serde_json::{Value, json};

use super::VaultState;
use super::auth::VaultCaller;
use super::envelope::{colon_serial, parse_serial, secret};
use super::error::VaultError;
use super::request::{Fields, Format};
use crate::authority::format_ttl;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::{CheckedCsr, Identifier, IssuedCertificate, RevocationReason, SigningAuthority, certificate_pem};
use crate::policy_issuance::{PolicyIssue, issue_under_policy, stored_policy};
use crate::storage::{CertificateStatus, FULL_CRL, NewAuditEvent, StoreError};

const PEM_CHAIN: &str = "application/pem-certificate-chain";

/// `POST /v1/{mount}/sign/{role}`: the CSR's names, judged by the role's policy.
pub async fn sign(
    State(state): State<VaultState>,
    Path((mount, role)): Path<(String, String)>,
    caller: VaultCaller,
    body: Bytes,
) -> Result<Json<Value>, VaultError> {
    let policy = state.role(&mount, &role)?;
    // Before the body or the policy is read: a token learns nothing of
    // roles it is not bound to.
    caller.require_policy(Some(policy))?;
    let fields = Fields::parse(&body)?;
    let csr_text = fields.csr.as_deref().ok_or_else(|| VaultError::BadRequest("missing csr".into()))?;
    let csr = CheckedCsr::parse(csr_text.trim().as_bytes())?;
    fields.check_against(&csr)?;
    let (issued, warnings) = issue(&state, &caller, policy, &csr, &fields).await?;
    Ok(secret(certificate_data(&issued, fields.format), warnings))
}

/// `POST /v1/{mount}/issue/{role}`: Tessera makes a P-256 key for the
/// names in the fields and returns it once; it is never stored.
pub async fn issue_with_key(
    State(state): State<VaultState>,
    Path((mount, role)): Path<(String, String)>,
    caller: VaultCaller,
    body: Bytes,
) -> Result<Json<Value>, VaultError> {
    let policy = state.role(&mount, &role)?;
    caller.require_policy(Some(policy))?;
    let fields = Fields::parse(&body)?;
    if fields.csr.is_some() {
        return Err(VaultError::BadRequest("issue makes the key; send a CSR to sign instead".into()));
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| VaultError::Internal(format!("key generation failed: {e}")))?;
    let csr = key_request(&key, &fields)?;
    let (issued, warnings) = issue(&state, &caller, policy, &csr, &fields).await?;
    let mut data = certificate_data(&issued, fields.format);
    data["private_key"] = match fields.format {
        Format::Der => json!(STANDARD.encode(key.serialized_der())),
        Format::Pem | Format::PemBundle => json!(key.serialize_pem()),
    };
    data["private_key_type"] = json!("ec");
    Ok(secret(data, warnings))
}

/// A CSR for the fields' names, signed by `key`.
fn key_request(key: &KeyPair, fields: &Fields) -> Result<CheckedCsr, VaultError> {
    let mut params = CertificateParams::default();
    if let Some(cn) = &fields.common_name {
        params.distinguished_name.push(DnType::CommonName, cn.as_str());
    }
    let bad = |e: rcgen::Error| VaultError::BadRequest(format!("cannot request these names: {e}"));
    for name in fields.names()? {
        params.subject_alt_names.push(match name {
            Identifier::Dns(d) => SanType::DnsName(d.as_str().try_into().map_err(bad)?),
            Identifier::Ip(ip) => SanType::IpAddress(ip),
            Identifier::Uri(u) => SanType::URI(u.to_string().as_str().try_into().map_err(bad)?),
        });
    }
    let request = params.serialize_request(key).map_err(|e| VaultError::Internal(format!("CSR encoding: {e}")))?;
    Ok(CheckedCsr::parse_der(request.der())?)
}

/// The role's policy judges the request; a `ttl` above its maximum is
/// capped to it with a warning, as Vault caps a role's `max_ttl`.
async fn issue(
    state: &VaultState,
    caller: &VaultCaller,
    policy: &str,
    csr: &CheckedCsr,
    fields: &Fields,
) -> Result<(IssuedCertificate, Vec<String>), VaultError> {
    let policy = stored_policy(&state.store, policy).await?;
    let mut warnings: Vec<String> =
        fields.ignored.iter().map(|f| format!("endpoint ignored the unrecognized parameter {f:?}")).collect();
    let ttl = fields.ttl.map(|ttl| {
        if ttl > policy.max_ttl() {
            warnings.push(format!(
                "ttl {} is longer than the role's max_ttl {}; max_ttl is used",
                format_ttl(ttl),
                format_ttl(policy.max_ttl())
            ));
            policy.max_ttl()
        } else {
            ttl
        }
    });
    let request = PolicyIssue { policy: &policy, csr, ttl, requester: caller.actor() };
    let issued = issue_under_policy(&state.issuer, &state.metrics, request).await?;
    Ok((issued, warnings))
}

/// `data` of a sign or issue answer: the leaf, its issuer, the chain above
/// the leaf (issuer first, root last), the serial and expiry.
fn certificate_data(issued: &IssuedCertificate, format: Format) -> Value {
    let authority = &issued.authority;
    let issuing_ca = certificate_pem(&authority.certificate_der);
    let leaf = certificate_pem(&issued.der);
    let (certificate, issuing_ca, ca_chain) = match format {
        Format::Pem => (leaf, issuing_ca, ca_chain(authority)),
        Format::PemBundle => (format!("{leaf}{issuing_ca}"), issuing_ca, ca_chain(authority)),
        Format::Der => (
            STANDARD.encode(&issued.der),
            STANDARD.encode(&authority.certificate_der),
            ca_chain_der(authority).iter().map(|der| STANDARD.encode(der)).collect(),
        ),
    };
    json!({
        "certificate": certificate,
        "issuing_ca": issuing_ca,
        "ca_chain": ca_chain,
        "serial_number": colon_serial(&issued.serial),
        "expiration": issued.not_after.unix_timestamp(),
    })
}

/// The issuing CA, the intermediates above it, and the root, as DER.
fn ca_chain_der(authority: &SigningAuthority) -> Vec<Vec<u8>> {
    let text = format!("{}{}", authority.chain_pem, authority.root_pem);
    pem::parse_many(text.as_bytes())
        .map(|all| all.into_iter().map(pem::Pem::into_contents).collect())
        .unwrap_or_default()
}

fn ca_chain(authority: &SigningAuthority) -> Vec<String> {
    ca_chain_der(authority).iter().map(|der| certificate_pem(der)).collect()
}

fn pem_text(body: String) -> Response {
    ([(header::CONTENT_TYPE, PEM_CHAIN)], body).into_response()
}

/// `GET /v1/{mount}/ca/pem`: the issuing CA certificate.
pub async fn ca_pem(State(state): State<VaultState>, Path(mount): Path<String>) -> Result<Response, VaultError> {
    state.mount(&mount)?;
    Ok(pem_text(certificate_pem(&state.issuer.authority().certificate_der)))
}

/// `GET /v1/{mount}/ca_chain`: the issuing CA, its intermediates, the root.
pub async fn ca_chain_pem(State(state): State<VaultState>, Path(mount): Path<String>) -> Result<Response, VaultError> {
    state.mount(&mount)?;
    Ok(pem_text(ca_chain(&state.issuer.authority()).concat()))
}

/// `GET /v1/{mount}/crl/pem`: the issuing CA's full CRL.
pub async fn crl_pem(State(state): State<VaultState>, Path(mount): Path<String>) -> Result<Response, VaultError> {
    state.mount(&mount)?;
    let authority = state.issuer.authority();
    let crl = state.revocation.stored_crl(authority.id, FULL_CRL).await.map_err(|e| match e {
        StoreError::NotFound => VaultError::NotFound("no CRL has been published yet".into()),
        other => other.into(),
    })?;
    let lf = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    let text = pem::encode_config(&pem::Pem::new("X509 CRL", crl.der), lf);
    Ok(([(header::CONTENT_TYPE, "application/x-pem-file")], text).into_response())
}

/// `GET /v1/{mount}/cert/{serial}`: a certificate this CA issued, with its
/// revocation time (0 while valid). Any live token may read it.
pub async fn certificate(
    State(state): State<VaultState>,
    Path((mount, serial)): Path<(String, String)>,
    _: VaultCaller,
) -> Result<Json<Value>, VaultError> {
    state.mount(&mount)?;
    let authority = state.issuer.authority();
    let pem = match serial.as_str() {
        "ca" => certificate_pem(&authority.certificate_der),
        "ca_chain" => ca_chain(&authority).concat(),
        _ => {
            let serial = parse_serial(&serial)
                .ok_or_else(|| VaultError::BadRequest(format!("{serial:?} is not a serial number")))?;
            let record = state.store.certificate(serial.as_bytes()).await.map_err(not_found)?;
            let der = record.der.as_ref().ok_or_else(|| not_found(StoreError::NotFound))?;
            let revoked = record.revoked_at.unwrap_or(0);
            return Ok(secret(
                json!({
                    "certificate": certificate_pem(der),
                    "revocation_time": revoked,
                    "revocation_time_rfc3339": record.revoked_at.map(|t| rfc3339(from_unix(t))).unwrap_or_default(),
                    "serial_number": colon_serial(&serial),
                }),
                Vec::new(),
            ));
        }
    };
    Ok(secret(json!({ "certificate": pem, "revocation_time": 0 }), Vec::new()))
}

fn not_found(e: StoreError) -> VaultError {
    match e {
        StoreError::NotFound => VaultError::NotFound("certificate not found".into()),
        other => other.into(),
    }
}

/// `POST /v1/{mount}/revoke` `{"serial_number"}`: revokes a certificate
/// issued under a policy the token may manage; revoking one already
/// revoked answers its revocation time, as Vault does.
pub async fn revoke(
    State(state): State<VaultState>,
    Path(mount): Path<String>,
    caller: VaultCaller,
    body: Bytes,
) -> Result<Json<Value>, VaultError> {
    state.mount(&mount)?;
    caller.require_manage()?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| VaultError::BadRequest(format!("failed to parse JSON input: {e}")))?;
    let text = body["serial_number"].as_str().ok_or_else(|| VaultError::BadRequest("missing serial_number".into()))?;
    let serial =
        parse_serial(text).ok_or_else(|| VaultError::BadRequest(format!("{text:?} is not a serial number")))?;
    let current = state.store.certificate(serial.as_bytes()).await.map_err(not_found)?;
    caller.require_policy(current.policy.as_deref())?;
    let answer = |revoked_at: i64, warnings| {
        secret(
            json!({ "revocation_time": revoked_at, "revocation_time_rfc3339": rfc3339(from_unix(revoked_at)) }),
            warnings,
        )
    };
    if let Some(revoked_at) = current.revoked_at {
        return Ok(answer(revoked_at, vec!["certificate already revoked".to_owned()]));
    }
    let audit = NewAuditEvent {
        at: state.clock.unix(),
        actor: caller.actor(),
        action: "certificate.revoke",
        target: serial.to_hex(),
        detail: json!({ "reason": RevocationReason::Unspecified.as_str(), "via": "vault" }),
    };
    let revoked = match state.revocation.revoke(serial.as_bytes(), RevocationReason::Unspecified, &audit).await {
        Ok(revoked) => revoked,
        Err(StoreError::Conflict(why)) => {
            let now = state.store.certificate(serial.as_bytes()).await?;
            return match (now.status, now.revoked_at) {
                (CertificateStatus::Revoked, Some(at)) => {
                    Ok(answer(at, vec!["certificate already revoked".to_owned()]))
                }
                _ => Err(VaultError::BadRequest(format!("certificate cannot be revoked: {why}"))),
            };
        }
        Err(other) => return Err(not_found(other)),
    };
    for _ in 0..revoked.count() {
        state.metrics.revoked();
    }
    Ok(answer(revoked.certificate.revoked_at.unwrap_or(audit.at), Vec::new()))
}
