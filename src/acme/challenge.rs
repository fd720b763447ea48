//! Challenges (RFC 8555 §7.5.1, §8): the client says it is ready, Tessera
//! validates in the background (http-01, dns-01, tls-alpn-01) and records
//! the outcome on the challenge, its authorization and its order.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::authz::{challenge_view, owned_authz};
use super::extract::SignedByAccount;
use super::jws::{Jwk, key_authorization};
use super::problem::AcmeProblem;
use super::{AcmeState, parse_id};
use crate::authority::Policy;
use crate::issuance::Identifier;
use crate::storage::{AcmeChallengeRecord, AuthzKey, ChallengeStatus, StalledChallenge, StoreError, ValidationOutcome};
use crate::validation::{ChallengeKind, ValidationError};

/// Attempts per validation; connection and DNS failures are retried, since
/// clients that skip their own self-check (cert-manager's
/// `waitInsteadOfSelfCheck`) rely on the server to wait a little.
const ATTEMPTS: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_secs(1);
/// A challenge processing for longer than this was left by a node that
/// stopped: every attempt with its timeout and pause ends well within it
/// (and should one not, its second run records nothing, see
/// `AcmeStore::record_acme_validations`).
const STALLED_AFTER_SECONDS: i64 = 300;
/// How often a node looks for stalled challenges (and once as it starts).
const RESUME_EVERY: Duration = Duration::from_secs(60);
/// Stalled challenges taken up per look.
const RESUME_AT_MOST: i64 = 100;

/// `POST /acme/{dir}/chall/{id}`: `{}` starts validation; POST-as-GET reads.
pub async fn challenge(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let SignedByAccount { post, account } = request;
    let id = parse_id(&id)?;
    let (authz, challenges) = owned_authz(&state, &account, AuthzKey::Challenge(id)).await?;
    let mut challenge =
        challenges.into_iter().find(|c| c.id == id).ok_or_else(|| AcmeProblem::not_found("no such challenge"))?;
    if !post.jws.is_post_as_get() {
        let _: Value = post.payload()?;
        if authz.expires < state.now() {
            return Err(AcmeProblem::malformed("the authorization has expired"));
        }
        let policy = state.policy(&account.record.policy).await?;
        if state.inner.challenge_starts.get(challenge.id).await? {
            challenge.status = ChallengeStatus::Processing;
            let identifier = Identifier::from_tagged(&authz.identifier)
                .map_err(|e| AcmeProblem::internal(format!("stored identifier: {e}")))?;
            let kind = ChallengeKind::parse(&challenge.kind)
                .ok_or_else(|| AcmeProblem::internal(format!("stored challenge type {:?}", challenge.kind)))?;
            let job =
                ValidationJob { challenge: challenge.clone(), kind, identifier, key: account.key.clone(), policy };
            tokio::spawn(validate(state.clone(), job));
        }
    }
    let mut response = (StatusCode::OK, axum::Json(challenge_view(&post.urls, &challenge))).into_response();
    let headers = response.headers_mut();
    if let Ok(up) = HeaderValue::from_str(&format!("<{}>;rel=\"up\"", post.urls.authz(authz.id))) {
        headers.append(header::LINK, up);
    }
    if challenge.status == ChallengeStatus::Processing {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    }
    Ok(response)
}

/// One challenge to validate, with what bounds it: the account's key and
/// the account's policy (validation reaches nothing the policy does not
/// allow).
struct ValidationJob {
    challenge: AcmeChallengeRecord,
    kind: ChallengeKind,
    identifier: Identifier,
    key: Jwk,
    policy: Policy,
}

/// Runs the validation and records its outcome; failures of the database
/// here leave the challenge processing, which the client sees and reports.
async fn validate(state: AcmeState, job: ValidationJob) {
    let ValidationJob { challenge, kind, identifier, key, policy } = job;
    let key_auth = key_authorization(&challenge.token, &key);
    let validator = &state.inner.validator;
    let mut attempt = 1;
    let outcome = loop {
        match validator.validate(kind, &identifier, &challenge.token, &key_auth, &policy).await {
            Ok(()) => break ValidationOutcome::Valid,
            Err(e @ (ValidationError::Connection(_) | ValidationError::Dns(_))) if attempt < ATTEMPTS => {
                tracing::debug!(challenge = challenge.id, error = %e, attempt, "validation failed; retrying");
                tokio::time::sleep(RETRY_DELAY * attempt).await;
                attempt += 1;
            }
            Err(e) => break ValidationOutcome::Invalid(AcmeProblem::from(e).to_json().to_string()),
        }
    };
    tracing::info!(challenge = challenge.id, kind = kind.as_str(), %identifier, valid = matches!(outcome, ValidationOutcome::Valid), "ACME validation");
    if let Err(e) = state.inner.validation_outcomes.get((challenge.id, outcome, state.now())).await {
        tracing::error!(challenge = challenge.id, error = %e, "could not record a validation outcome");
    }
}

/// Background upkeep: takes up the validations a stopped node left
/// processing, so their authorizations and orders still settle.
pub async fn resume_stalled(state: AcmeState) {
    let mut interval = tokio::time::interval(RESUME_EVERY);
    loop {
        interval.tick().await;
        if let Err(e) = resume_stalled_once(&state).await {
            tracing::warn!(error = %e, "could not look for stalled ACME validations");
        }
    }
}

async fn resume_stalled_once(state: &AcmeState) -> Result<(), StoreError> {
    let now = state.now();
    for stalled in state.store().stalled_acme_challenges(now - STALLED_AFTER_SECONDS, now, RESUME_AT_MOST).await? {
        if !state.store().claim_stalled_acme_challenge(&stalled, now).await? {
            continue;
        }
        let StalledChallenge { challenge, identifier, jwk, policy, .. } = stalled;
        let policy = match state.policy(&policy).await {
            Ok(policy) => Some(policy),
            // Taken up again at a later look.
            Err(problem) if problem.status == StatusCode::SERVICE_UNAVAILABLE => continue,
            Err(_) => None,
        };
        let parsed = (
            Identifier::from_tagged(&identifier).ok(),
            ChallengeKind::parse(&challenge.kind),
            Jwk::from_stored(&jwk).ok(),
            policy,
        );
        let (Some(identifier), Some(kind), Some(key), Some(policy)) = parsed else {
            // Settled as failed, or it would stall again at every look.
            tracing::error!(
                challenge = challenge.id,
                "a stalled challenge's stored identifier, type, key or policy does not parse"
            );
            let problem =
                AcmeProblem::internal("the challenge's stored identifier, type, account key or policy does not parse");
            let outcome = ValidationOutcome::Invalid(problem.to_json().to_string());
            state.inner.validation_outcomes.get((challenge.id, outcome, now)).await?;
            continue;
        };
        tracing::info!(challenge = challenge.id, %identifier, "resuming a validation a stopped node left unfinished");
        tokio::spawn(validate(state.clone(), ValidationJob { challenge, kind, identifier, key, policy }));
    }
    Ok(())
}
