//! Accounts (RFC 8555 §7.3): newAccount (with `onlyReturnExisting` and
//! EAB), account read, contact update and deactivation, the orders list
//! (§7.1.2.1, paged) and key change (§7.3.5).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::eab::verify_binding;
use super::extract::{Account, SignedByAccount, SignedByKey, verify_jws};
use super::jws::{Jwk, Jws, KeyRef};
use super::problem::{AcmeProblem, ProblemType};
use super::{AcmeState, Urls, parse_id};
use crate::clock::{from_unix, rfc3339};
use crate::storage::{AccountStatus, AcmeAccountRecord, NewAccountError, NewAcmeAccount, NewAuditEvent};

/// Orders per page of the orders list.
const ORDERS_PAGE: i64 = 100;
const MAX_CONTACTS: usize = 10;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewAccountPayload {
    #[serde(default)]
    contact: Option<Vec<String>>,
    #[serde(default)]
    terms_of_service_agreed: Option<bool>,
    /// Some clients (acme2) send `null` for members they leave unset.
    #[serde(default)]
    only_return_existing: Option<bool>,
    #[serde(default)]
    external_account_binding: Option<Value>,
}

/// The account object (§7.1.2).
fn account_view(urls: &Urls, record: &AcmeAccountRecord) -> Value {
    let contact: Value = serde_json::from_str(&record.contact).unwrap_or_else(|_| json!([]));
    json!({
        "status": record.status,
        "contact": contact,
        "orders": urls.orders(record.id),
        "createdAt": rfc3339(from_unix(record.created_at)),
    })
}

