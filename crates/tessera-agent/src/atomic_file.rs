//! Replacing files so that a reader sees the old content or the new, never
//! a mix: each file is written to a temporary file in the same directory
//! (so the rename cannot cross file systems), flushed to disk, then renamed
//! over the target, and the directory is flushed so the rename survives a
//! crash.

use std::fs::{File, OpenOptions};
use std::io::Write;
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::AgentError;

/// Private keys: owner read/write only.
pub const PRIVATE: u32 = 0o600;
/// Certificates: readable by everyone (the process umask may narrow it).
pub const PUBLIC: u32 = 0o644;

/// A file written and flushed under a temporary name, not yet in place.
#[derive(Debug)]
pub struct StagedFile {
    temp: PathBuf,
    target: PathBuf,
    is_committed: bool,
}

impl StagedFile {
    /// Writes `contents` to a fresh temporary file next to `target`.
    pub fn write(target: &Path, contents: &[u8], mode: u32) -> Result<Self, AgentError> {
        let fail = |source| AgentError::Write { path: target.to_path_buf(), source };
        let dir = parent(target);
        std::fs::create_dir_all(dir).map_err(fail)?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", hex::encode(rand::random::<[u8; 6]>())));
        let staged = Self { temp, target: target.to_path_buf(), is_committed: false };
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        options.mode(mode);
        let mut file = options.open(&staged.temp).map_err(fail)?;
        // The creation mode is narrowed by the umask; a key must end up 0600
        // whatever the umask was, so set it exactly.
        #[cfg(unix)]
        if mode == PRIVATE {
            file.set_permissions(std::fs::Permissions::from_mode(PRIVATE)).map_err(fail)?;
        }
        file.write_all(contents).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        Ok(staged)
    }

    /// Renames the temporary file over the target and flushes the directory.
    pub fn commit(mut self) -> Result<(), AgentError> {
        let fail = |source| AgentError::Write { path: self.target.clone(), source };
        std::fs::rename(&self.temp, &self.target).map_err(fail)?;
        self.is_committed = true;
        sync_dir(parent(&self.target)).map_err(fail)
    }
}

impl Drop for StagedFile {
    /// A file staged but never committed (a later write failed) is removed.
    fn drop(&mut self) {
        if !self.is_committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Stages every file first and renames them only when all are written, so
/// a failure leaves the old set whole; the renames follow each other at once.
pub fn replace_all(files: &[(&Path, &[u8], u32)]) -> Result<(), AgentError> {
    let staged = files
        .iter()
        .map(|(path, contents, mode)| StagedFile::write(path, contents, *mode))
        .collect::<Result<Vec<_>, _>>()?;
    staged.into_iter().try_for_each(StagedFile::commit)
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn replaces_contents_with_the_asked_mode_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("svc.key");
        let cert = dir.path().join("svc.crt");
        std::fs::write(&key, "old key").unwrap();
        replace_all(&[(&key, b"new key", PRIVATE), (&cert, b"new cert", PUBLIC)]).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new key");
        assert_eq!(std::fs::read(&cert).unwrap(), b"new cert");
        #[cfg(unix)]
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, PRIVATE);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_write_keeps_the_old_files_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("svc.key");
        std::fs::write(&key, "old key").unwrap();
        // A directory where a file should go makes the second write fail.
        let blocked = dir.path().join("blocker");
        std::fs::write(&blocked, "a file, not a directory").unwrap();
        let cert = blocked.join("svc.crt");
        let err = replace_all(&[(&key, b"new key", PRIVATE), (&cert, b"new cert", PUBLIC)]).unwrap_err();
        assert!(err.to_string().contains("svc.crt"), "{err}");
        assert_eq!(std::fs::read(&key).unwrap(), b"old key");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
