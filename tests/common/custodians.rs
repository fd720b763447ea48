//! The key custodians the tests can reach: a SoftHSM2 token and a KMS
//! emulator, both set up by `hsm-sim/` (scripts/test.sh exports where they
//! are). Without them a custody test is skipped, unless
//! `TESSERA_TEST_CUSTODIANS=required`, which turns the skip into a failure.

use std::path::PathBuf;

/// The SoftHSM2 token hsm-sim made (SOFTHSM2_CONF is in the environment).
#[derive(Debug, Clone)]
pub struct Token {
    pub module: PathBuf,
    pub label: String,
    pub pin_file: PathBuf,
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn missing(what: &str) {
    assert_ne!(
        var("TESSERA_TEST_CUSTODIANS").as_deref(),
        Some("required"),
        "TESSERA_TEST_CUSTODIANS=required but {what} is not set up (source hsm-sim/setup.sh)"
    );
    eprintln!("{what} is not set up: skipping (source hsm-sim/setup.sh to run it)");
}

pub fn softhsm() -> Option<Token> {
    match (var("TESSERA_TEST_PKCS11_MODULE"), var("TESSERA_TEST_PKCS11_TOKEN"), var("TESSERA_TEST_PKCS11_PIN_FILE")) {
        (Some(module), Some(label), Some(pin_file)) if var("SOFTHSM2_CONF").is_some() => {
            Some(Token { module: module.into(), label, pin_file: pin_file.into() })
        }
        _ => {
            missing("the SoftHSM2 token");
            None
        }
    }
}

/// The KMS emulator's endpoint (AWS_* test credentials are in the environment).
pub fn kms_endpoint() -> Option<String> {
    let endpoint = var("TESSERA_TEST_KMS_ENDPOINT");
    if endpoint.is_none() {
        missing("the KMS emulator");
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