fn account_response(status: StatusCode, urls: &Urls, record: &AcmeAccountRecord) -> Response {
    let mut response = (status, axum::Json(account_view(urls, record))).into_response();
    if let Ok(location) = HeaderValue::from_str(&urls.account(record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Contacts must be `mailto:` URLs with one plausible address each (§7.3).
fn check_contacts(contacts: &[String]) -> Result<String, AcmeProblem> {
    if contacts.len() > MAX_CONTACTS {
        return Err(AcmeProblem::new(ProblemType::InvalidContact, format!("at most {MAX_CONTACTS} contacts")));
    }
    for contact in contacts {
        let Some(address) = contact.strip_prefix("mailto:") else {
            return Err(AcmeProblem::new(
                ProblemType::UnsupportedContact,
                format!("{contact:?}: only mailto: contacts are supported"),
            ));
        };
        let plausible = address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !address.contains([',', '?', ' ', '\n'])
        });
        if !plausible {
            return Err(AcmeProblem::new(ProblemType::InvalidContact, format!("{contact:?} is not an email address")));
        }
    }
    serde_json::to_string(contacts).map_err(|e| AcmeProblem::internal(e.to_string()))
}

/// `POST /acme/{dir}/new-account`
pub async fn new_account(State(state): State<AcmeState>, request: SignedByKey) -> Result<Response, AcmeProblem> {
    let SignedByKey { post, key } = request;
    let payload: NewAccountPayload = post.payload()?;
    let thumbprint = key.thumbprint();
    if let Some(existing) = state.store().acme_account_by_key(&post.directory.name, &thumbprint).await? {
        return Ok(account_response(StatusCode::OK, &post.urls, &existing));
    }
    if payload.only_return_existing == Some(true) {
        return Err(AcmeProblem::new(ProblemType::AccountDoesNotExist, "no account exists with this key"));
    }
    if post.directory.terms_of_service.is_some() && payload.terms_of_service_agreed != Some(true) {
        return Err(AcmeProblem::malformed("the terms of service must be agreed to"));
    }
    let contact = check_contacts(payload.contact.as_deref().unwrap_or_default())?;
    let eab_key = match &payload.external_account_binding {
        Some(binding) => {
            Some(verify_binding(state.store(), state.sealer(), binding, &key, &post.urls.path("new-account")).await?)
        }
        None if post.directory.eab_required => {
            return Err(AcmeProblem::new(
                ProblemType::ExternalAccountRequired,
                "this directory requires an externalAccountBinding",
            ));
        }
        None => None,
    };
    let policy = eab_key.as_ref().map_or_else(|| post.directory.policy.clone(), |k| k.policy.clone());
    let now = state.now();
    let audit = NewAuditEvent {
        at: now,
        actor: eab_key.as_ref().map_or_else(|| "acme".to_owned(), |k| format!("eab:{}", k.kid)),
        action: "acme.account.create",
        target: String::new(),
        detail: json!({ "directory": post.directory.name, "policy": policy, "thumbprint": thumbprint }),
    };
    let new = NewAcmeAccount {
        directory: post.directory.name.clone(),
        thumbprint,
        jwk: key.to_json().to_string(),
        contact,
        policy,
        eab_key_id: eab_key.as_ref().map(|k| k.id),
        created_at: now,
    };
    // A key at its cap is `unauthorized`, not `rateLimited` (RFC 8555
    // §6.7): no wait makes it bind another account, just as a single-use
    // key once bound never binds again.
    let record = state.store().insert_acme_account(&new, &audit).await.map_err(|e| match e {
        NewAccountError::EabKeyUnavailable => AcmeProblem::unauthorized("the EAB key is revoked or already bound"),
        NewAccountError::EabKeyFull { max_accounts } => AcmeProblem::unauthorized(format!(
            "the EAB key has bound the {max_accounts} accounts it may; ask its operator for another key"
        )),
        NewAccountError::Store(e) => e.into(),
    })?;
    Ok(account_response(StatusCode::CREATED, &post.urls, &record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AccountUpdate {
    #[serde(default)]
    contact: Option<Vec<String>>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default, rename = "termsOfServiceAgreed")]
    _terms_of_service_agreed: Option<bool>,
}

fn same_account(account: &Account, path_id: i64) -> Result<(), AcmeProblem> {
    if account.id() == path_id {
        Ok(())
    } else {
        Err(AcmeProblem::unauthorized("the request is signed by another account"))
    }
}

/// `POST /acme/{dir}/acct/{id}`: read (POST-as-GET or `{}`), update the
/// contact, or deactivate (§7.3.2, §7.3.6).
pub async fn account(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    same_account(&account, parse_id(&id)?)?;
    if post.jws.is_post_as_get() {
        return Ok(account_response(StatusCode::OK, &post.urls, &account.record));
    }
    let update: AccountUpdate = post.payload()?;
    let status = match update.status.as_deref().map(|s| (s, AccountStatus::parse(s))) {
        None => None,
        Some((_, Some(AccountStatus::Deactivated))) => Some(AccountStatus::Deactivated),
        Some((other, _)) => return Err(AcmeProblem::malformed(format!("an account cannot be set to {other:?}"))),
    };
    let contact = update.contact.as_deref().map(check_contacts).transpose()?;
    if status.is_none() && contact.is_none() {
        return Ok(account_response(StatusCode::OK, &post.urls, &account.record));
    }
    let audit = NewAuditEvent {
        at: state.now(),
        actor: account.actor(),
        action: if status.is_some() { "acme.account.deactivate" } else { "acme.account.update" },
        target: format!("acme-account:{}", account.id()),
        detail: json!({}),
    };
    let record = state.store().update_acme_account(account.id(), contact.as_deref(), status, &audit).await?;
    Ok(account_response(StatusCode::OK, &post.urls, &record))
}

#[derive(Debug, Deserialize)]
pub struct OrdersQuery {
    cursor: Option<i64>,
}

/// `POST /acme/{dir}/acct/{id}/orders`: the account's order URLs, a page
/// at a time with a `Link: rel="next"`.
pub async fn orders(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    query: Result<Query<OrdersQuery>, QueryRejection>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let Query(query) = query.map_err(|_| AcmeProblem::malformed("cursor must be an order id from a Link header"))?;
    let SignedByAccount { post, account } = request;
    same_account(&account, parse_id(&id)?)?;
    let mut ids = state.store().list_acme_order_ids(account.id(), query.cursor, ORDERS_PAGE + 1).await?;
    let more = ids.len() as i64 > ORDERS_PAGE;
    ids.truncate(ORDERS_PAGE as usize);
    let urls: Vec<String> = ids.iter().map(|id| post.urls.order(*id)).collect();
    let mut response = axum::Json(json!({ "orders": urls })).into_response();
    if let (true, Some(last)) = (more, ids.last()) {
        let next = format!("<{}?cursor={last}>;rel=\"next\"", post.urls.orders(account.id()));
        if let Ok(link) = HeaderValue::from_str(&next) {
            response.headers_mut().append(header::LINK, link);
        }
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyChange {
    account: String,
    old_key: Value,
}

/// `POST /acme/{dir}/key-change` (§7.3.5): the outer JWS is signed by the
/// old key, the inner one by the new key. The inner JWS carries the new key
/// as `jwk`, the outer `url` and no nonce (the outer one spent the
/// request's); its payload names the outer `kid` and the current key.
pub async fn key_change(State(state): State<AcmeState>, request: SignedByAccount) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    let inner_value: Value = post.payload()?;
    let inner = Jws::from_value(&inner_value)?;
    let KeyRef::Jwk(new_key) = inner.header.key.clone() else {
        return Err(AcmeProblem::malformed("the inner JWS must carry the new key as jwk"));
    };
    if inner.header.nonce.is_some() {
        return Err(AcmeProblem::malformed("the inner JWS must not carry a nonce"));
    }
    if inner.header.url != post.jws.header.url {
        return Err(AcmeProblem::malformed("the inner JWS url differs from the outer one"));
    }
    verify_jws(&inner, &new_key, &post.directory, &state)?;
    let change: KeyChange = inner.payload_json()?;
    if KeyRef::Kid(change.account) != post.jws.header.key {
        return Err(AcmeProblem::unauthorized("the key change's account is not the outer JWS's kid"));
    }
    if Jwk::from_json(&change.old_key)? != account.key {
        return Err(AcmeProblem::unauthorized("oldKey is not the account's current key"));
    }
    let thumbprint = new_key.thumbprint();
    if let Some(holder) = state.store().acme_account_by_key(&post.directory.name, &thumbprint).await? {
        let mut problem =
            AcmeProblem::malformed("the new key is already in use by an account").with_status(StatusCode::CONFLICT);
        problem.location = Some(post.urls.account(holder.id));
        return Err(problem);
    }
    let audit = NewAuditEvent {
        at: state.now(),
        actor: account.actor(),
        action: "acme.account.key-change",
        target: format!("acme-account:{}", account.id()),
        detail: json!({ "thumbprint": thumbprint }),
    };
    let record = state
        .store()
        .change_acme_account_key(
            account.id(),
            &account.record.thumbprint,
            &thumbprint,
            &new_key.to_json().to_string(),
            &audit,
        )
        .await?;
    Ok(account_response(StatusCode::OK, &post.urls, &record))
}
