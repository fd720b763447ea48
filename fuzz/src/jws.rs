//! ACME request bodies (RFC 8555 §6.2): the flattened JWS, its JWK, and
//! the EAB binding inside a newAccount payload (§7.3.4), as
//! `acme::extract` and `acme::eab` read them.

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value, json};
use tessera::acme::jws::{Jwk, Jws, JwsError, KeyRef};

use crate::test_keys::{AccountKey, EAB_SECRET, flattened, mac};

/// Raw request bodies: parsed, verified with the key they embed, and their
/// EAB binding checked, whatever they hold.
pub fn jws(data: &[u8]) {
    if let Ok(jws) = Jws::parse(data) {
        exercise(&jws);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(key) = Jwk::from_stored(text)
    {
        stored_form_reads_back(&key);
    }
}

fn exercise(jws: &Jws) {
    let _ = jws.algorithm();
    if let KeyRef::Jwk(key) = &jws.header.key {
        let _ = jws.verify(key);
        stored_form_reads_back(key);
    }
    let _ = jws.verify_mac(EAB_SECRET);
    let _ = jws.is_post_as_get();
    if let Ok(payload) = jws.payload_json::<Value>()
        && let Some(binding) = payload.get("externalAccountBinding")
    {
        let _ = eab_binding(binding);
    }
}

/// An account key is stored as `to_json` text and read back with `from_stored`.
fn stored_form_reads_back(key: &Jwk) {
    let stored = key.to_json().to_string();
    assert_eq!(Jwk::from_stored(&stored).as_ref(), Ok(key), "stored JWK {stored}");
    let _ = key.thumbprint();
}

/// The binding's own checks, in `acme::eab::verify_binding`'s order (its
/// key lookup aside): the inner JWS, its MAC, the key it binds.
fn eab_binding(binding: &Value) -> Result<Jwk, JwsError> {
    let inner = Jws::from_value(binding)?;
    inner.verify_mac(EAB_SECRET)?;
    let bound: Value = inner.payload_json()?;
    Jwk::from_json(&bound)
}

/// A request built from fuzzed fields and signed with a fixed account key.
#[derive(Debug, Arbitrary)]
struct SignedRequest {
    key: AccountKey,
    /// Names the account by URL instead of embedding its key.
    kid: Option<String>,
    url: String,
    nonce: Option<String>,
    /// More protected header members (the checked ones are set after them).
    extra_header: Vec<(String, String)>,
    payload: Payload,
    /// Flips one bit of the signature.
    tamper: Option<u16>,
}

#[derive(Debug, Arbitrary)]
enum Payload {
    /// POST-as-GET.
    Empty,
    Text(String),
    Object(Vec<(String, String)>),
    /// A newAccount payload with an EAB binding.
    NewAccount(Binding),
}

#[derive(Debug, Arbitrary)]
struct Binding {
    mac: MacAlg,
    kid: String,
    url: String,
    nonce: Option<String>,
    /// Binds the other account key instead of the one signing.
    other_key: bool,
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum MacAlg {
    Hs256,
    Hs384,
    Hs512,
}

impl MacAlg {
    fn name(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::Hs384 => "HS384",
            Self::Hs512 => "HS512",
        }
    }
}

const CHECKED_MEMBERS: &[&str] = &["alg", "jwk", "kid", "nonce", "url"];

/// Requests signed with the key they name verify with that key, and not
/// once a bit of the signature is flipped; a binding MACed with the EAB key
/// verifies and gives back the key it binds.
pub fn jws_signed(data: &[u8]) {
    let Ok(request) = SignedRequest::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let key = request.key;
    let mut header = Map::new();
    for (name, value) in &request.extra_header {
        if !CHECKED_MEMBERS.contains(&name.as_str()) {
            header.insert(name.clone(), Value::String(value.clone()));
        }
    }
    header.insert("alg".into(), json!(key.alg()));
    header.insert("url".into(), json!(request.url));
    if let Some(nonce) = &request.nonce {
        header.insert("nonce".into(), json!(nonce));
    }
    match &request.kid {
        Some(kid) => header.insert("kid".into(), json!(kid)),
        None => header.insert("jwk".into(), key.jwk()),
    };
    let payload = match &request.payload {
        Payload::Empty => Vec::new(),
        Payload::Text(text) => text.as_bytes().to_vec(),
        Payload::Object(members) => {
            Value::Object(members.iter().map(|(k, v)| (k.clone(), json!(v))).collect()).to_string().into_bytes()
        }
        Payload::NewAccount(binding) => new_account(binding, key).to_string().into_bytes(),
    };
    let mut body = flattened(&Value::Object(header), &payload, |m| key.sign(m));
    if let Some(bit) = request.tamper {
        flip_signature_bit(&mut body, bit);
    }
    let jws = Jws::parse(body.to_string().as_bytes()).expect("a JWS this target built parses");
    let account_key = Jwk::from_json(&key.jwk()).expect("the account key is a valid JWK");
    match &jws.header.key {
        KeyRef::Jwk(embedded) => assert_eq!(embedded, &account_key),
        KeyRef::Kid(kid) => assert_eq!(Some(kid), request.kid.as_ref()),
    }
    let verified = jws.verify(&account_key);
    if request.tamper.is_some() {
        assert_eq!(verified, Err(JwsError::BadSignature), "a tampered signature verified");
    } else {
        assert_eq!(verified, Ok(()), "a request signed with its key does not verify");
    }
    assert_eq!(jws.is_post_as_get(), payload.is_empty());
    if let Payload::NewAccount(binding) = &request.payload {
        let payload: Value = jws.payload_json().expect("the newAccount payload is JSON");
        let bound = eab_binding(&payload["externalAccountBinding"]).expect("a binding MACed with the EAB key verifies");
        let expected = if binding.other_key { other(key) } else { key };
        assert_eq!(bound, Jwk::from_json(&expected.jwk()).expect("a valid JWK"));
    }
}

fn other(key: AccountKey) -> AccountKey {
    match key {
        AccountKey::Es256 => AccountKey::EdDsa,
        AccountKey::EdDsa => AccountKey::Es256,
    }
}

fn new_account(binding: &Binding, key: AccountKey) -> Value {
    let mut header = json!({"alg": binding.mac.name(), "kid": binding.kid, "url": binding.url});
    if let Some(nonce) = &binding.nonce {
        header["nonce"] = json!(nonce);
    }
    let bound = if binding.other_key { other(key) } else { key };
    let inner = flattened(&header, bound.jwk().to_string().as_bytes(), |m| mac(binding.mac.name(), m));
    json!({"termsOfServiceAgreed": true, "externalAccountBinding": inner})
}

fn flip_signature_bit(body: &mut Value, bit: u16) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let Some(text) = body["signature"].as_str() else { return };
    let mut signature = URL_SAFE_NO_PAD.decode(text).expect("the target's own base64url");
    let at = usize::from(bit) % (signature.len() * 8);
    signature[at / 8] ^= 1 << (at % 8);
    body["signature"] = json!(URL_SAFE_NO_PAD.encode(signature));
}
