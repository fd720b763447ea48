//! `/api/v1/policies`: the rules requests are judged by.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authorized, Manage, Read};
use super::pagination::{self, Page};
use super::problem::ApiError;
use crate::authority::{Policy, PolicyRules};
use crate::clock::{from_unix, rfc3339};
use crate::issuance::KeyType;
use crate::policy_issuance::stored_policy;
use crate::storage::{Catalog, NewAuditEvent, PolicyRecord, StoreError};

/// A policy as the API reads and writes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    ip_ranges: Vec<String>,
    #[serde(default)]
    uris: Vec<String>,
    #[serde(default)]
    key_types: Vec<KeyType>,
    max_ttl: String,
    /// Defaults to `max_ttl` when left out; null is refused, as the
    /// contract gives it no meaning.
    #[serde(default, deserialize_with = "present")]
    default_ttl: Option<String>,
    #[serde(default)]
    require_low_s: bool,
}

/// A field that, when sent, must hold a string.
fn present<'de, D: serde::Deserializer<'de>>(value: D) -> Result<Option<String>, D::Error> {
    String::deserialize(value).map(Some)
}

impl PolicyInput {
    fn into_policy(self, name: &str) -> Result<Policy, ApiError> {
        let rules = PolicyRules {
            dns: self.dns,
            ip_ranges: self.ip_ranges,
            uris: self.uris,
            key_types: self.key_types,
            default_ttl: self.default_ttl.unwrap_or_else(|| self.max_ttl.clone()),
            max_ttl: self.max_ttl,
            require_low_s: self.require_low_s,
        };
        Ok(Policy::new(name, rules)?)
    }
}

#[derive(Debug, Serialize)]
pub struct PolicyView {
    name: String,
    #[serde(flatten)]
    rules: PolicyRules,
    created_at: String,
    updated_at: String,
}

impl PolicyView {
    fn from_record(record: PolicyRecord) -> Result<Self, ApiError> {
        let rules = parse_rules(&record)?;
        Ok(Self {
            name: record.name,
            rules,
            created_at: rfc3339(from_unix(record.created_at)),
            updated_at: rfc3339(from_unix(record.updated_at)),
        })
    }
}

fn parse_rules(record: &PolicyRecord) -> Result<PolicyRules, ApiError> {
    serde_json::from_str(&record.rules)
        .map_err(|e| ApiError::Internal(format!("stored rules of policy {:?}: {e}", record.name)))
}

/// The named policy, ready to judge a request.
pub async fn load_policy(catalog: &Catalog, name: &str) -> Result<Policy, ApiError> {
    Ok(stored_policy(catalog, name).await?)
}

fn rules_text(policy: &Policy) -> Result<String, ApiError> {
    serde_json::to_string(policy.rules()).map_err(|e| ApiError::Internal(e.to_string()))
}

fn event(actor: String, action: &'static str, name: &str, at: i64, detail: serde_json::Value) -> NewAuditEvent {
    NewAuditEvent { at, actor, action, target: name.to_owned(), detail }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/policies`
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<PolicyView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::after(query.cursor.as_deref(), |name| Some(name.to_owned()))?;
    let rows = state.store.list_policies(after.as_deref(), limit + 1).await?;
    let page = pagination::page(rows, limit, |r| r.name.clone(), PolicyView::from_record);
    let items = page.items.into_iter().collect::<Result<_, _>>()?;
    Ok(axum::Json(Page { items, next_cursor: page.next_cursor }))
}

/// `POST /api/v1/policies`
pub async fn create(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiJson(body): ApiJson<PolicyInput>,
) -> Result<Response, ApiError> {
    let name = body.name.clone().ok_or_else(|| ApiError::Malformed("name is required".into()))?;
    let policy = body.into_policy(&name)?;
    let text = rules_text(&policy)?;
    let now = state.clock.unix();
    let audit =
        event(caller.actor(), "policy.create", &name, now, serde_json::to_value(policy.rules()).unwrap_or_default());
    let record = state.store.insert_policy(&name, &text, now, &audit).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Conflict(format!("a policy named {name:?} already exists")),
        other => other.into(),
    })?;
    let location = format!("/api/v1/policies/{name}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(PolicyView::from_record(record)?))
        .into_response())
}

/// `GET /api/v1/policies/{name}`
pub async fn get(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiPath(name): ApiPath<String>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    let record = state.store.policy(&name).await.map_err(|e| missing(&name, e))?;
    Ok(axum::Json(PolicyView::from_record(record)?))
}

/// `PUT /api/v1/policies/{name}`
pub async fn update(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PolicyInput>,
) -> Result<axum::Json<PolicyView>, ApiError> {
    if let Some(body_name) = &body.name
        && body_name != &name
    {
        return Err(ApiError::Malformed(format!("name {body_name:?} in the body does not match the URL ({name:?})")));
    }
    let policy = body.into_policy(&name)?;
    let text = rules_text(&policy)?;
    let now = state.clock.unix();
    let audit =
        event(caller.actor(), "policy.update", &name, now, serde_json::to_value(policy.rules()).unwrap_or_default());
    let record = state.store.update_policy(&name, &text, now, &audit).await.map_err(|e| missing(&name, e))?;
    Ok(axum::Json(PolicyView::from_record(record)?))
}

/// `DELETE /api/v1/policies/{name}`: refused while live tokens are bound to it.
pub async fn delete(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.unix();
    let audit = event(caller.actor(), "policy.delete", &name, now, serde_json::json!({}));
    state.store.delete_policy(&name, &audit).await.map_err(|e| match e {
        StoreError::Conflict(why) => {
            ApiError::Conflict(format!("policy {name:?} cannot be deleted: {why}; rebind or revoke them first"))
        }
        other => missing(&name, other),
    })?;
    Ok(StatusCode::NO_CONTENT)
}

fn missing(name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound(format!("no policy named {name:?}")),
        other => other.into(),
    }
}
