//! Files and directories only Tessera's own user may read: the data
//! directory and what it holds that is not public (the SQLite database and
//! its `-wal`/`-shm`, software keys, the admin token, the TLS key, the
//! key-encryption key). `root.pem` and `tls/server.crt` are public and keep
//! the process's umask.

use std::path::Path;

#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};

/// Creates a file only its owner can read and write, failing if it exists.
pub fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)
}

/// Creates `path` and its missing parents as directories only their owner
/// can enter. Existing directories are left as they are (a key's directory
/// may be the operator's); [`restrict_to_owner`] tightens one.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    builder.mode(0o700);
    builder.create(path)
}

/// Takes every permission of group and others away from an existing file
/// or directory (one that does not exist is fine), and says so in the log
/// when that changed anything: earlier versions left the data directory
/// and the SQLite database readable by all.
pub fn restrict_to_owner(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let current = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if current & 0o077 != 0 {
            let restricted = current & !0o077;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(restricted))?;
            tracing::info!(
                path = %path.display(),
                from = %format!("{:o}", current & 0o7777),
                to = %format!("{:o}", restricted & 0o7777),
                "restricted to its owner"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_paths_belong_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_private_dir(&nested).unwrap();
        assert_eq!((mode(&dir.path().join("a")), mode(&nested)), (0o700, 0o700));
        std::fs::set_permissions(&nested, std::fs::Permissions::from_mode(0o1755)).unwrap();
        create_private_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o755, "an existing directory is left alone");
        restrict_to_owner(&nested).unwrap();
        assert_eq!(std::fs::metadata(&nested).unwrap().permissions().mode() & 0o7777, 0o1700, "special bits stay");

        let file = nested.join("f");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert!(create_private_file(&file).is_err(), "never overwrites");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        restrict_to_owner(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        restrict_to_owner(&nested.join("missing")).unwrap();
    }
}
