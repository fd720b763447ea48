//! `pkcs11:` keys (RFC 7512) in an HSM, through `cryptoki`. Only standard
//! PKCS#11 calls are used (C_FindObjects, C_Sign with CKM_ECDSA on a digest,
//! C_GenerateKeyPair with CKM_EC_KEY_PAIR_GEN), so SoftHSM2, a network HSM or
//! CloudHSM's library differ only by the configured module path.
//!
//! Each key keeps a small pool of logged-in sessions (a `Session` is not
//! `Sync`); calls run on the blocking thread pool. A session that fails is
//! dropped; a device-level failure starts the library over, so Tessera
//! recovers by itself when the HSM comes back.

mod module;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cryptoki::error::{Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::SecretString;
use tokio::sync::Semaphore;

use super::ecdsa::{fixed_to_der, unwrap_ec_point};
use super::{KeyIdentity, KeyUri, Pkcs11Uri, Signer, SignerError, SigningAlgorithm};
use crate::keys::Pkcs11Config;
pub use module::Module;

/// A private key on a PKCS#11 token.
pub struct Pkcs11Signer {
    inner: Arc<Inner>,
    in_flight: Semaphore,
}

struct Inner {
    identity: KeyIdentity,
    name: String,
    selector: Pkcs11Uri,
    module: Arc<Module>,
    pin: SecretString,
    idle: Mutex<Vec<PooledSession>>,
}

/// A logged-in session with the key's handle found in it.
struct PooledSession {
    session: Session,
    key: ObjectHandle,
    generation: u64,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("uri", &self.inner.name)
            .field("module", &self.inner.module.path())
            .field("algorithm", &self.inner.identity.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Finds the key the URI names and reads its public key from the token.
    pub async fn open(uri: KeyUri, selector: Pkcs11Uri, config: &Pkcs11Config) -> Result<Self, SignerError> {
        Self::open_or_generate(uri, selector, config, None).await
    }

    /// As [`open`](Self::open), but generates the key pair on the token when
    /// no key matches (for `tessera init`).
    pub async fn open_or_generate(
        uri: KeyUri,
        selector: Pkcs11Uri,
        config: &Pkcs11Config,
        generate: Option<SigningAlgorithm>,
    ) -> Result<Self, SignerError> {
        let name = uri.to_string();
        let module_path = config.module.clone().ok_or_else(|| SignerError::Unavailable {
            key: name.clone(),
            reason: "keys.pkcs11.module is not configured".into(),
        })?;
        let pin = config.pin(&name)?;
        let sessions = config.sessions.max(1);
        let found = tokio::task::spawn_blocking(move || {
            let module = Module::load(&module_path).map_err(|e| pkcs11_error(&name, "loading the module", &e))?;
            let (algorithm, spki) = locate(&name, &selector, &module, &pin, generate)?;
            Ok::<_, SignerError>(Inner {
                identity: KeyIdentity { uri, algorithm, spki },
                name,
                selector,
                module,
                pin,
                idle: Mutex::new(Vec::new()),
            })
        })
        .await
        .map_err(|e| SignerError::Unavailable { key: "pkcs11:".into(), reason: e.to_string() })??;
        Ok(Self { inner: Arc::new(found), in_flight: Semaphore::new(sessions) })
    }
}

/// Finds (or makes) the key and returns its algorithm and SPKI.
fn locate(
    name: &str,
    selector: &Pkcs11Uri,
    module: &Module,
    pin: &SecretString,
    generate: Option<SigningAlgorithm>,
) -> Result<(SigningAlgorithm, Vec<u8>), SignerError> {
    let (context, _) = module.context();
    let slot = find_slot(name, selector, &context)?;
    let session = context.open_rw_session(slot).map_err(|e| pkcs11_error(name, "opening a session", &e))?;
    login(name, &session, pin)?;
    match find_one(name, &session, selector, ObjectClass::PUBLIC_KEY) {
        Err(SignerError::KeyNotFound { .. }) if generate.is_some() => {
            let algorithm = generate.unwrap_or(SigningAlgorithm::EcdsaP256Sha256);
            generate_pair(name, &session, selector, algorithm)?;
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    find_one(name, &session, selector, ObjectClass::PRIVATE_KEY)?;
    let public = find_one(name, &session, selector, ObjectClass::PUBLIC_KEY)?;
    read_public_key(name, &session, public)
}

fn find_slot(name: &str, selector: &Pkcs11Uri, context: &cryptoki::context::Pkcs11) -> Result<Slot, SignerError> {
    let slots = context.get_slots_with_token().map_err(|e| pkcs11_error(name, "listing slots", &e))?;
    for slot in slots {
        let Ok(info) = context.get_token_info(slot) else { continue };
        if selector.token.as_deref().is_none_or(|label| info.label().trim_end() == label) {
            return Ok(slot);
        }
    }
    Err(SignerError::KeyNotFound {
        key: name.into(),
        reason: match &selector.token {
            Some(label) => format!("no token labelled {label:?} is present"),
            None => "no token is present".into(),
        },
    })
}

fn login(name: &str, session: &Session, pin: &SecretString) -> Result<(), SignerError> {
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(Error::Pkcs11(RvError::PinIncorrect | RvError::PinInvalid | RvError::PinLenRange, _)) => {
            Err(SignerError::Rejected { key: name.into(), reason: "the token refused the configured PIN".into() })
        }
        Err(Error::Pkcs11(RvError::PinLocked, _)) => {
            Err(SignerError::Rejected { key: name.into(), reason: "the token's user PIN is locked".into() })
        }
        Err(e) => Err(pkcs11_error(name, "logging in", &e)),
    }
}

fn template(selector: &Pkcs11Uri, class: ObjectClass) -> Vec<Attribute> {
    let mut template = vec![Attribute::Class(class), Attribute::KeyType(KeyType::EC)];
    if let Some(label) = &selector.object {
        template.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &selector.id {
        template.push(Attribute::Id(id.clone()));
    }
    template
}

fn find_one(
    name: &str,
    session: &Session,
    selector: &Pkcs11Uri,
    class: ObjectClass,
) -> Result<ObjectHandle, SignerError> {
    let found =
        session.find_objects(&template(selector, class)).map_err(|e| pkcs11_error(name, "finding the key", &e))?;
    let what = if class == ObjectClass::PRIVATE_KEY { "private" } else { "public" };
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(SignerError::KeyNotFound { key: name.into(), reason: format!("no EC {what} key matches") }),
        _ => Err(SignerError::Rejected {
            key: name.into(),
            reason: format!("{} EC {what} keys match; name one by id", found.len()),
        }),
    }
}

fn generate_pair(
    name: &str,
    session: &Session,
    selector: &Pkcs11Uri,
    algorithm: SigningAlgorithm,
) -> Result<(), SignerError> {
    let id = match &selector.id {
        Some(id) => id.clone(),
        None => {
            let mut id = vec![0u8; 16];
            aws_lc_rs::rand::fill(&mut id)
                .map_err(|_| SignerError::Unavailable { key: name.into(), reason: "no randomness".into() })?;
            id
        }
    };
    let label = selector.object.clone().unwrap_or_else(|| hex::encode(&id)).into_bytes();
    let public = [
        Attribute::Token(true),
        Attribute::Verify(true),
        Attribute::EcParams(algorithm.ec_params().to_vec()),
        Attribute::Label(label.clone()),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Label(label),
        Attribute::Id(id),
    ];
    session
        .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
        .map_err(|e| pkcs11_error(name, "generating the key pair", &e))?;
    tracing::info!(key = name, algorithm = %algorithm, "generated a key pair on the token");
    Ok(())
}

fn read_public_key(
    name: &str,
    session: &Session,
    public: ObjectHandle,
) -> Result<(SigningAlgorithm, Vec<u8>), SignerError> {
    let attributes = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| pkcs11_error(name, "reading the public key", &e))?;
    let (mut params, mut point) = (None, None);
    for attribute in attributes {
        match attribute {
            Attribute::EcParams(v) => params = Some(v),
            Attribute::EcPoint(v) => point = Some(v),
            _ => {}
        }
    }
    let unsupported = |reason: &str| SignerError::Unsupported { key: name.into(), reason: reason.into() };
    let algorithm = params
        .as_deref()
        .and_then(SigningAlgorithm::from_ec_params)
        .ok_or_else(|| unsupported("the key is not on P-256 or P-384"))?;
    let spki = point
        .and_then(|p| unwrap_ec_point(algorithm, &p))
        .and_then(|p| algorithm.spki_from_point(&p))
        .ok_or_else(|| unsupported("the token returned an EC point Tessera cannot read"))?;
    Ok((algorithm, spki))
}

impl Inner {
    /// A pooled session of the current library generation, or a new one.
    fn checkout(&self) -> Result<PooledSession, SignerError> {
        let (context, generation) = self.module.context();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            idle.retain(|s| s.generation == generation);
            if let Some(session) = idle.pop() {
                return Ok(session);
            }
        }
        let opened = (|| {
            let slot = find_slot(&self.name, &self.selector, &context)?;
            let session =
                context.open_ro_session(slot).map_err(|e| pkcs11_error(&self.name, "opening a session", &e))?;
            login(&self.name, &session, &self.pin)?;
            let key = find_one(&self.name, &session, &self.selector, ObjectClass::PRIVATE_KEY)?;
            Ok(PooledSession { session, key, generation })
        })();
        match opened {
            // The key was found at start, so a token or key missing now is an
            // outage; it comes back only after the library starts over.
            Err(SignerError::Unavailable { reason, .. } | SignerError::KeyNotFound { reason, .. }) => {
                let _ = self.module.reinitialize(generation);
                Err(SignerError::Unavailable { key: self.name.clone(), reason })
            }
            other => other,
        }
    }

