//! Orders (RFC 8555 §7.4): newOrder with DNS and IP identifiers (RFC 8738),
//! `notBefore`/`notAfter` within the account's policy, `replaces` (RFC 9773
//! §5), per-account rate limits; and order reads.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::extract::{Account, SignedByAccount};
use super::problem::{AcmeProblem, ProblemType, Subproblem};
use super::renewal_info::CertId;
use super::{AcmeState, DirectorySettings, Urls, parse_id, random_token};
use crate::authority::Policy;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::{Identifier, from_column, to_column};
use crate::storage::{
    AcmeOrderRecord, NewAcmeAuthz, NewAcmeOrder, NewAuditEvent, OrderLimits, OrderRequest, OrderStatus, RateLimited,
};
use crate::validation::ChallengeKind;

/// Pending orders and their authorizations live this long.
const ORDER_LIFETIME_SECONDS: i64 = 24 * 3600;
const MAX_IDENTIFIERS: usize = 100;
/// How far ahead a `notBefore` may be: enough to stage a certificate for a
/// planned switch-over, not so far that a forgotten order lingers.
const NOT_BEFORE_HORIZON_SECONDS: i64 = 30 * 86_400;
/// Clients poll a processing order this often.
pub const POLL_SECONDS: u64 = 1;

#[derive(Debug, Deserialize)]
pub struct WireIdentifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewOrderPayload {
    identifiers: Vec<WireIdentifier>,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    not_after: Option<String>,
    #[serde(default)]
    replaces: Option<String>,
    #[serde(default)]
    profile: Option<String>,
}

/// The identifier as ACME shows it: a wildcard keeps its `*.` in orders.
pub fn identifier_json(id: &Identifier) -> Value {
    json!({ "type": id.kind(), "value": id.value() })
}

/// The status an order has now; a pending or ready order past its expiry is invalid.
fn current_status(order: &AcmeOrderRecord, now: i64) -> OrderStatus {
    match order.status {
        OrderStatus::Pending | OrderStatus::Ready if order.expires < now => OrderStatus::Invalid,
        other => other,
    }
}

pub fn order_view(urls: &Urls, order: &AcmeOrderRecord, authz_ids: &[i64], now: i64) -> Value {
    let identifiers: Vec<Value> = from_column(&order.identifiers).iter().map(identifier_json).collect();
    let mut body = json!({
        "status": current_status(order, now),
        "expires": rfc3339(from_unix(order.expires)),
        "identifiers": identifiers,
        "authorizations": authz_ids.iter().map(|id| urls.authz(*id)).collect::<Vec<_>>(),
        "finalize": urls.finalize(order.id),
    });
    if let Some(t) = order.not_before {
        body["notBefore"] = json!(rfc3339(from_unix(t)));
    }
    if let Some(t) = order.not_after {
        body["notAfter"] = json!(rfc3339(from_unix(t)));
    }
    if let Some(replaces) = &order.replaces {
        body["replaces"] = json!(replaces);
    }
    if let Some(serial) = &order.certificate_serial {
        body["certificate"] = json!(urls.certificate(&hex::encode(serial)));
    }
    if let Some(error) = order.error.as_deref().and_then(|e| serde_json::from_str::<Value>(e).ok()) {
        body["error"] = error;
    }
    body
}

/// An order as a response: `Location` names it, `Retry-After` while it is
/// processing (§7.4). A pending order waits on the client's challenges, so
/// it gets none: clients such as instant-acme honour it and would idle.
pub fn order_response(
    status: StatusCode,
    urls: &Urls,
    order: &AcmeOrderRecord,
    authz_ids: &[i64],
    now: i64,
) -> Response {
    let moving = current_status(order, now) == OrderStatus::Processing;
    let mut response = (status, axum::Json(order_view(urls, order, authz_ids, now))).into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&urls.order(order.id)) {
        headers.insert(header::LOCATION, location);
    }
    if moving {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(POLL_SECONDS));
    }
    response
}

/// The order `id` and its authorization ids, if it belongs to `account`.
pub async fn owned_order(
    state: &AcmeState,
    account: &Account,
    id: i64,
) -> Result<(AcmeOrderRecord, Vec<i64>), AcmeProblem> {
    let (order, authz_ids) =
        state.inner.orders.get(id).await?.ok_or_else(|| AcmeProblem::not_found("no such order"))?;
    if order.account_id != account.id() {
        return Err(AcmeProblem::unauthorized("the order belongs to another account"));
    }
    Ok((order, authz_ids))
}

/// `POST /acme/{dir}/order/{id}` (POST-as-GET)
pub async fn order(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    let (order, authz_ids) = owned_order(&state, &account, parse_id(&id)?).await?;
    Ok(order_response(StatusCode::OK, &post.urls, &order, &authz_ids, state.now()))
}

