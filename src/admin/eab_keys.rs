//! `/api/v1/eab-keys`: External Account Binding keys for ACME. Each is
//! bound to a policy that accounts made with it inherit; the HMAC key is
//! shown once, as unpadded base64url (what certbot, lego and cert-manager
//! take).

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authorized, Manage, Read};
use super::pagination::{self, Page};
use super::policies::load_policy;
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::storage::{EabKeyRecord, NewAuditEvent, SecretRow, StoreError};

#[derive(Debug, Serialize)]
pub struct EabKeyView {
    kid: String,
    policy: String,
    reusable: bool,
    created_at: String,
    /// When the first account bound it.
    bound_at: Option<String>,
    bound_accounts: i64,
    revoked_at: Option<String>,
}

impl From<EabKeyRecord> for EabKeyView {
    fn from(r: EabKeyRecord) -> Self {
        Self {
            kid: r.kid,
            policy: r.policy,
            reusable: r.reusable,
            created_at: rfc3339(from_unix(r.created_at)),
            bound_at: r.bound_at.map(|t| rfc3339(from_unix(t))),
            bound_accounts: r.bound_count,
            revoked_at: r.revoked_at.map(|t| rfc3339(from_unix(t))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    policy: String,
    #[serde(default)]
    reusable: bool,
}

#[derive(Serialize)]
struct NewEabKeyView {
    #[serde(flatten)]
    metadata: EabKeyView,
    /// Shown once.
    hmac_key: String,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| ApiError::Internal("the random generator failed".into()))?;
    Ok(bytes)
}

/// A fresh HMAC key whose base64url text does not start with `-`: clients
/// take the key as a command-line argument (`certbot --eab-hmac-key KEY`),
/// and their parsers read a leading `-` as an option. One key in 64 would
/// start so; drawing again costs under 6 bits of its 256.
fn hmac_key() -> Result<[u8; 32], ApiError> {
    loop {
        let key = random_bytes::<32>()?;
        // The first base64url character is the top six bits; 62 is `-`.
        if key[0] >> 2 != 62 {
            return Ok(key);
        }
    }
}

/// `POST /api/v1/eab-keys`
pub async fn create(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    load_policy(&state.db, &body.policy).await?;
    let kid = format!("kid-{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()?));
    let hmac_key = hmac_key()?;
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "eab-key.create",
        target: kid.clone(),
        detail: serde_json::json!({ "policy": body.policy, "reusable": body.reusable }),
    };
    let sealed = state.sealer.seal(&SecretRow::EabHmacKey(kid.clone()), &hmac_key).await?;
    let record = state.db.insert_eab_key(&kid, &sealed, &body.policy, body.reusable, now, &audit).await?;
    let view = NewEabKeyView { metadata: EabKeyView::from(record), hmac_key: URL_SAFE_NO_PAD.encode(hmac_key) };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/eab-keys`
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<EabKeyView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = match &query.cursor {
        Some(c) => {
            Some(pagination::decode_cursor(c)?.parse::<i64>().map_err(|_| ApiError::Malformed("bad cursor".into()))?)
        }
        None => None,
    };
    let rows = state.db.list_eab_keys(after, limit + 1).await?;
    Ok(axum::Json(pagination::page(rows, limit, |r| r.id.to_string(), EabKeyView::from)))
}

#[derive(Serialize)]
pub struct RevokedEabKeyView {
    #[serde(flatten)]
    metadata: EabKeyView,
    /// Accounts bound to the key, revoked with it.
    accounts_revoked: u64,
}

/// `POST /api/v1/eab-keys/{kid}/revoke`: no new account can bind it, and
/// the accounts bound to it can no longer act.
pub async fn revoke(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(kid): ApiPath<String>,
) -> Result<axum::Json<RevokedEabKeyView>, ApiError> {
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "eab-key.revoke",
        target: kid.clone(),
        detail: serde_json::json!({}),
    };
    let (record, accounts_revoked) = state.db.revoke_eab_key(&kid, now, &audit).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no EAB key {kid:?}")),
        StoreError::Conflict(_) => ApiError::Conflict(format!("EAB key {kid:?} is already revoked")),
        other => other.into(),
    })?;
    Ok(axum::Json(RevokedEabKeyView { metadata: EabKeyView::from(record), accounts_revoked }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_keys_never_read_as_an_option() {
        for _ in 0..2000 {
            let key = hmac_key().expect("random");
            assert!(!URL_SAFE_NO_PAD.encode(key).starts_with('-'));
        }
        assert!(URL_SAFE_NO_PAD.encode([62u8 << 2]).starts_with('-'), "62 in the top bits is `-`");
    }
}
