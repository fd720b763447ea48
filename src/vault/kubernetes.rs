//! Kubernetes login (`POST /v1/auth/{path}/login`, `{"role", "jwt"}`): the
//! jwt is a service-account token, checked against the configured signing
//! keys of the cluster's issuer, its `iss`, `exp` and `nbf`, the role's
//! audience and its bound service-account names and namespaces. A login
//! mints a short-lived Tessera token (scope `issuer`) bound to the role's
//! policies. Every login and refusal is audited; no jwt or token is logged.

use axum::Json;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::VaultState;
use super::error::VaultError;
use super::grant::{Grant, mint, refuse};
use crate::acme::jws::Jwk;
use crate::config::{KubernetesAuthConfig, KubernetesRoleConfig};

const METHOD: &str = "kubernetes";

/// Seconds of clock skew allowed on `nbf` and `exp`.
const LEEWAY: i64 = 60;

/// The login settings with the issuer's keys read once at start.
#[derive(Debug)]
pub struct KubernetesAuth {
    pub(super) config: KubernetesAuthConfig,
    /// Each key with its `kid`, if the JWKS gave one.
    keys: Vec<(Option<String>, Jwk)>,
}

impl KubernetesAuth {
    /// Reads the JWKS (file or inline); a key Tessera cannot use is an error.
    pub fn load(config: &KubernetesAuthConfig) -> Result<Self, String> {
        let text = match (&config.jwks, &config.jwks_file) {
            (Some(inline), _) => inline.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("vault.kubernetes.jwks_file {}: {e}", path.display()))?,
            (None, None) => return Err("vault.kubernetes: jwks_file or jwks is required".into()),
        };
        let jwks: Value = serde_json::from_str(&text).map_err(|e| format!("vault.kubernetes JWKS: {e}"))?;
        let keys = jwks["keys"]
            .as_array()
            .ok_or("vault.kubernetes JWKS has no \"keys\" array")?
            .iter()
            .map(|key| {
                let jwk = Jwk::from_json(key).map_err(|e| format!("vault.kubernetes JWKS key: {e}"))?;
                Ok((key["kid"].as_str().map(str::to_owned), jwk))
            })
            .collect::<Result<Vec<_>, String>>()?;
        if keys.is_empty() {
            return Err("vault.kubernetes JWKS holds no key".into());
        }
        Ok(Self { config: config.clone(), keys })
    }
}

/// Why a login is refused; the client hears only "permission denied" or
/// the unknown role, the audit log the reason.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the jwt is not a signed JWT")]
    Malformed,
    #[error("no configured key verifies the jwt")]
    BadSignature,
    #[error("the jwt's issuer is not the configured one")]
    WrongIssuer,
    #[error("the jwt has expired or is not yet valid")]
    Expired,
    #[error("the jwt lacks the role's audience")]
    WrongAudience,
    #[error("the service account is not bound to the role")]
    NotBound,
}

#[derive(Debug, Deserialize)]
struct LoginRequest {
    role: String,
    jwt: String,
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(default)]
    aud: Audience,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::None => false,
            Self::One(one) => one == wanted,
            Self::Many(many) => many.iter().any(|a| a == wanted),
        }
    }
}

/// A Kubernetes login under `auth`: the minted token's grant, or why not.
pub async fn login(state: &VaultState, auth: &KubernetesAuth, body: &[u8]) -> Result<Json<Value>, VaultError> {
    let request: LoginRequest = serde_json::from_slice(body)
        .map_err(|_| VaultError::BadRequest("the body must be {\"role\": \"...\", \"jwt\": \"...\"}".into()))?;
    let Some(role) = auth.config.roles.iter().find(|r| r.name == request.role) else {
        refuse(state, METHOD, &request.role, "unknown role").await?;
        return Err(VaultError::BadRequest(format!("invalid role name {:?}", request.role)));
    };
    let (namespace, account) = match check(auth, role, &request.jwt, state.clock.unix()) {
        Ok(identity) => identity,
        Err(refusal) => {
            refuse(state, METHOD, &role.name, &refusal.to_string()).await?;
            return Err(VaultError::PermissionDenied);
        }
    };
    let grant = Grant {
        method: METHOD,
        role: &role.name,
        subject: format!("{namespace}/{account}"),
        policies: role.policies.clone(),
        ttl: auth.config.token_ttl.duration().whole_seconds(),
        metadata: json!({ "role": role.name, "service_account_name": account, "service_account_namespace": namespace }),
    };
    mint(state, grant).await
}

/// The jwt's (namespace, service account), if it passes every check.
fn check(auth: &KubernetesAuth, role: &KubernetesRoleConfig, jwt: &str, now: i64) -> Result<(String, String), Refusal> {
    let mut parts = jwt.trim().split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::Malformed);
    let header_json: Value = serde_json::from_slice(&decode(header)?).map_err(|_| Refusal::Malformed)?;
    let alg = header_json["alg"].as_str().ok_or(Refusal::Malformed)?;
    let kid = header_json["kid"].as_str();
    let signing_input = format!("{header}.{payload}");
    let signature = decode(signature)?;
    let verified = auth
        .keys
        .iter()
        .filter(|(key_id, _)| kid.is_none() || key_id.is_none() || key_id.as_deref() == kid)
        .any(|(_, key)| key.verify_named(alg, signing_input.as_bytes(), &signature).is_ok());
    if !verified {
        return Err(Refusal::BadSignature);
    }
    let claims: Claims = serde_json::from_slice(&decode(payload)?).map_err(|_| Refusal::Malformed)?;
    if claims.iss.as_deref() != Some(auth.config.issuer.as_str()) {
        return Err(Refusal::WrongIssuer);
    }
    let live = claims.exp.is_some_and(|exp| exp + LEEWAY > now) && claims.nbf.is_none_or(|nbf| nbf - LEEWAY <= now);
    if !live {
        return Err(Refusal::Expired);
    }
    if let Some(audience) = &role.audience
        && !claims.aud.contains(audience)
    {
        return Err(Refusal::WrongAudience);
    }
    let subject = claims.sub.unwrap_or_default();
    let mut fields = subject.strip_prefix("system:serviceaccount:").ok_or(Refusal::NotBound)?.splitn(2, ':');
    let (Some(namespace), Some(account)) = (fields.next(), fields.next()) else { return Err(Refusal::NotBound) };
    let bound = |list: &[String], value: &str| list.iter().any(|b| b == "*" || b == value);
    if !bound(&role.bound_service_account_namespaces, namespace) || !bound(&role.bound_service_account_names, account) {
        return Err(Refusal::NotBound);
    }
    Ok((namespace.to_owned(), account.to_owned()))
}
