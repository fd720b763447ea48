//! Vault's response envelope and its spelling of serial numbers.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::Json;
use serde_json::{Value, json};

use crate::issuance::Serial;

/// `{"request_id", "lease_id", "renewable", "lease_duration", "data",
/// "wrap_info", "warnings", "auth"}` as Vault answers a read or a write.
pub fn secret(data: Value, warnings: Vec<String>) -> Json<Value> {
    Json(json!({
        "request_id": request_id(),
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": data,
        "wrap_info": null,
        "warnings": if warnings.is_empty() { Value::Null } else { json!(warnings) },
        "auth": null,
    }))
}

/// A random UUID-shaped id; an all-zero one if the generator fails, since
/// it only labels the response.
fn request_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = SystemRandom::new().fill(&mut bytes);
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// `1a:2b:...`: lower-case hex octets joined by colons, as Vault writes them.
pub fn colon_serial(serial: &Serial) -> String {
    serial.as_bytes().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// A serial in Vault's colon or hyphen form, or plain hex.
pub fn parse_serial(text: &str) -> Option<Serial> {
    let hex: String = text.trim().chars().filter(|c| *c != ':' && *c != '-').collect();
    hex.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn serials_round_trip_through_the_colon_form() {
        let serial: Serial = "0a1b2c3d4e5f60718293".parse().unwrap();
        let colon = colon_serial(&serial);
        assert_eq!(colon, "0a:1b:2c:3d:4e:5f:60:71:82:93");
        assert_eq!(parse_serial(&colon), Some(serial.clone()));
        assert_eq!(parse_serial("0a-1b-2c-3d-4e-5f-60-71-82-93"), Some(serial));
        assert_eq!(parse_serial("zz:zz"), None);
    }
}