    fn checkin(&self, session: PooledSession) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).push(session);
    }

    /// Signs a digest. A lost session or device gets one more try, on a new
    /// session of a library started over, so a device that came back serves
    /// the very next request.
    fn sign_digest(&self, digest: &[u8]) -> Result<Vec<u8>, SignerError> {
        let mut retried = false;
        loop {
            let pooled = match self.checkout() {
                Ok(pooled) => pooled,
                Err(SignerError::Unavailable { .. }) if !retried => {
                    retried = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match pooled.session.sign(&Mechanism::Ecdsa, pooled.key, digest) {
                Ok(raw) => {
                    self.checkin(pooled);
                    return fixed_to_der(&raw).ok_or_else(|| SignerError::Rejected {
                        key: self.name.clone(),
                        reason: "the token returned a malformed signature".into(),
                    });
                }
                Err(e) => {
                    let generation = pooled.generation;
                    drop(pooled);
                    if module::is_device_lost(&e) {
                        let _ = self.module.reinitialize(generation);
                    }
                    if (module::is_session_lost(&e) || module::is_device_lost(&e)) && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(pkcs11_error(&self.name, "signing", &e));
                }
            }
        }
    }
}

/// Maps a PKCS#11 failure; what the device may recover from is retryable.
fn pkcs11_error(name: &str, doing: &str, error: &Error) -> SignerError {
    let reason = format!("{doing}: {error}");
    match error {
        Error::LibraryLoading(_) | Error::MissingSymbol(_) => SignerError::Unavailable { key: name.into(), reason },
        e if module::is_device_lost(e) || module::is_session_lost(e) => {
            SignerError::Unavailable { key: name.into(), reason }
        }
        Error::Pkcs11(
            RvError::DeviceMemory | RvError::FunctionFailed | RvError::SessionCount | RvError::OperationActive,
            _,
        ) => SignerError::Unavailable { key: name.into(), reason },
        Error::Pkcs11(
            RvError::MechanismInvalid | RvError::KeyTypeInconsistent | RvError::KeyFunctionNotPermitted,
            _,
        ) => SignerError::Unsupported { key: name.into(), reason },
        _ => SignerError::Rejected { key: name.into(), reason },
    }
}

#[async_trait]
impl Signer for Pkcs11Signer {
    fn identity(&self) -> &KeyIdentity {
        &self.inner.identity
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        let digest = self.inner.identity.algorithm.digest(message);
        let _permit = self
            .in_flight
            .acquire()
            .await
            .map_err(|_| SignerError::Unavailable { key: self.inner.name.clone(), reason: "shutting down".into() })?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.sign_digest(&digest))
            .await
            .map_err(|e| SignerError::Unavailable { key: self.inner.name.clone(), reason: e.to_string() })?
    }
}
