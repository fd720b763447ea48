//! Authorizations (RFC 8555 §7.5): read, with their challenges, and
//! deactivation (§7.5.2).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Account, SignedByAccount};
use super::order::POLL_SECONDS;
use super::problem::AcmeProblem;
use super::{AcmeState, Urls, parse_id};
use crate::clock::{from_unix, rfc3339};
use crate::issuance::Identifier;
use crate::storage::{AcmeAuthzRecord, AcmeChallengeRecord, AuthzKey, AuthzStatus};

/// The authorization `key` names, with its challenges, if it belongs to `account`.
pub async fn owned_authz(
    state: &AcmeState,
    account: &Account,
    key: AuthzKey,
) -> Result<(AcmeAuthzRecord, Vec<AcmeChallengeRecord>), AcmeProblem> {
    let missing = match key {
        AuthzKey::Authz(_) => "no such authorization",
        AuthzKey::Challenge(_) => "no such challenge",
    };
    let (authz, challenges) = state.inner.authzs.get(key).await?.ok_or_else(|| AcmeProblem::not_found(missing))?;
    if authz.account_id != account.id() {
        return Err(AcmeProblem::unauthorized("the authorization belongs to another account"));
    }
    Ok((authz, challenges))
}

/// The status an authorization has now; a pending or valid one past its expiry is expired.
fn current_status(authz: &AcmeAuthzRecord, now: i64) -> AuthzStatus {
    match authz.status {
        AuthzStatus::Pending | AuthzStatus::Valid if authz.expires < now => AuthzStatus::Expired,
        other => other,
    }
}

fn authz_view(urls: &Urls, authz: &AcmeAuthzRecord, challenges: &[AcmeChallengeRecord], now: i64) -> Value {
    let identifier = Identifier::from_tagged(&authz.identifier)
        .map(|id| json!({ "type": id.kind(), "value": id.value() }))
        .unwrap_or(Value::Null);
    let mut body = json!({
        "identifier": identifier,
        "status": current_status(authz, now),
        "expires": rfc3339(from_unix(authz.expires)),
        "challenges": challenges.iter().map(|c| challenge_view(urls, c)).collect::<Vec<_>>(),
    });
    if authz.wildcard {
        body["wildcard"] = json!(true);
    }
    body
}

/// An authorization as a response, with `Retry-After` while it is pending.
fn authz_response(urls: &Urls, authz: &AcmeAuthzRecord, challenges: &[AcmeChallengeRecord], now: i64) -> Response {
    let pending = current_status(authz, now) == AuthzStatus::Pending;
    let mut response = (StatusCode::OK, axum::Json(authz_view(urls, authz, challenges, now))).into_response();
    if pending {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(POLL_SECONDS));
    }
    response
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthzUpdate {
    status: String,
}

/// `POST /acme/{dir}/authz/{id}`: POST-as-GET, or `{"status":"deactivated"}`.
pub async fn authorization(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    let (mut authz, challenges) = owned_authz(&state, &account, AuthzKey::Authz(parse_id(&id)?)).await?;
    if !post.jws.is_post_as_get() {
        let update: AuthzUpdate = post.payload()?;
        if AuthzStatus::parse(&update.status) != Some(AuthzStatus::Deactivated) {
            return Err(AcmeProblem::malformed("an authorization can only be set to deactivated"));
        }
        if !state.store().deactivate_acme_authorization(authz.id).await? {
            return Err(AcmeProblem::malformed(format!("a {} authorization cannot be deactivated", authz.status)));
        }
        authz.status = AuthzStatus::Deactivated;
    }
    Ok(authz_response(&post.urls, &authz, &challenges, state.now()))
}

/// A challenge as its authorization and `POST .../chall/{id}` show it.
pub fn challenge_view(urls: &Urls, challenge: &AcmeChallengeRecord) -> Value {
    let mut body = json!({
        "type": challenge.kind,
        "url": urls.challenge(challenge.id),
        "token": challenge.token,
        "status": challenge.status,
    });
    if let Some(at) = challenge.validated {
        body["validated"] = json!(rfc3339(from_unix(at)));
    }
    if let Some(error) = challenge.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
        body["error"] = error;
    }
    body
}
