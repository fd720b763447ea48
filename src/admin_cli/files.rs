//! Local files the CLI writes: the contexts file, private keys and
//! certificate chains. Each appears whole (written under a temporary name,
//! flushed, renamed) with its mode set exactly, whatever the umask.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{CliError, file_error};

/// Private keys and the contexts file: owner read/write only.
pub const PRIVATE: u32 = 0o600;
/// Certificates: readable by everyone.
pub const PUBLIC: u32 = 0o644;

/// Makes `dir` (and its parents) if missing, the last one 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| file_error(dir, e))
}

/// Writes `contents` to `path`, replacing any old file in one rename.
pub fn replace(path: &Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    let temp = temporary_name(path);
    let written = write_new(&temp, contents, mode).and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(file_error(path, e));
    }
    Ok(())
}

/// Writes `contents` to `path`, which must not exist yet: a private key is
/// never written over another one that may be in use.
pub fn create(path: &Path, contents: &[u8], mode: u32) -> Result<(), CliError> {
    write_new(path, contents, mode).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => file_error(path, "exists; a key file is never overwritten"),
        _ => file_error(path, e),
    })
}

/// Refuses, before anything is asked of the server, an output file whose
/// directory does not exist.
pub fn ensure_directory(path: &Path) -> Result<(), CliError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(file_error(dir, "no such directory")),
        _ => Ok(()),
    }
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(contents)?;
    file.sync_all()
}

fn temporary_name(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", hex::encode(rand::random::<[u8; 6]>())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_get_their_mode_exactly_and_keys_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("temp dir");
        let key = dir.path().join("sub/dir/web.key");
        create_private_dir(key.parent().expect("has a parent")).expect("dir made");
        create(&key, b"secret", PRIVATE).expect("written");
        assert_eq!(std::fs::metadata(&key).expect("exists").permissions().mode() & 0o777, 0o600);
        assert!(create(&key, b"other", PRIVATE).is_err());
        assert!(ensure_directory(&key).is_ok());
        assert!(ensure_directory(&dir.path().join("missing/chain.pem")).is_err());
        assert_eq!(std::fs::read(&key).expect("readable"), b"secret");

        let chain = dir.path().join("chain.pem");
        replace(&chain, b"one", PUBLIC).expect("written");
        replace(&chain, b"two", PUBLIC).expect("replaced");
        assert_eq!(std::fs::read(&chain).expect("readable"), b"two");
        assert_eq!(std::fs::metadata(&chain).expect("exists").permissions().mode() & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("listable").collect();
        assert_eq!(names.len(), 2, "no temporary file left behind: {names:?}");
    }
}
