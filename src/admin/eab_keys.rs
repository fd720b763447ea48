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
use crate::storage::{AccountCap, EabKeyRecord, NewAuditEvent, SecretRow, StoreError};

/// Accounts a reusable key binds unless its creator says otherwise: enough
/// for a fleet's clusters, few enough that a leaked key cannot make accounts
/// without end (the accounts of one key share its rate limits anyway).
const DEFAULT_MAX_ACCOUNTS: i64 = 100;
/// The most accounts one key may be allowed to bind.
const MAX_ACCOUNTS_LIMIT: i64 = 1_000_000;

#[derive(Debug, Serialize)]
pub struct EabKeyView {
    kid: String,
    policy: String,
    reusable: bool,
    created_at: String,
    /// When the first account bound it.
    bound_at: Option<String>,
    bound_accounts: i64,
    /// How many accounts it may bind; the next newAccount is refused.
    max_accounts: i64,
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
            max_accounts: r.max_accounts,
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
    /// For a reusable key: how many accounts it may bind.
    #[serde(default)]
    max_accounts: Option<i64>,
}

/// How many accounts a new key may bind: one for a single-use key, the
/// creator's number (or [`DEFAULT_MAX_ACCOUNTS`]) for a reusable one.
fn account_cap(request: &CreateRequest) -> Result<AccountCap, ApiError> {
    match (request.reusable, request.max_accounts) {
        (false, None | Some(1)) => Ok(AccountCap::SingleUse),
        (false, Some(_)) => {
            Err(ApiError::Malformed("max_accounts applies to reusable keys; a single-use key binds one account".into()))
        }
        (true, None) => Ok(AccountCap::Reusable { max_accounts: DEFAULT_MAX_ACCOUNTS }),
        (true, Some(n)) if (1..=MAX_ACCOUNTS_LIMIT).contains(&n) => Ok(AccountCap::Reusable { max_accounts: n }),
        (true, Some(n)) => Err(ApiError::Malformed(format!("max_accounts {n} is outside 1..={MAX_ACCOUNTS_LIMIT}"))),
    }
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
    // A key hands out issuance under its policy: only a token bound to it may make one.
    caller.require_policy(&state, Some(&body.policy))?;
    let cap = account_cap(&body)?;
    load_policy(&state.store, &body.policy).await?;
    let kid = format!("kid-{}", URL_SAFE_NO_PAD.encode(random_bytes::<12>()?));
    let hmac_key = hmac_key()?;
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "eab-key.create",
        target: kid.clone(),
        detail: serde_json::json!({ "policy": body.policy, "reusable": body.reusable, "max_accounts": cap.max_accounts() }),
    };
    let sealed = state.sealer.seal(&SecretRow::EabHmacKey(kid.clone()), &hmac_key).await?;
    let record = state.store.insert_eab_key(&kid, &sealed, &body.policy, cap, now, &audit).await?;
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
    let after = pagination::after_id(query.cursor.as_deref())?;
    let rows = state.store.list_eab_keys(after, limit + 1).await?;
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
    if caller.scope.is_bound() {
        let policy =
            state.store.eab_key_policy(&kid).await?.ok_or_else(|| ApiError::NotFound(format!("no EAB key {kid:?}")))?;
        caller.require_policy(&state, Some(&policy))?;
    }
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "eab-key.revoke",
        target: kid.clone(),
        detail: serde_json::json!({}),
    };
    let (record, accounts_revoked) = state.store.revoke_eab_key(&kid, now, &audit).await.map_err(|e| match e {
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