/// `POST /acme/{dir}/new-order`
pub async fn new_order(State(state): State<AcmeState>, request: SignedByAccount) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    let payload: NewOrderPayload = post.payload()?;
    if payload.profile.is_some() {
        return Err(AcmeProblem::malformed("this directory offers no certificate profiles"));
    }
    let now = state.now();
    let policy = state.policy(&account.record.policy).await?;
    let identifiers = check_identifiers(&payload.identifiers, &policy, &post.directory)?;
    let not_before = payload.not_before.as_deref().map(|t| parse_time("notBefore", t)).transpose()?;
    let not_after = payload.not_after.as_deref().map(|t| parse_time("notAfter", t)).transpose()?;
    check_validity(not_before, not_after, &policy, now)?;
    let replaces_serial = match &payload.replaces {
        Some(text) => Some(check_replaces(&state, &account, text).await?),
        None => None,
    };

    let by_binding = binding_authorization(&state, &post.directory, &account, &identifiers, now).await?;
    let mut authorizations = Vec::with_capacity(identifiers.len());
    for id in &identifiers {
        let (bare, wildcard) = match id {
            Identifier::Dns(name) => match name.strip_prefix("*.") {
                Some(base) => (Identifier::Dns(base.to_owned()), true),
                None => (id.clone(), false),
            },
            other => (other.clone(), false),
        };
        let mut challenges = Vec::new();
        if by_binding.is_none() {
            for kind in challenge_kinds(&post.directory, &bare, wildcard) {
                challenges.push((kind.as_str().to_owned(), random_token()?));
            }
        }
        authorizations.push(NewAcmeAuthz { identifier: bare.to_tagged(), wildcard, challenges });
    }
    let new = NewAcmeOrder {
        account_id: account.id(),
        identifiers: to_column(&identifiers),
        not_before,
        not_after,
        expires: now + ORDER_LIFETIME_SECONDS,
        replaces_serial,
        replaces: payload.replaces.clone(),
        created_at: now,
        authorizations,
        by_binding,
    };
    let directory = &post.directory;
    let eab_key_id = account.record.eab_key_id;
    let limits = OrderLimits::new(
        directory.rate_window_seconds,
        directory.orders_per_window,
        directory.failed_validations_per_window,
    )
    .per_eab_key(eab_key_id);
    let (order, authzs) = match state.inner.new_orders.get(OrderRequest { order: new, limits }).await? {
        Ok(created) => created,
        Err(limit) => return Err(rate_limited(directory, limit, eab_key_id.is_some())),
    };
    let authz_ids: Vec<i64> = authzs.iter().map(|a| a.id).collect();
    Ok(order_response(StatusCode::CREATED, &post.urls, &order, &authz_ids, now))
}

/// A refusal under the directory's rate limits: the client may try again
/// once the window has moved on (at most an hour from now). The limits of
/// an account made with an EAB key count all accounts of that key.
fn rate_limited(directory: &DirectorySettings, limit: RateLimited, per_eab_key: bool) -> AcmeProblem {
    let window = directory.rate_window_seconds;
    let (what, most) = match limit {
        RateLimited::TooManyOrders => ("new orders", directory.orders_per_window),
        RateLimited::TooManyFailures => ("failed validations", directory.failed_validations_per_window),
    };
    let whose = if per_eab_key { "the accounts of this account's EAB key" } else { "this account" };
    let retry_after = u64::try_from(window).unwrap_or(3600).clamp(1, 3600);
    AcmeProblem::rate_limited(
        format!("too many {what}: {whose} may have at most {most} per {window} seconds"),
        retry_after,
    )
}

/// On a directory that authorizes by binding, an account bound to an EAB
/// key needs no challenge: its key's policy, which the identifiers passed,
/// is the authorization. The audit event records which key and policy
/// granted it. Accounts made with no key (before EAB was required) still
/// prove control.
async fn binding_authorization(
    state: &AcmeState,
    directory: &DirectorySettings,
    account: &Account,
    identifiers: &[Identifier],
    now: i64,
) -> Result<Option<NewAuditEvent>, AcmeProblem> {
    let Some(eab_key_id) = account.record.eab_key_id.filter(|_| directory.authorize_by_binding) else {
        return Ok(None);
    };
    let kid = state
        .store()
        .eab_key_kid(eab_key_id)
        .await?
        .ok_or_else(|| AcmeProblem::internal(format!("the EAB key of account {} is not stored", account.id())))?;
    Ok(Some(NewAuditEvent {
        at: now,
        actor: account.actor(),
        action: "acme.order.authorize_by_binding",
        target: String::new(),
        detail: json!({
            "directory": directory.name,
            "eab_kid": kid,
            "policy": account.record.policy,
            "identifiers": identifiers.iter().map(identifier_json).collect::<Vec<_>>(),
        }),
    }))
}

/// The challenge types an identifier gets: wildcards only dns-01 (§7.1.3),
/// IP addresses never dns-01 (RFC 8738 §7).
pub fn challenge_kinds(directory: &DirectorySettings, identifier: &Identifier, wildcard: bool) -> Vec<ChallengeKind> {
    directory
        .challenges
        .iter()
        .copied()
        .filter(|kind| match (identifier, kind) {
            (Identifier::Ip(_), ChallengeKind::Dns01) => false,
            (Identifier::Dns(_), ChallengeKind::Http01 | ChallengeKind::TlsAlpn01) => !wildcard,
            _ => true,
        })
        .collect()
}

