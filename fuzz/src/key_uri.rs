//! Key URIs (`file:`, `pkcs11:` per RFC 7512, `awskms:`) from the config
//! file and the authorities table.

use tessera::keys::KeyUri;

/// A parsed URI is written back with `Display` when a CA rotation stores
/// its successor's key; that text must name the same key.
pub fn key_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(uri) = text.parse::<KeyUri>() else { return };
    let written = uri.to_string();
    assert_eq!(written.parse::<KeyUri>().as_ref(), Ok(&uri), "{text:?} was written back as {written:?}");
}
