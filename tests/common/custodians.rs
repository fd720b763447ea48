//! The key custodians the tests can reach: a SoftHSM2 token (also served
//! over p11-kit's RPC, as a network HSM is) and a KMS emulator, both set up
//! by `hsm-sim/setup.sh` (scripts/test.sh sources it and exports where they
//! are). A custody test whose custodian is not set up is skipped, saying
//! why, unless the custodian is required: in a CI run (`CI=true`) every
//! custodian is, whatever else the environment says; elsewhere
//! `TESSERA_TEST_CUSTODIANS=required` requires them all, except the KMS
//! emulator when `TESSERA_TEST_SKIP_KMS=1` left it out.

use std::path::PathBuf;

/// The SoftHSM2 token hsm-sim made (SOFTHSM2_CONF is in the environment).
#[derive(Debug, Clone)]
pub struct Token {
    pub module: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
}

/// The same token behind `p11-kit server`: the client module Tessera loads
/// and the socket the server listens on.
#[derive(Debug, Clone)]
pub struct RemoteToken {
    pub client_module: PathBuf,
    pub socket: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Custodian {
    SoftHsm,
    P11KitRemote,
    Kms,
}

impl Custodian {
    fn what(self) -> &'static str {
        match self {
            Self::SoftHsm => "the SoftHSM2 token",
            Self::P11KitRemote => "p11-kit's client module and server socket",
            Self::Kms => "the KMS emulator",
        }
    }

    fn is_required(self) -> bool {
        let all_required = var("TESSERA_TEST_CUSTODIANS").as_deref() == Some("required");
        let kms_left_out = var("TESSERA_TEST_SKIP_KMS").as_deref() == Some("1");
        super::is_ci() || (all_required && !(self == Self::Kms && kms_left_out))
    }

    /// Fails the test when this custodian is required, else says why it is skipped.
    fn missing(self) {
        assert!(
            !self.is_required(),
            "{} is required here (CI=true, or TESSERA_TEST_CUSTODIANS=required) but not set up: source hsm-sim/setup.sh",
            self.what()
        );
        super::skip(&format!("{} is not set up (source hsm-sim/setup.sh to run it)", self.what()));
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub fn softhsm() -> Option<Token> {
    match (var("TESSERA_TEST_PKCS11_MODULE"), var("TESSERA_TEST_PKCS11_TOKEN"), var("TESSERA_TEST_PKCS11_PIN_FILE")) {
        (Some(module), Some(label), Some(pin_file)) if var("SOFTHSM2_CONF").is_some() => {
            Some(Token { module: module.into(), label, pin_file: pin_file.into() })
        }
        _ => {
            Custodian::SoftHsm.missing();
            None
        }
    }
}

/// Where the network HSM's client and server meet (`unix:path=` addresses only).
pub fn p11kit_remote() -> Option<RemoteToken> {
    let client_module = var("TESSERA_TEST_P11KIT_CLIENT");
    let socket = var("P11_KIT_SERVER_ADDRESS").and_then(|a| a.strip_prefix("unix:path=").map(PathBuf::from));
    match (client_module, socket) {
        (Some(client_module), Some(socket)) => Some(RemoteToken { client_module: client_module.into(), socket }),
        _ => {
            Custodian::P11KitRemote.missing();
            None
        }
    }
}

/// The KMS emulator's endpoint (AWS_* test credentials are in the environment).
pub fn kms_endpoint() -> Option<String> {
    let endpoint = var("TESSERA_TEST_KMS_ENDPOINT");
    if endpoint.is_none() {
        Custodian::Kms.missing();
    }
    endpoint
}

/// A name no other test run uses, for key labels and aliases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", hex::encode(rand::random::<[u8; 5]>()))
}

impl Token {
    /// The `[keys.pkcs11]` table for this token.
    pub fn toml(&self) -> String {
        format!("[keys.pkcs11]\nmodule = {:?}\npin_file = {:?}\n", self.module, self.pin_file)
    }

    pub fn key_uri(&self, object: &str) -> String {
        format!("pkcs11:token={};object={object}", self.label)
    }
}

/// The `[keys.awskms]` table for the emulator, with short timeouts so fault
/// tests finish quickly.
pub fn kms_toml(endpoint: &str) -> String {
    format!(
        "[keys.awskms]\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\nattempt_timeout_ms = 1500\nmax_attempts = 2\n"
    )
}