/// Parses and judges each identifier; all refusals come back together as
/// subproblems, one per identifier.
fn check_identifiers(
    wire: &[WireIdentifier],
    policy: &Policy,
    directory: &DirectorySettings,
) -> Result<Vec<Identifier>, AcmeProblem> {
    if wire.is_empty() {
        return Err(AcmeProblem::malformed("the order names no identifier"));
    }
    if wire.len() > MAX_IDENTIFIERS {
        return Err(AcmeProblem::malformed(format!("an order may name at most {MAX_IDENTIFIERS} identifiers")));
    }
    let mut identifiers = Vec::new();
    let mut refused = Vec::new();
    for item in wire {
        let parsed = match item.kind.as_str() {
            "dns" if item.value.parse::<std::net::IpAddr>().is_ok() => {
                Err((ProblemType::RejectedIdentifier, "an IP address must use the ip identifier type".to_owned()))
            }
            "dns" => Identifier::dns(&item.value).map_err(|e| (ProblemType::RejectedIdentifier, e.to_string())),
            "ip" => Identifier::ip(&item.value).map_err(|e| (ProblemType::RejectedIdentifier, e.to_string())),
            other => Err((ProblemType::UnsupportedIdentifier, format!("identifier type {other:?} is not supported"))),
        };
        let shown = || Identifier::Dns(item.value.to_ascii_lowercase());
        match parsed {
            Err((kind, detail)) => refused.push(Subproblem { kind, detail, identifier: shown() }),
            Ok(id) if !policy.allows(&id) => refused.push(Subproblem {
                kind: ProblemType::RejectedIdentifier,
                detail: format!("the policy does not allow {id}"),
                identifier: id,
            }),
            Ok(id) => {
                let wildcard = matches!(&id, Identifier::Dns(n) if n.starts_with("*."));
                let bare = match &id {
                    Identifier::Dns(n) => Identifier::Dns(n.trim_start_matches("*.").to_owned()),
                    other => other.clone(),
                };
                if challenge_kinds(directory, &bare, wildcard).is_empty() {
                    refused.push(Subproblem {
                        kind: ProblemType::UnsupportedIdentifier,
                        detail: format!("this directory offers no challenge type that can validate {id}"),
                        identifier: id,
                    });
                } else {
                    identifiers.push(id);
                }
            }
        }
    }
    if let Some(first) = refused.first() {
        let kind = first.kind;
        let detail = if refused.len() == 1 {
            first.detail.clone()
        } else {
            format!("{} identifiers were refused", refused.len())
        };
        return Err(AcmeProblem::new(kind, detail).with_subproblems(refused));
    }
    identifiers.sort();
    identifiers.dedup();
    Ok(identifiers)
}

fn parse_time(field: &str, text: &str) -> Result<i64, AcmeProblem> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(OffsetDateTime::unix_timestamp)
        .map_err(|_| AcmeProblem::malformed(format!("{field} {text:?} is not an RFC 3339 date-time")))
}

/// `notBefore` may lie up to `NOT_BEFORE_HORIZON_SECONDS` ahead (one in the
/// past means now); the lifetime from the start to `notAfter` is capped by
/// the policy.
fn check_validity(
    not_before: Option<i64>,
    not_after: Option<i64>,
    policy: &Policy,
    now: i64,
) -> Result<(), AcmeProblem> {
    if let Some(nb) = not_before
        && nb > now + NOT_BEFORE_HORIZON_SECONDS
    {
        return Err(AcmeProblem::malformed(format!(
            "notBefore may be at most {} ahead",
            crate::authority::format_ttl(time::Duration::seconds(NOT_BEFORE_HORIZON_SECONDS))
        )));
    }
    let start = not_before.map_or(now, |nb| nb.max(now));
    if let Some(na) = not_after {
        if na <= start {
            return Err(AcmeProblem::malformed("notAfter must be later than now and than notBefore"));
        }
        if na - start > policy.max_ttl().whole_seconds() {
            return Err(AcmeProblem::malformed(format!(
                "notAfter is beyond the policy's maximum lifetime of {}",
                crate::authority::describe_ttl(policy.max_ttl())
            )));
        }
    }
    Ok(())
}

/// `replaces` (RFC 9773 §5): a certificate of this account not already replaced.
async fn check_replaces(state: &AcmeState, account: &Account, text: &str) -> Result<Vec<u8>, AcmeProblem> {
    let cert_id = CertId::parse(text)?;
    let certificate = cert_id.find(state).await?;
    let owner = state.store().acme_order_for_certificate(&certificate.serial).await?;
    if owner.is_none_or(|o| o.account_id != account.id()) {
        return Err(AcmeProblem::unauthorized("replaces names a certificate this account did not order"));
    }
    let replaced = state.store().acme_replacements(&certificate.serial).await?;
    if replaced.iter().any(|o| o.status != OrderStatus::Invalid) {
        return Err(AcmeProblem::new(ProblemType::AlreadyReplaced, "the certificate has already been replaced"));
    }
    Ok(certificate.serial)
}
