//! The admin token file: written once, readable only by its owner.

use std::io::Write;
use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::SetupError;
use crate::private_files::create_private_file;

/// Writes the token to `path` (mode 0600) through a temporary file and a
/// rename, so a reader never sees half a token.
pub fn write_admin_token(path: &Path, token: &SecretString) -> Result<(), SetupError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = create_private_file(&tmp).map_err(SetupError::io(&tmp))?;
    file.write_all(token.expose_secret().as_bytes()).map_err(SetupError::io(&tmp))?;
    file.write_all(b"\n").map_err(SetupError::io(&tmp))?;
    file.sync_all().map_err(SetupError::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(SetupError::io(path))
}
